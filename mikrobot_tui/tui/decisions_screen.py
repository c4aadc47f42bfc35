"""The detail of the orchestrator's decisions: each one's score, factor by factor.

Opened with `d` over the cockpit; it shows the decisions of the last read (it does not follow
the market while open: the operator is reading). Up and down pick a decision, the panel
under the list shows its factors: what each measured, its score, weight and contribution to
the confidence, and why.
"""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from mikrobot_tui.store.queries import DecisionRow
from mikrobot_tui.tui.panes.decisions import OUTCOME_STYLE, clock_time, confidence_text


def factor_table(row: DecisionRow) -> Table | Text:
    """The factors of one decision as a table, or why there are none."""
    head = Text.assemble(
        (f"{row.account} {row.side} {row.symbol} ", "bold"),
        (row.outcome, OUTCOME_STYLE.get(row.outcome, "")),
        f" · confidence {confidence_text(row)} · {row.strategy}\n",
        (row.reason or "", "dim"),
    )
    if not row.factors:
        return Text.assemble(head, "\n\nnot scored: refused before the score was taken")
    table = Table(title=head, title_justify="left", box=None, pad_edge=False)
    for label, justify in (
        ("Factor", "left"),
        ("Score", "right"),
        ("Weight", "right"),
        ("Adds", "right"),
        ("Why", "left"),
    ):
        table.add_column(label, justify=justify, no_wrap=label != "Why")  # type: ignore[arg-type]
    for f in row.factors:
        score = float(f.get("score", 0.0))
        style = "green" if score >= 0.75 else "yellow" if score >= 0.4 else "red"
        table.add_row(
            str(f.get("name", "")),
            Text(f"{score:.2f}", style=style),
            f"{float(f.get('weight', 0.0)):g}",
            f"{float(f.get('contribution', 0.0)):.3f}",
            str(f.get("why", "")),
        )
    return table


class DecisionsScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Close"),
        Binding("d", "dismiss", "Close", show=False),
    ]
    DEFAULT_CSS = """
    DecisionsScreen { align: center middle; }
    DecisionsScreen > #detail-box {
        width: 96%; height: 90%; padding: 0 1;
        border: round $accent; background: $surface;
    }
    DecisionsScreen DataTable { height: 1fr; min-height: 3; }
    DecisionsScreen #factors { height: auto; max-height: 60%; margin-top: 1; }
    """

    def __init__(self, rows: list[DecisionRow]) -> None:
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        with Vertical(id="detail-box") as box:
            box.border_title = "Decisions · ↑↓ pick · esc close"
            yield DataTable(id="list", cursor_type="row", zebra_stripes=False)
            yield Static(id="factors")

    def on_mount(self) -> None:
        table = self.query_one("#list", DataTable)
        table.add_columns("Time", "Acct", "Symbol", "Side", "Outcome", "Conf", "Why")
        for r in self.rows:
            table.add_row(
                clock_time(r.ts),
                r.account,
                r.symbol,
                r.side,
                Text(
                    r.outcome,
                    style={"up": "green", "warn": "yellow", "down": "red"}.get(
                        OUTCOME_STYLE.get(r.outcome, ""), ""
                    ),
                ),
                confidence_text(r),
                r.reason,
                key=str(r.seq),
            )
        factors = self.query_one("#factors", Static)
        if not self.rows:
            factors.update("No decisions yet: no strategy has signalled.")
        else:
            factors.update(factor_table(self.rows[0]))
        table.focus()

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        if 0 <= event.cursor_row < len(self.rows):
            self.query_one("#factors", Static).update(factor_table(self.rows[event.cursor_row]))
