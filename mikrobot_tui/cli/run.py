"""`mikrobot` and `mikrobot run`: the cockpit with its engine, or the engine headless."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from mikrobot_tui.cli.common import EXIT_BAD_INPUT, echo, fail, settings
from mikrobot_tui.config import ConfigError, Settings

if TYPE_CHECKING:
    from mikrobot_tui.engine import Engine
    from mikrobot_tui.engine.runner import Runner


def started_engine(s: Settings) -> Engine:
    from mikrobot_tui.engine import EngineBusy, build_engine

    try:
        engine = build_engine(s)
    except ConfigError as exc:
        raise fail(str(exc), EXIT_BAD_INPUT) from None
    try:
        engine.start()
    except EngineBusy as exc:
        engine.conn.close()
        raise fail(str(exc)) from None
    return engine


def cockpit(attach: bool) -> None:
    s = settings()
    from mikrobot_tui.engine.runner import Runner
    from mikrobot_tui.tui.app import CockpitApp

    engine = None if attach else started_engine(s)
    CockpitApp(s.engine.db, engine=Runner(engine) if engine is not None else None).run()
    if engine is not None:
        engine.close()


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
    from mikrobot_tui.engine.runner import Runner

    engine = started_engine(settings())
    runner = Runner(engine)
    echo(
        f"mikrobot engine: {engine.feed.mode} feed {engine.feed.name}, "
        f"{len(engine.symbols)} symbols, db {engine.db_path}; "
        "Ctrl-C or SIGTERM stops it"
    )
    from mikrobot_tui.engine.runner import DatabaseUnavailable

    try:
        asyncio.run(_headless(runner, duration, every))
    except DatabaseUnavailable as exc:
        raise fail(f"stopped: {exc}") from None
    finally:
        engine.close()
    echo(f"stopped: {status_line(runner)}")


async def _headless(runner: Runner, duration: float | None, every: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows
            loop.add_signal_handler(sig, stop.set)
    task = asyncio.create_task(runner.run(stop, duration_s=duration))
    loop_time = loop.time
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
    opened = [b.name for b in engine.breakers if str(b.state) != "CLOSED"]
    parts.append("breakers " + (", ".join(opened) + " not closed" if opened else "all closed"))
    problem = runner.describe_problem()
    if problem:
        parts.append(f"DATABASE: {problem}")
    return " | ".join(parts)
