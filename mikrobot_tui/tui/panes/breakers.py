"""Circuit breakers: which guard is tripped and when it will try again."""

from __future__ import annotations

from mikrobot_tui.store.queries import BreakerRow
from mikrobot_tui.tui.panes._dated import Dated
from mikrobot_tui.tui.panes._table import Cell, Column, KeyedTable

COLUMNS = (
    Column("name", "Breaker"),
    Column("state", "State"),
    Column("failures", "Failures", "right"),
    Column("retry", "Retry in", "right"),
)
STATE_STYLE = {"CLOSED": "up", "HALF_OPEN": "warn", "OPEN": "alarm"}
TRIPPED_FIRST = {"OPEN": 0, "HALF_OPEN": 1}  # with a breaker per symbol the list outgrows the pane


def breaker_cells(r: BreakerRow, now_ns: int) -> tuple[Cell, ...]:
    if r.state == "OPEN" and r.retry_ts is not None:
        retry = f"{max(0.0, (r.retry_ts - now_ns) / 1e9):,.0f} s"
    else:
        retry = "-"
    return (r.name, (r.state, STATE_STYLE.get(r.state, "")), f"{r.failures:,}", retry)


class BreakersPane(Dated, KeyedTable):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(COLUMNS, id=id)
        self.border_title = "Circuit breakers"

    def show(self, rows: list[BreakerRow], now_ns: int) -> int:
        tripped = sum(r.state != "CLOSED" for r in rows)
        # the count says how many there are when the pane is too short to list them all
        self.set_subtitle(f"{tripped} of {len(rows)} tripped" if tripped else f"{len(rows)} closed")
        ordered = sorted(rows, key=lambda r: (TRIPPED_FIRST.get(r.state, 2), r.name))
        return self.apply({r.name: breaker_cells(r, now_ns) for r in ordered})
