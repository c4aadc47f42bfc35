"""`mikrobot` and `mikrobot run`: the cockpit with its engine, or the engine headless."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import shlex
import signal
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from mikrobot_tui.cli.common import (
    EXIT_BAD_INPUT,
    check_db,
    db_errors,
    echo,
    fail,
    options,
    settings,
)
from mikrobot_tui.config import ConfigError, Settings

if TYPE_CHECKING:
    from mikrobot_tui.engine import Engine, EngineBusy
    from mikrobot_tui.engine.runner import Runner


STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class StopSignals:
    """Ctrl-C, SIGTERM and SIGHUP (the terminal closed) ask for a clean stop, from the moment
    the command starts: during the engine's start-up (its warm-up takes seconds) as well as
    while it runs. A second Ctrl-C gives up on the clean stop."""

    def __init__(self) -> None:
        self.requested = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None

    def __call__(self) -> bool:
        return self.requested

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        if self._loop is not None and self._event is not None:
            # wakes the loop at once (a plain set() from a handler may wait for its timeout)
            self._loop.call_soon_threadsafe(self._event.set)

    def attach(self, event: asyncio.Event) -> None:
        """Set `event` (of the running loop) on the next signal, or now if one came."""
        self._loop, self._event = asyncio.get_running_loop(), event
        if self.requested:
            event.set()

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopSignals]:
        previous = {}
        try:
            for sig in STOP_SIGNALS:
                with contextlib.suppress(ValueError):  # not the main thread: leave them be
                    previous[sig] = signal.signal(sig, self._handle)
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._loop = self._event = None


def started_engine(s: Settings, stop: Callable[[], bool]) -> Engine | None:
    """The engine, started; None when `stop` said so before it was."""
    from mikrobot_tui.engine import EngineBusy, build_engine

    with db_errors(s.engine.db):
        try:
            engine = build_engine(s)
        except ConfigError as exc:
            raise fail(str(exc), EXIT_BAD_INPUT) from None
        if stop():
            engine.close()
            return None
        try:
            engine.start(should_stop=stop)
        except EngineBusy as exc:
            raise fail(_busy_message(engine, exc)) from None
    # What is alive now (modules, settings, the engine's rooms) lives as long as the process:
    # out of the garbage collector's sight, full collections stop rescanning it (3% of a
    # replay's time).
    gc.freeze()
    return engine


def _busy_message(engine: Engine, exc: EngineBusy) -> str:
    """Another engine runs on the database: how to attach to that one, with this --db."""
    from mikrobot_tui.store.queries import engine_status

    if not exc.running_elsewhere:  # locked, or written to while starting: its own words
        engine.conn.close()
        return str(exc)
    pid = engine_status(engine.conn, time.time_ns()).pid
    engine.conn.close()
    attach = ["mikrobot"]
    if options.config is not None:
        attach += ["--config", shlex.quote(str(options.config))]
    attach += ["--db", shlex.quote(str(engine.db_path)), "--attach"]
    who = f"another engine (pid {pid})" if pid is not None else "another engine"
    return (
        f"{who} is running on {engine.db_path}; attach to it with `{' '.join(attach)}`, "
        "or stop it first"
    )


class CockpitStart:
    """Builds and starts the engine in the cockpit's worker thread, so the frame is on screen
    at once and says "warming up" while the engine warms (a second or more: the simulated
    market plays its last hour first). What would have stopped the command (a busy or bad
    database, a config error) is kept and said once the screen is gone."""

    def __init__(self, s: Settings) -> None:
        self.settings = s
        self.engine: Engine | None = None
        self.failure: tuple[str, int] | None = None

    def __call__(self, should_stop: Callable[[], bool]) -> Runner | None:
        from mikrobot_tui.engine.runner import Runner

        try:
            self.engine = started_engine(self.settings, should_stop)
        except typer.Exit as exc:
            self.failure = (getattr(exc, "message", ""), exc.exit_code)
            return None
        return Runner(self.engine) if self.engine is not None else None

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()


def cockpit(attach: bool) -> None:
    s = settings()
    from mikrobot_tui.tui.app import CockpitApp

    if attach:
        check_db(s.engine.db, write=False)
        CockpitApp(s.engine.db).run()
        return
    check_db(s.engine.db, write=True)  # a path that cannot be a database: said before the screen
    start = CockpitStart(s)
    try:
        CockpitApp(s.engine.db, starting=start).run()
    finally:
        start.close()
    if start.failure is not None:
        message, code = start.failure
        raise fail(message, code)


def run(
    headless: Annotated[
        bool, typer.Option("--headless", help="Run the engine without a screen")
    ] = False,
    duration: Annotated[
        float | None, typer.Option("--duration", min=0.1, help="Stop after S seconds")
    ] = None,
    every: Annotated[
        float, typer.Option("--every", min=0.5, help="Seconds between status lines")
    ] = 2.0,
) -> None:
    """Run the engine: the cockpit, or with --headless status lines on stdout."""
    if not headless:
        cockpit(attach=False)
        return
    from mikrobot_tui.engine.runner import DatabaseUnavailable, Runner

    s = settings()
    stop = StopSignals()
    with stop.installed():
        engine = started_engine(s, stop)
        if engine is None:
            echo("stopped during start-up")
            return
        runner = Runner(engine)
        try:
            if stop.requested:
                echo("stopped during start-up")
                return
            echo(
                f"mikrobot engine: {engine.feed.mode} feed {engine.feed.name}, "
                f"{len(engine.symbols)} symbols, db {engine.db_path}; "
                "Ctrl-C, SIGTERM or SIGHUP stops it"
            )
            asyncio.run(_headless(runner, duration, every, stop))
        except DatabaseUnavailable as exc:
            raise fail(f"stopped: {exc}") from None
        except ConfigError as exc:  # an external signal source that could not start
            raise fail(str(exc), EXIT_BAD_INPUT) from None
        finally:
            lost = (engine.writer.pending_rows or engine.writer.pending_ticks) and (
                runner.describe_problem()
            )
            engine.close()
    if lost:
        raise fail(f"stopped with rows not written: {lost}")
    echo(f"stopped: {status_line(runner)}")


async def _headless(
    runner: Runner, duration: float | None, every: float, signals: StopSignals
) -> None:
    stop = asyncio.Event()
    signals.attach(stop)
    task = asyncio.create_task(runner.run(stop, duration_s=duration))
    loop_time = asyncio.get_running_loop().time
    next_line = loop_time() + every
    problem = None
    while not task.done():
        await asyncio.wait({task}, timeout=min(every, 0.25))
        if task.done():
            break
        now_problem = runner.describe_problem()
        if now_problem != problem and (now_problem is None) != (problem is None):
            echo(f"database problem: {now_problem}" if now_problem else "database ok again")
        problem = now_problem
        if loop_time() >= next_line:
            echo(status_line(runner))
            next_line = loop_time() + every
    task.result()


def status_line(runner: Runner) -> str:
    engine = runner.engine
    now = datetime.fromtimestamp(engine.clock.now_ns() / 1e9, tz=UTC).strftime("%H:%M:%S")
    c = engine.corridor.counts
    parts = [
        f"{now}Z {engine.feed.mode} {engine.trading_state}",
        f"ticks {c.ticks_in} rejects {c.rejects} bars {c.bars}",
        f"events {engine.ledger.log.last_seq}",
    ]
    if runner.queue.dropped:
        parts.append(f"dropped {runner.queue.dropped} (engine fell behind the feed)")
    for acct in engine.state.accounts.values():
        parts.append(
            f"{acct.name}: bal {acct.balance:.2f} pos {len(acct.positions)} "
            f"trades {len(acct.trades)}"
        )
    if engine.intake is not None:
        n = engine.intake.counts
        parts.append(
            f"signals {n.signals} orders {n.submitted} refused {n.refused} "
            f"rejected {n.rejected + n.suppressed}"
        )
    opened = [b.name for b in engine.breakers if str(b.state) != "CLOSED"]
    parts.append("breakers " + (", ".join(opened) + " not closed" if opened else "all closed"))
    problem = runner.describe_problem()
    if problem:
        parts.append(f"DATABASE: {problem}")
    return " | ".join(parts)
