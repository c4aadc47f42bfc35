"""The cockpit screen (the behaviour) and the flatten confirmation.

One timer reads SQLite once per tick in a thread worker and hands the snapshot to every pane;
the next read is scheduled when the previous one has been applied, so reads never overlap.
The read goes to a thread because SQLite may wait up to its busy timeout (a checkpoint, a WAL
to recover after a crash), and an in-process engine shares this event loop: a stalled read
on the loop would stall the ticks too.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import ClassVar

from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Footer, Label

from mikrobot_tui.clock import Clock
from mikrobot_tui.store import commands
from mikrobot_tui.store.commands import Command, CommandRow
from mikrobot_tui.store.queries import Snapshot, read_only, read_snapshot
from mikrobot_tui.tui.notices import SignalNotices
from mikrobot_tui.tui.panes._dated import Dated
from mikrobot_tui.tui.panes._format import as_of_time
from mikrobot_tui.tui.panes.ab import ABPane
from mikrobot_tui.tui.panes.breakers import BreakersPane
from mikrobot_tui.tui.panes.decisions import DecisionsPane
from mikrobot_tui.tui.panes.equity import EquityPane
from mikrobot_tui.tui.panes.header import StatusHeader
from mikrobot_tui.tui.panes.positions import PositionsPane
from mikrobot_tui.tui.panes.quality import QualityPane
from mikrobot_tui.tui.panes.ticks import TicksPane

NO_ANSWER = "no engine answered — is one running?"
WARMING_UP = "warming up"
SHORT_ROWS = 34  # below this many rows the cockpit's secondary panes shrink
SLOW_PANES_HZ = 2.0
# The quality pane's counts change for every symbol at every poll, so each of its repaints is
# the whole table (a DataTable repaints every cell on any change): once a second is enough
# for a score over the last minute and counts since the start.
QUALITY_HZ = 1.0


def stale_note(heartbeat_ts: int | None, now_ns: int) -> str:
    """What each pane says while no engine runs: the figures are its last snapshot's.

    The engine writes its heartbeat with every snapshot of the read-side tables, so the last
    heartbeat is when the figures on screen were written.
    """
    if heartbeat_ts is None:
        return "not live · no engine has run here"
    return f"as of {as_of_time(heartbeat_ts, now_ns)} · engine stopped"


class CockpitScreen(Screen):
    AUTO_FOCUS = None

    class SnapshotRead(Message, bubble=False):
        """A poll finished: the snapshot, or why there is none."""

        def __init__(self, snapshot: Snapshot | None, now_ns: int, problem: str = "") -> None:
            super().__init__()
            self.snapshot = snapshot
            self.now_ns = now_ns
            self.problem = problem

    class CommandAnswered(Message, bubble=False):
        """The engine's answer to a command, None when nobody answered in time."""

        def __init__(self, command: Command, row: CommandRow | None, problem: str = "") -> None:
            super().__init__()
            self.command = command
            self.row = row
            self.problem = problem

    def __init__(self, db_path: Path, clock: Clock, refresh_hz: float) -> None:
        super().__init__(id="cockpit")
        self.db_path = Path(db_path)
        self.clock = clock
        self.interval = 1.0 / refresh_hz
        # Slow panes (DataTables) get every n-th snapshot: at most SLOW_PANES_HZ.
        self._slow_every = max(1, round(refresh_hz / SLOW_PANES_HZ))
        self._quality_every = max(1, round(refresh_hz / QUALITY_HZ))
        self.polls = 0
        self._live: bool | None = None  # whether an engine kept the last figures shown live
        self.last_snapshot: Snapshot | None = None
        # the in-process engine is starting (its warm-up): said on screen until it runs
        self.starting = False

    def compose(self) -> ComposeResult:
        yield StatusHeader(id="header")
        with Grid(id="panes"):
            with Vertical(id="left"):
                yield TicksPane(id="ticks")
                yield QualityPane(id="quality")
                yield DecisionsPane(id="decisions")
            with Vertical(id="right"):
                yield PositionsPane(id="positions")
                yield EquityPane(self.db_path, id="equity")
                yield BreakersPane(id="breakers")
                yield ABPane(id="ab")
        yield SignalNotices(self.db_path)
        yield Footer()

    def on_resize(self, event: events.Resize) -> None:
        # A short terminal gives the rows to the positions and the decisions: the breakers
        # and the A/B results shrink to a few lines (tripped breakers first; they scroll).
        self.set_class(event.size.height < SHORT_ROWS, "-short")

    def on_mount(self) -> None:
        self.set_class(self.app.size.height < SHORT_ROWS, "-short")
        self._dated: list[Dated] = [w for w in self.query("#panes *") if isinstance(w, Dated)]
        # The first read is inline (about a millisecond) so the first frame is complete.
        self._apply(*self._read())
        self.set_timer(self.interval, self._poll)

    # -- reading ------------------------------------------------------------------------------
    def _read(self) -> tuple[Snapshot | None, int, str]:
        """One snapshot, through a connection opened and closed here, in the calling thread.

        A connection belongs to the thread that uses it: closing one while another thread is
        inside a query on it crashes the process (a quit during a poll did). Each poll runs
        in its own worker thread, so each opens its own connection and nothing is left to
        close when the screen goes. Opening one adds under a millisecond to a read.
        """
        now = self.clock.now_ns()
        if not self.db_path.exists():
            return None, now, f"no database at {self.db_path}"
        try:
            with closing(read_only(str(self.db_path))) as conn:
                return read_snapshot(conn, now), now, ""
        except sqlite3.Error as exc:
            return None, now, f"database: {exc}"

    @work(thread=True, exclusive=True, exit_on_error=False, group="poll", name="poll")
    def _poll(self) -> None:
        try:
            result = self._read()
        except Exception as exc:  # a bad row must not end the polling: show it, read again
            result = (None, self.clock.now_ns(), f"read failed: {exc!r}")
        self.post_message(self.SnapshotRead(*result))

    @on(SnapshotRead)
    def _on_snapshot(self, message: SnapshotRead) -> None:
        try:
            self._apply(message.snapshot, message.now_ns, message.problem)
        finally:
            self.set_timer(self.interval, self._poll)

    def _apply(self, snap: Snapshot | None, now_ns: int, problem: str) -> None:
        self.polls += 1
        slow = (self.polls - 1) % self._slow_every == 0
        quality = (self.polls - 1) % self._quality_every == 0
        starting = self.starting and not (snap is not None and snap.engine.running)
        with self.app.batch_update():
            header = self.query_one(StatusHeader)
            header.show(
                snap.engine if snap else None,
                now_ns,
                problem,
                snap.feeds if snap else (),
                starting=starting,
            )
            if snap is None:
                if starting:
                    for pane in self._dated:
                        pane.set_as_of(WARMING_UP)
                return
            self.last_snapshot = snap
            live = snap.engine.running
            # An engine stopping or starting changes every pane at once, the slow ones too.
            slow = slow or live != self._live
            quality = quality or live != self._live
            self._live = live
            if starting:
                note = WARMING_UP
            else:
                note = "" if live else stale_note(snap.engine.heartbeat_ts, now_ns)
            for pane in self._dated:
                pane.set_as_of(note)
            self.query_one(TicksPane).show(snap.symbols)
            if quality:
                self.query_one(QualityPane).show(snap.quality, live=live)
            if slow:
                self.query_one(DecisionsPane).show(snap.decisions)
                self.query_one(PositionsPane).show(snap.accounts, snap.positions)
                self.query_one(BreakersPane).show(snap.breakers, now_ns)
                self.query_one(ABPane).show(snap.ab, snap.models)

    def open_positions_text(self) -> str:
        """What a flatten would close, as of the last read."""
        snap = self.last_snapshot
        if snap is None:
            return ""
        if not snap.positions:
            return "No open positions right now."
        accounts = len({p.account for p in snap.positions})
        n = len(snap.positions)
        return f"{n} open position{'s' * (n != 1)} in {accounts} account{'s' * (accounts != 1)}."

    # -- commands -----------------------------------------------------------------------------
    def send_command(self, command: Command, timeout_s: float) -> None:
        self._send(command, self.clock.now_ns(), timeout_s)

    # Not exclusive: a halt then a flatten must both be sent and both answered.
    @work(thread=True, exclusive=False, exit_on_error=False, group="commands", name="command")
    def _send(self, command: Command, ts: int, timeout_s: float) -> None:
        if not self.db_path.exists():
            self.post_message(self.CommandAnswered(command, None, f"no database at {self.db_path}"))
            return
        # here, not at the top: the schema module brings sqlite-utils and numpy, and builds
        # its column lists, a third of a second before the first frame on a busy machine
        from mikrobot_tui.store.schema import connect

        conn = connect(self.db_path)
        try:
            command_id = commands.send(conn, command, ts=ts)
            row = commands.wait(conn, command_id, timeout_s=timeout_s)
        except sqlite3.Error as exc:
            self.post_message(self.CommandAnswered(command, None, f"database: {exc}"))
            return
        finally:
            conn.close()
        self.post_message(self.CommandAnswered(command, row))

    @on(CommandAnswered)
    def _on_answer(self, message: CommandAnswered) -> None:
        name = str(message.command).capitalize()
        row = message.row
        if message.problem:
            self.notify(f"{name} not sent: {message.problem}", severity="error")
        elif row is None:
            self.notify(NO_ANSWER, title=name, severity="warning")
        elif row.status == "done":
            self.notify(row.result or "done", title=name)
        else:
            self.notify(row.result or row.status, title=f"{name} {row.status}", severity="error")


class FlattenScreen(ModalScreen[bool]):
    """Asks before closing every open position at market; No is the default."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes, flatten"),
        Binding("n", "answer(False)", "No"),
        Binding("escape", "answer(False)", "Cancel", show=False),
    ]
    DEFAULT_CSS = """
    FlattenScreen { align: center middle; }
    FlattenScreen > #dialog {
        width: 52; height: auto; padding: 1 2;
        border: thick $error; background: $surface;
    }
    FlattenScreen #question { width: 100%; content-align: center middle; text-style: bold; }
    FlattenScreen #detail { width: 100%; content-align: center middle; color: $text-muted; }
    FlattenScreen #buttons { height: auto; margin-top: 1; align: center middle; }
    FlattenScreen Button { margin: 0 1; }
    """

    def __init__(self, detail: str = "") -> None:
        super().__init__()
        self.detail = detail

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog") as dialog:
            dialog.border_title = "Flatten"
            yield Label("Close every open position at market?", id="question")
            if self.detail:
                yield Label(self.detail, id="detail")
            with Horizontal(id="buttons"):
                yield Button("Yes (y)", variant="error", id="yes")
                yield Button("No (n)", variant="primary", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")
