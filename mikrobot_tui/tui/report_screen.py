"""The performance report over the cockpit: `p`, the same figures as `mikrobot report`.

Opened over the cockpit, it computes every account's report (paper/report.py) in a thread
worker on a connection that cannot write, then shows one account at a time: the 25 metrics for
the account and each strategy and symbol it traded, why any figure is missing, buy-and-hold,
and the last months, weeks and days. Left and right (or tab) pick the account; `r` computes
again; escape or `p` closes. It does not follow the market while open: the operator is reading.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from mikrobot_tui.paper.report import Report, reports
from mikrobot_tui.store.queries import read_only
from mikrobot_tui.tui.report_view import report_renderable


def read_reports(path: Path) -> tuple[list[Report], str]:
    """Every account's report, or why there is none."""
    if not path.exists():
        return [], f"no database at {path}"
    try:
        with closing(read_only(str(path))) as conn:
            conn.execute("PRAGMA query_only = ON")
            found = reports(conn)
    except sqlite3.Error as exc:
        return [], f"database: {exc}"
    return found, "" if found else "no accounts yet: no engine has opened one here"


class ReportScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Close"),
        Binding("p", "dismiss", "Close", show=False),
        Binding("right,tab", "pick(1)", "Next account"),
        Binding("left,shift+tab", "pick(-1)", "Previous", show=False),
        Binding("r", "compute", "Again"),
    ]
    DEFAULT_CSS = """
    ReportScreen { align: center middle; }
    ReportScreen > #report-box {
        width: 96%; height: 94%; padding: 0 1;
        border: round $accent; background: $surface;
    }
    ReportScreen #report-scroll { height: 1fr; }
    """

    def __init__(self, db_path: Path | str) -> None:
        super().__init__()
        self.db_path = Path(db_path)
        self.reports: list[Report] = []
        self.index = 0

    def compose(self) -> ComposeResult:
        with Vertical(id="report-box") as box:
            box.border_title = "Performance · ←→ account · r again · esc close"
            with VerticalScroll(id="report-scroll"):
                yield Static("computing the report...", id="report")

    def on_mount(self) -> None:
        self.action_compute()

    def action_compute(self) -> None:
        self.query_one("#report", Static).update("computing the report...")
        self._compute()

    @work(thread=True, exclusive=True, exit_on_error=False, group="report")
    def _compute(self) -> None:
        found, problem = read_reports(self.db_path)
        self.app.call_from_thread(self._show, found, problem)

    def _show(self, found: list[Report], problem: str) -> None:
        self.reports = found
        self.index = min(self.index, max(len(found) - 1, 0))
        if problem:
            self.query_one("#report", Static).update(problem)
            return
        self._show_report()

    def action_pick(self, step: int) -> None:
        if self.reports:
            self.index = (self.index + step) % len(self.reports)
            self._show_report()

    def _show_report(self) -> None:
        r = self.reports[self.index]
        box = self.query_one("#report-box")
        names = " ".join(
            f"[{x.account}]" if i == self.index else x.account for i, x in enumerate(self.reports)
        )
        box.border_subtitle = f"accounts: {names}"
        self.query_one("#report", Static).update(report_renderable(r))
