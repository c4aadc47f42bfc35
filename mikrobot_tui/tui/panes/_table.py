"""A DataTable fed whole snapshots by key that touches only the cells that changed (Dolphie).

Columns may carry a priority: when the table is narrower than its columns, those with the
highest priority number go first (0: always shown), so a pane half of an 80-column terminal
keeps the figures that matter instead of cutting off its right-hand side.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from rich.cells import cell_len
from rich.text import Text
from textual import events
from textual.widgets import DataTable

# A cell is plain text, or (text, style name): up, down, warn, muted, alarm.
Cell = str | tuple[str, str]


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    label: str
    justify: Literal["left", "right"] = "left"
    priority: int = 0  # 0: always shown; a higher number is dropped sooner when narrow


class KeyedTable(DataTable):
    """Rows keyed by a stable id; `apply` diffs against what is shown."""

    DEFAULT_CSS = """
    KeyedTable { height: auto; max-height: 100%; background: transparent; }
    KeyedTable { scrollbar-size-horizontal: 0; scrollbar-size-vertical: 1; }
    KeyedTable > .datatable--header { background: transparent; color: $text-muted; }
    """

    def __init__(self, columns: Sequence[Column], *, id: str | None = None) -> None:
        # No cell padding: a one-space gap before every column but the first is narrower than
        # DataTable's padding on both sides, and these panes are half a terminal wide.
        super().__init__(
            id=id, cursor_type="none", show_cursor=False, zebra_stripes=False, cell_padding=0
        )
        self._all = tuple(columns)
        self._fits = any(c.priority for c in self._all)  # otherwise every column always shows
        self._visible = tuple(range(len(self._all)))
        self._columns = self._all
        self._shown: dict[str, tuple[Cell, ...]] = {}  # every column's cells, shown or not
        self._add_columns()

    def _add_columns(self) -> None:
        for i, col in enumerate(self._columns):
            gap = " " if i else ""
            self.add_column(Text(gap + col.label, justify=col.justify), key=col.key)

    def _fit(self, rows: Mapping[str, tuple[Cell, ...]]) -> tuple[int, ...]:
        """The columns that fit the table's width, most important first, in their order."""
        width = self.scrollable_content_region.width  # less a scrollbar, when one shows
        if not self._fits or width <= 0:
            return tuple(range(len(self._all)))
        need = [cell_len(c.label) for c in self._all]
        for cells in rows.values():
            for i, cell in enumerate(cells):
                need[i] = max(need[i], cell_len(cell if isinstance(cell, str) else cell[0]))
        chosen: list[int] = []
        used = 0
        for i in sorted(range(len(self._all)), key=lambda i: self._all[i].priority):
            extra = need[i] + (1 if chosen else 0)
            if self._all[i].priority and used + extra > width:
                continue
            chosen.append(i)
            used += extra
        return tuple(sorted(chosen))

    def _rebuild(self, visible: tuple[int, ...]) -> int:
        self.clear(columns=True)
        self._visible = visible
        self._columns = tuple(self._all[i] for i in visible)
        self._add_columns()
        for key, cells in self._shown.items():
            self.add_row(*self._cells(cells), key=key)
        return len(self._shown) * len(self._columns)

    def _cells(self, cells: tuple[Cell, ...]) -> list[Text]:
        return [
            self._render(cells[i], col) for i, col in zip(self._visible, self._columns, strict=True)
        ]

    def on_resize(self, event: events.Resize) -> None:
        visible = self._fit(self._shown)
        if visible != self._visible:
            self._rebuild(visible)

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
        visible = self._fit(rows)
        if visible != self._visible:
            self._shown = dict(rows)
            return self._rebuild(visible)
        touched = 0
        for key in [k for k in self._shown if k not in rows]:
            self.remove_row(key)
            del self._shown[key]
            touched += len(self._columns)
        # Per column, the widest of the cells whose width changed: only it asks DataTable to
        # measure. Asking for every cell made it re-measure the whole column for each one that
        # got narrower (rows x cells per poll: a quarter of the cockpit's CPU at 50 symbols).
        # Its rule (wider: take it; narrower: measure the column) stays exact this way: the
        # cells not asked about are no wider than the one asked about, or than before.
        resized: dict[int, tuple[int, str, Text]] = {}
        for key, cells in rows.items():
            old = self._shown.get(key)
            if old is None:
                self.add_row(*self._cells(cells), key=key)
                touched += len(self._columns)
            elif old != cells:
                for j, (i, col) in enumerate(zip(self._visible, self._columns, strict=True)):
                    if old[i] == cells[i]:
                        continue
                    text = self._render(cells[i], col)
                    touched += 1
                    width = text.cell_len
                    resized_cell = width != _width(old[i]) + (1 if j else 0)
                    if resized_cell and (j not in resized or width > resized[j][0]):
                        resized[j] = (width, key, text)
                    self.update_cell(key, col.key, text)
            self._shown[key] = cells
        for j, (_, key, text) in resized.items():
            self.update_cell(key, self._columns[j].key, text, update_width=True)
        return touched


def _width(cell: Cell) -> int:
    return cell_len(cell if isinstance(cell, str) else cell[0])
