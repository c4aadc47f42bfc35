"""A DataTable fed whole snapshots by key that touches only the cells that changed (Dolphie)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from rich.text import Text
from textual.widgets import DataTable

# A cell is plain text, or (text, style name): up, down, warn, muted, alarm.
Cell = str | tuple[str, str]


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    label: str
    justify: Literal["left", "right"] = "left"


class KeyedTable(DataTable):
    """Rows keyed by a stable id; `apply` diffs against what is shown."""

    DEFAULT_CSS = """
    KeyedTable { height: auto; max-height: 100%; background: transparent; }
    KeyedTable { scrollbar-size-horizontal: 0; }
    KeyedTable > .datatable--header { background: transparent; color: $text-muted; }
    """

    def __init__(self, columns: Sequence[Column], *, id: str | None = None) -> None:
        # No cell padding: a one-space gap before every column but the first is narrower than
        # DataTable's padding on both sides, and these panes are half a terminal wide.
        super().__init__(
            id=id, cursor_type="none", show_cursor=False, zebra_stripes=False, cell_padding=0
        )
        self._columns = tuple(columns)
        self._shown: dict[str, tuple[Cell, ...]] = {}
        for i, col in enumerate(self._columns):
            gap = " " if i else ""
            self.add_column(Text(gap + col.label, justify=col.justify), key=col.key)

    def _style(self, name: str) -> str:
        var = self.app.theme_variables
        return {
            "up": var["success"],
            "down": var["error"],
            "warn": var["warning"],
            "alarm": f"bold {var['error']}",
            "muted": "dim",
            "bold": "bold",
        }.get(name, "")

    def _render(self, cell: Cell, col: Column) -> Text:
        text, style = (cell, "") if isinstance(cell, str) else cell
        gap = " " if col is not self._columns[0] else ""
        return Text.assemble(gap, (text, self._style(style)), justify=col.justify)

    def apply(self, rows: Mapping[str, tuple[Cell, ...]]) -> int:
        """Make the table show `rows`; returns how many cells were touched."""
        touched = 0
        for key in [k for k in self._shown if k not in rows]:
            self.remove_row(key)
            del self._shown[key]
            touched += len(self._columns)
        for key, cells in rows.items():
            old = self._shown.get(key)
            if old is None:
                pairs = zip(cells, self._columns, strict=True)
                self.add_row(*(self._render(c, col) for c, col in pairs), key=key)
                touched += len(cells)
            elif old != cells:
                for c_old, c_new, col in zip(old, cells, self._columns, strict=True):
                    if c_old != c_new:
                        self.update_cell(key, col.key, self._render(c_new, col), update_width=True)
                        touched += 1
            self._shown[key] = cells
        return touched
