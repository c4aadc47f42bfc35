"""KeyedTable's column widths: right after every diff of the same rows, as if every cell had
been measured (it asks DataTable to measure only the widest changed cell of a column)."""

from __future__ import annotations

import random

from rich.cells import cell_len
from textual.app import App, ComposeResult

from mikrobot_tui.tui.panes._table import Column, KeyedTable

COLUMNS = (Column("name", "Name"), Column("n", "N", "right"), Column("note", "Note"))


class TableApp(App[None]):
    def compose(self) -> ComposeResult:
        yield KeyedTable(COLUMNS, id="t")


def widths_measured(table: KeyedTable) -> list[int]:
    """Each column as wide as its widest cell or its label, measured cell by cell."""
    out = []
    for column in table.ordered_columns:
        cells = [cell_len(str(table.get_cell(row, column.key))) for row in table.rows]
        out.append(max([cell_len(str(column.label)), *cells]))
    return out


async def test_column_widths_follow_cells_that_grow_and_shrink() -> None:
    rng = random.Random(7)
    words = ["", "x", "short", "a longer note", "the longest note of all here"]
    app = TableApp()
    async with app.run_test(size=(120, 30)) as pilot:
        table = app.query_one("#t", KeyedTable)
        for step in range(60):
            rows = {
                f"r{i}": (f"row{i}", f"{rng.choice([1, 12, 1234, 123456]):,}", rng.choice(words))
                for i in range(8)  # the same rows: DataTable never narrows on a removal
            }
            table.apply(rows)
            await pilot.pause()
            shown = [c.content_width for c in table.ordered_columns]
            assert shown == widths_measured(table), step


async def test_a_column_takes_the_widest_of_the_cells_that_grew_at_once() -> None:
    app = TableApp()
    async with app.run_test(size=(120, 30)) as pilot:
        table = app.query_one("#t", KeyedTable)
        table.apply({"a": ("a", "1", "x"), "b": ("b", "2", "y")})
        await pilot.pause()
        table.apply({"a": ("a", "123", "x"), "b": ("b", "12,345", "y")})
        await pilot.pause()
        assert [c.content_width for c in table.ordered_columns] == widths_measured(table)
        assert table.ordered_columns[1].content_width == len(" 12,345")
