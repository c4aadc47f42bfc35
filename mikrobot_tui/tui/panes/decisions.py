"""The orchestrator's last decisions: what was traded or refused, how sure it was, and why.

The pane keeps one line per decision (newest first); `d` opens the detail (tui/screens.py
DecisionsScreen), every factor of the score with its contribution.
"""

from __future__ import annotations

from datetime import UTC, datetime

from mikrobot_tui.store.queries import DecisionRow
from mikrobot_tui.tui.panes._dated import Dated
from mikrobot_tui.tui.panes._table import Cell, Column, KeyedTable

# The reason comes last and is cropped by a narrow pane; the time goes first when it is.
COLUMNS = (
    Column("time", "Time", priority=2),
    Column("account", "Acct", priority=1),
    Column("symbol", "Symbol"),
    Column("side", "Side"),
    Column("outcome", "Outcome"),
    Column("confidence", "Conf", "right"),
    Column("why", "Why"),
)
OUTCOME_STYLE = {"approved": "up", "resized": "warn", "refused": "down"}
WHY_CHARS = 40  # a long reason would push the time and account out; `d` shows it whole


def short(text: str, limit: int = WHY_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def clock_time(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / 1e9, tz=UTC).strftime("%H:%M:%S")


def confidence_text(row: DecisionRow) -> str:
    return "-" if row.confidence is None else f"{row.confidence:.2f}"


def decision_cells(r: DecisionRow) -> tuple[Cell, ...]:
    outcome = r.outcome if r.lots is None else f"{r.outcome} {r.lots:g}"
    return (
        clock_time(r.ts),
        r.account,
        (r.symbol, "bold"),
        r.side,
        (outcome, OUTCOME_STYLE.get(r.outcome, "")),
        confidence_text(r),
        (short(r.reason) or "-", "muted" if r.submitted else ""),
    )


class DecisionsPane(Dated, KeyedTable):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(COLUMNS, id=id)
        self.border_title = "Decisions"
        self.set_subtitle("d: factors")

    def show(self, rows: list[DecisionRow]) -> int:
        return self.apply({str(r.seq): decision_cells(r) for r in rows})
