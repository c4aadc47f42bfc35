"""The cockpit: a view of SQLite and a remote control for the engine.

The App is thin (bindings, palette entries, the engine's lifecycle); the behaviour lives in
`CockpitScreen`. Nothing here trades: halt, resume and flatten are rows in the `commands`
table that whichever engine owns the database carries out.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import ClassVar, Protocol

from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from mikrobot_tui.clock import Clock, LiveClock
from mikrobot_tui.store.commands import Command
from mikrobot_tui.tui.decisions_screen import DecisionsScreen
from mikrobot_tui.tui.notices import SignalNotices
from mikrobot_tui.tui.screens import CockpitScreen, FlattenScreen


class Runnable(Protocol):
    """What the cockpit needs of an engine: run until the stop event is set."""

    async def run(self, stop: asyncio.Event) -> None: ...


# Builds and starts an engine, asked in a worker thread while the cockpit shows "warming up";
# None when it did not start (stopped, or it failed and keeps why for the command to say).
Starting = Callable[[Callable[[], bool]], Runnable | None]


class CockpitApp(App[None]):
    CSS_PATH = "cockpit.tcss"
    TITLE = "mikrobot"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("h", "halt", "Halt"),
        Binding("r", "resume", "Resume"),
        Binding("f", "flatten", "Flatten"),
        Binding("d", "decisions", "Decisions"),
        Binding("p", "report", "Report"),
        Binding("q", "quit", "Quit"),
    ]
    # How long a command waits for an engine to answer before the cockpit says nobody did.
    command_timeout_s = 3.0
    # How long quitting waits for an in-process engine to stop cleanly.
    engine_stop_timeout_s = 10.0

    def __init__(
        self,
        db_path: Path | str,
        clock: Clock | None = None,
        engine: Runnable | None = None,
        refresh_hz: float = 4.0,
        starting: Starting | None = None,
    ) -> None:
        super().__init__()
        self._starting = starting
        self.db_path = Path(db_path)
        self.clock: Clock = clock if clock is not None else LiveClock()
        self.engine = engine
        self.refresh_hz = refresh_hz
        self._stop = asyncio.Event()
        self._engine_worker: Worker[None] | None = None
        self.cockpit = CockpitScreen(self.db_path, self.clock, refresh_hz)
        # an engine to build says "warming up" from the first frame, though it starts after it
        self.cockpit.starting = engine is None and starting is not None

    def get_default_screen(self) -> Screen:
        return self.cockpit

    def on_mount(self) -> None:
        if self.engine is not None or self._starting is not None:
            # after the first frame: building an engine (its imports, its warm-up) in a thread
            # still holds the interpreter's lock, and the frame would wait for it
            self.call_after_refresh(self._start_engine)

    def _start_engine(self) -> None:
        if self._engine_worker is None and not self._stop.is_set():
            self._engine_worker = self.run_worker(
                self._run_engine(), name="engine", group="engine", exit_on_error=False
            )

    async def _run_engine(self) -> None:
        if self.engine is None and self._starting is not None:
            self.cockpit.starting = True
            notices = self.cockpit.query_one(SignalNotices)
            notices.hold()  # the warm-up's breakers and alerts are history, not news
            try:
                self.engine = await asyncio.to_thread(self._starting, self._stop.is_set)
            finally:
                self.cockpit.starting = False
                notices.from_now()
            if self.engine is None:  # stopped while starting, or failed: the command says why
                self.exit()
                return
        if self.engine is not None:
            await self.engine.run(self._stop)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker is not self._engine_worker or self._stop.is_set():
            return
        if event.state == WorkerState.ERROR:
            self.notify(f"engine stopped: {event.worker.error!r}", severity="error", timeout=30)
        elif event.state == WorkerState.SUCCESS:
            self.notify("engine stopped", severity="warning", timeout=30)

    # -- the operator's keys --------------------------------------------------------------------
    def action_halt(self) -> None:
        self.cockpit.send_command(Command.HALT, self.command_timeout_s)

    def action_resume(self) -> None:
        self.cockpit.send_command(Command.RESUME, self.command_timeout_s)

    def action_flatten(self) -> None:
        if isinstance(self.screen, FlattenScreen):
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.cockpit.send_command(Command.FLATTEN, self.command_timeout_s)

        self.push_screen(FlattenScreen(self.cockpit.open_positions_text()), answered)

    def action_decisions(self) -> None:
        """Every factor of the last decisions' scores, over the cockpit."""
        if isinstance(self.screen, DecisionsScreen):
            return
        snap = self.cockpit.last_snapshot
        self.push_screen(DecisionsScreen(snap.decisions if snap else []))

    def action_report(self) -> None:
        """Every account's performance report, over the cockpit."""
        from mikrobot_tui.tui.report_screen import ReportScreen  # the analytics: when asked

        if isinstance(self.screen, ReportScreen):
            return
        self.push_screen(ReportScreen(self.db_path))

    async def action_quit(self) -> None:
        self._stop.set()
        worker = self._engine_worker
        if worker is not None and not worker.is_finished:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(worker.wait(), timeout=self.engine_stop_timeout_s)
        self.exit()

    def deliver_screenshot(
        self, filename: str | None = None, path: str | None = None, time_format: str | None = None
    ) -> str | None:
        """The palette's Screenshot: into the working directory (Textual's default, the
        user's Downloads folder, fails where there is none, as on a server); the toast says
        where it went."""
        return super().deliver_screenshot(filename, path or str(Path.cwd()), time_format)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield SystemCommand(
            "Halt trading", "Refuse every new order until resumed (h)", self.action_halt
        )
        yield SystemCommand("Resume trading", "Accept orders again (r)", self.action_resume)
        yield SystemCommand(
            "Flatten", "Close every open position at market, after asking (f)", self.action_flatten
        )
        yield SystemCommand(
            "Decisions", "Why each recent signal was traded or refused (d)", self.action_decisions
        )
        yield SystemCommand(
            "Performance report",
            "Each account's returns, ratios, drawdowns and costs (p)",
            self.action_report,
        )
        yield from super().get_system_commands(screen)

    @property
    def stop_event(self) -> asyncio.Event:
        """Set when the operator quits; an in-process engine stops on it."""
        return self._stop
