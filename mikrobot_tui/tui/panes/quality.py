"""Data quality per symbol: the score the monitor gives the feed, and why."""

from __future__ import annotations

from mikrobot_tui.store.queries import QualityRow
from mikrobot_tui.tui.panes._dated import Dated
from mikrobot_tui.tui.panes._table import Cell, Column, KeyedTable

# On a narrow pane the counts go (ticks first, the capability before them) and the score,
# the latency and the last problem stay: what a trader reads first.
COLUMNS = (
    Column("symbol", "Symbol"),
    Column("score", "Score", "right"),
    Column("ticks", "Ticks", "right", priority=4),
    Column("rejects", "Rej", "right", priority=2),
    Column("spikes", "Spk", "right", priority=3),
    Column("gaps", "Gap", "right", priority=3),
    Column("latency", "ms", "right"),
    # the feed latency's capability against quality.latency_limit_ms
    Column("cpk", "Cpk", "right", priority=5),
    Column("problem", "Last problem"),
)
CAPABLE, MARGINAL = 1.33, 1.0  # the usual process-capability thresholds


def score_style(score: float) -> str:
    if score >= 0.9:
        return "up"
    if score >= 0.7:
        return "warn"
    return "down"


# the score's parts (data/quality/score.py), by the letter the score column shows
PARTS = (
    ("v", "validity"),
    ("s", "spikes_part"),
    ("g", "gaps_part"),
    ("l", "latency_part"),
    ("c", "completeness"),
)


def weakest_part(r: QualityRow) -> str:
    """The letter of the part that costs the score most, "" when none costs anything (or an
    engine before the parts wrote the row)."""
    worst, letter = 1.0, ""
    for code, name in PARTS:
        value = getattr(r, name)
        if value is not None and value < worst:
            worst, letter = value, code
    return letter if f"{worst:.2f}" != "1.00" else ""


def quality_cells(r: QualityRow, live: bool = True) -> tuple[Cell, ...]:
    """`live` False: the score is the last one a stopped engine wrote, shown without colour.
    The score carries the letter of its weakest part (0.62v: validity), so the pane stays
    narrow enough for half of an 80-column terminal."""
    return (
        (r.symbol, "bold"),
        (f"{r.score:.2f}{weakest_part(r) or ' '}", score_style(r.score) if live else "muted"),
        f"{r.ticks:,}",
        (f"{r.rejects:,}", "warn" if r.rejects else ""),
        (f"{r.spikes:,}", "warn" if r.spikes else ""),
        (f"{r.gaps:,}", "warn" if r.gaps else ""),
        f"{r.latency_ms:,.1f}",
        cpk_cell(r.latency_cpk, live),
        (r.last_problem or "-", "muted" if not r.last_problem else ""),
    )


def cpk_cell(cpk: float | None, live: bool = True) -> Cell:
    """Cpk 1.33 or more: the feed's latency is capable; under 1 it breaks the limit often."""
    if cpk is None:
        return ("-", "muted")
    if not live:
        return (f"{cpk:.2f}", "muted")
    return (f"{cpk:.2f}", "up" if cpk >= CAPABLE else "warn" if cpk >= MARGINAL else "down")


class QualityPane(Dated, KeyedTable):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(COLUMNS, id=id)
        self.border_title = "Data quality"
        # the score looks at the recent window, the counts at the whole session: say so
        self.set_subtitle("score: last min, v s g l c · counts: since start")

    def show(self, rows: list[QualityRow], live: bool = True) -> int:
        return self.apply({r.symbol: quality_cells(r, live) for r in rows})
