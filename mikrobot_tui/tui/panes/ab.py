"""A/B results: each strategy variant's record and whether it differs from the control."""

from __future__ import annotations

from mikrobot_tui.store.queries import ABRow
from mikrobot_tui.tui.panes._dated import Dated
from mikrobot_tui.tui.panes._table import Cell, Column, KeyedTable

# The numbers come first and the free-text params last: a half-width pane crops the right
# end, and a real engine's params ("ema_cross(8,34)") used to push the p-value out of sight.
# "p" (the test is named in the subtitle) keeps it visible at 100 columns too.
COLUMNS = (
    Column("variant", "Variant"),
    Column("account", "Account"),
    Column("trades", "Trades", "right"),
    Column("win_rate", "Win %", "right"),
    Column("mean", "Mean/trade", "right"),
    Column("p", "p", "right"),
    Column("params", "Params"),
)
NA: Cell = ("n/a", "muted")


def ab_cells(r: ABRow) -> tuple[Cell, ...]:
    win = NA if r.win_rate is None else f"{r.win_rate * 100:.1f}%"
    if r.mean_return is None:
        mean: Cell = NA
    else:
        mean = (f"{r.mean_return:+.3f}%", "up" if r.mean_return > 0 else "down")
    if r.p_value is None:
        p: Cell = NA
    else:
        p = (f"{r.p_value:.3f}", "bold" if r.p_value < 0.05 else "")
    return (r.variant, r.account, f"{r.trades:,}", win, mean, p, r.params)


class ABPane(Dated, KeyedTable):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(COLUMNS, id=id)
        self.border_title = "A/B results"

    def show(self, rows: list[ABRow]) -> int:
        tests = sorted({r.test for r in rows if r.test})
        self.set_subtitle(f"p: {', '.join(tests)}" if tests else "")
        return self.apply({r.variant: ab_cells(r) for r in rows})
