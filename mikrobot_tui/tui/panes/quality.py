"""Data quality per symbol: the score the monitor gives the feed, and why."""

from __future__ import annotations

from mikrobot_tui.store.queries import QualityRow
from mikrobot_tui.tui.panes._dated import Dated
from mikrobot_tui.tui.panes._table import Cell, Column, KeyedTable

COLUMNS = (
    Column("symbol", "Symbol"),
    Column("score", "Score", "right"),
    Column("ticks", "Ticks", "right"),
    Column("rejects", "Rej", "right"),
    Column("spikes", "Spk", "right"),
    Column("gaps", "Gap", "right"),
    Column("latency", "ms", "right"),
    Column("problem", "Last problem"),
)


def score_style(score: float) -> str:
    if score >= 0.9:
        return "up"
    if score >= 0.7:
        return "warn"
    return "down"


def quality_cells(r: QualityRow, live: bool = True) -> tuple[Cell, ...]:
    """`live` False: the score is the last one a stopped engine wrote, shown without colour."""
    return (
        (r.symbol, "bold"),
        (f"{r.score:.2f}", score_style(r.score) if live else "muted"),
        f"{r.ticks:,}",
        (f"{r.rejects:,}", "warn" if r.rejects else ""),
        (f"{r.spikes:,}", "warn" if r.spikes else ""),
        (f"{r.gaps:,}", "warn" if r.gaps else ""),
        f"{r.latency_ms:,.1f}",
        (r.last_problem or "-", "muted" if not r.last_problem else ""),
    )


class QualityPane(Dated, KeyedTable):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(COLUMNS, id=id)
        self.border_title = "Data quality"
        # the score looks at the recent window, the counts at the whole session: say so
        self.set_subtitle("score: last minute · counts: since start")

    def show(self, rows: list[QualityRow], live: bool = True) -> int:
        return self.apply({r.symbol: quality_cells(r, live) for r in rows})
