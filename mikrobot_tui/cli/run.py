"""`mikrobot` and `mikrobot run`: the cockpit with its engine, or the engine headless."""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import signal
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from mikrobot_tui.cli.common import EXIT_BAD_INPUT, echo, fail, options, settings
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
    except EngineBusy:
        raise fail(_busy_message(engine)) from None
    return engine


def _busy_message(engine: Engine) -> str:
    """Another engine runs on the database: how to attach to that one, with this --db."""
    from mikrobot_tui.store.queries import engine_status

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
    try:
        asyncio.run(_headless(runner, duration, every))
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
    while not task.done():
        await asyncio.wait({task}, timeout=every)
        if not task.done():
            echo(status_line(runner))
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
    return " | ".join(parts)
