"""Notifications for alerts and external signals, as they come.

An invisible widget: once a second a thread worker reads what came since the last read
(store/notices.py) through a connection of its own, and the notices are shown as toasts
(an alert's severity as the toast's: critical ones are errors and stay longer), a few at a
time with a count of the rest, so a burst cannot bury the screen; alerts go first, the most
severe first.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from textual import on, work
from textual.message import Message
from textual.widget import Widget

from mikrobot_tui.store.notices import Notice, NoticeCursor, signal_notices, start_cursor
from mikrobot_tui.store.queries import read_only

SHOWN_AT_ONCE = 3


class SignalNotices(Widget):
    DEFAULT_CSS = "SignalNotices { display: none; }"

    class Found(Message, bubble=False):
        def __init__(self, notices: list[Notice]) -> None:
            super().__init__()
            self.notices = notices

    def __init__(self, db_path: Path, interval_s: float = 1.0) -> None:
        super().__init__(id="signal-notices")
        self.db_path = Path(db_path)
        self.interval_s = interval_s
        self._cursor: NoticeCursor | None = None
        # while this cockpit's own engine warms up: its history's alerts are no news
        self.holding = False

    def hold(self) -> None:
        """Say nothing until `from_now`: the engine is playing its warm-up history."""
        self.holding = True

    def from_now(self) -> None:
        """Tell what comes from here on (the cursor is taken again at the next poll)."""
        self._cursor = None
        self.holding = False

    def on_mount(self) -> None:
        self.set_interval(self.interval_s, self._poll)
        self._poll()

    @work(thread=True, exclusive=True, exit_on_error=False, group="notices", name="notices")
    def _poll(self) -> None:
        if self.holding or not self.db_path.exists():
            return
        try:
            with closing(read_only(str(self.db_path))) as conn:
                if self._cursor is None:
                    self._cursor = start_cursor(conn)  # only what comes from now on
                    return
                notices = signal_notices(conn, self._cursor)
        except sqlite3.Error:  # a database still being made, or busy: the next poll reads
            return
        if notices:
            self.post_message(self.Found(notices))

    @on(Found)
    def _show(self, message: Found) -> None:
        order = {"error": 0, "warning": 1, "information": 2}
        notices = sorted(message.notices, key=lambda n: (not n.alert, order.get(n.severity, 2)))
        for n in notices[:SHOWN_AT_ONCE]:
            self.notify(n.text, title=n.title, severity=n.severity, timeout=n.timeout)
        rest = notices[SHOWN_AT_ONCE:]
        if rest:
            alerts = sum(n.alert for n in rest)
            where = "`mikrobot alerts`, " if alerts else ""
            self.notify(
                f"and {len(rest)} more; see {where}the events and rejects tables",
                title="Alerts" if alerts else "External signals",
                severity="error" if any(n.severity == "error" for n in rest) else "information",
            )
