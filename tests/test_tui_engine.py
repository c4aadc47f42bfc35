"""The cockpit on the real engine: a live simulated market, the operator's keys, SQLite after.

No stand-ins: `build_engine` on a seeded sim, started the way `mikrobot` starts it, run by the
cockpit's own worker. Every wait is bounded; a timeout fails the test rather than skipping.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

from textual.pilot import Pilot

from mikrobot_tui.engine import build_engine
from mikrobot_tui.engine.runner import Runner
from mikrobot_tui.tui.app import CockpitApp
from mikrobot_tui.tui.panes._table import KeyedTable
from mikrobot_tui.tui.panes.ticks import TicksPane
from mikrobot_tui.tui.screens import CockpitScreen, FlattenScreen

SIZE = (120, 36)
# Short EMAs cross within a few M1 bars. At 60 simulated seconds per wall second the first
# position opens within ~0.2-3.5 s of wall time (measured over many runs); at 30 it took up
# to 6 s, too close to the bound for comfort on a loaded machine.
SPEED = 60
FAST_ACCOUNTS = [
    {"name": "A", "params": {"fast": 2, "slow": 5, "atr_period": 3}},
    {"name": "B", "params": {"fast": 3, "slow": 8, "atr_period": 3}},
]


async def wait_until(pilot: Pilot, ready: Callable[[], bool], what: str, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not ready():
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        await pilot.pause(0.05)


def header(app: CockpitApp, part: str) -> str:
    return str(app.query_one(f"#header #{part}").content)


def db_rows(path: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


async def test_live_engine_halt_flatten_quit(make_settings) -> None:
    settings = make_settings(
        sim={"speed": SPEED, "seed": 7, "warmup_minutes": 60},
        risk={"max_positions": 3},
        accounts=FAST_ACCOUNTS,
    )
    db = Path(settings.engine.db)
    engine = build_engine(settings)
    engine.start()  # as `mikrobot` does: claim the database, warm up, then hand it to the app
    answers: list[CockpitScreen.CommandAnswered] = []

    def hook(message: object) -> None:
        if isinstance(message, CockpitScreen.CommandAnswered):
            answers.append(message)

    try:
        app = CockpitApp(db, engine=Runner(engine))
        async with app.run_test(size=SIZE, message_hook=hook) as pilot:
            ticks = app.query_one(TicksPane)
            symbols = list(engine.symbols)

            def lines() -> list[str]:
                return [ticks.line_text(s) for s in symbols]

            # The warm-up already wrote prices, so the first frame has every symbol (line_text
            # raises KeyError otherwise); live ones must then keep arriving.
            first = lines()
            await wait_until(pilot, lambda: lines() != first, "live prices", 15)
            assert header(app, "mode") == "SIMULATED"
            assert header(app, "engine").startswith("● engine running")

            table = app.query_one("#positions-table", KeyedTable)
            await wait_until(pilot, lambda: table.row_count > 0, "an open position", 15)
            assert not app.query_one("#no-positions").display

            await pilot.press("h")
            await wait_until(pilot, lambda: "HALTED" in header(app, "state"), "HALTED", 5)

            await pilot.press("f")
            assert isinstance(app.screen, FlattenScreen)
            assert "open position" in str(app.screen.query_one("#detail").content)
            await pilot.press("y")
            assert isinstance(app.screen, CockpitScreen)

            no_positions = app.query_one("#no-positions")

            def flat() -> bool:
                return table.row_count == 0 and bool(no_positions.display)

            await wait_until(pilot, flat, "positions pane empty after flatten", 10)
            assert "no open positions" in str(no_positions.content)
            assert not table.display
            # Halted: the flatten stays flat, no new position opens behind it.
            await pilot.pause(1.0)
            assert flat()
            assert [(str(a.command), a.row and a.row.status) for a in answers] == [
                ("halt", "done"),
                ("flatten", "done"),
            ]

            await pilot.press("q")
        assert db_rows(db, "SELECT running, trading_state FROM engine") == [(0, "HALTED")]
        kinds = [k for (k,) in db_rows(db, "SELECT kind FROM events ORDER BY seq")]
        assert kinds.count("halted") == 1
        assert kinds.count("flatten") == 1
        # Every position open at the flatten closed after it (at market, or by a stop that
        # was hit first), and none opened: trading was halted.
        (flatten_payload,) = db_rows(db, "SELECT payload FROM events WHERE kind = 'flatten'")
        flattened = json.loads(flatten_payload[0])["positions"]
        after_flatten = kinds[kinds.index("flatten") :]
        assert after_flatten.count("position_closed") == flattened
        assert "position_opened" not in after_flatten
        assert db_rows(db, "SELECT COUNT(*) FROM positions") == [(0,)]
    finally:
        engine.close()


async def test_the_frame_shows_at_once_and_says_warming_up_until_the_engine_runs(
    make_settings,
) -> None:
    """`mikrobot` starts its engine in a worker thread with the cockpit already drawn: the
    header says it is warming up, then the engine's figures arrive; a database another engine
    holds is kept as the command's failure, said once the screen is gone."""
    import threading

    from mikrobot_tui.cli.run import CockpitStart

    settings = make_settings(sim={"speed": SPEED, "seed": 7, "warmup_minutes": 60})
    release = threading.Event()
    start = CockpitStart(settings)

    def starting(should_stop: Callable[[], bool]) -> Runner | None:
        release.wait(10)  # holds the start, as a long warm-up would
        return start(should_stop)

    app = CockpitApp(settings.engine.db, starting=starting)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(
                pilot, lambda: "warming up" in header(app, "engine"), "warming up shown", 5
            )
            note = app.query_one(TicksPane).border_subtitle or ""
            assert "warming up" in str(note)
            release.set()
            await wait_until(
                pilot, lambda: "engine running" in header(app, "engine"), "engine running", 20
            )
            await app.action_quit()
    finally:
        release.set()
        start.close()
    assert start.failure is None

    # a cockpit on a database another live process's engine holds: refused, said after the
    # screen is gone (the parent process stands in for that engine)
    import os
    import time

    conn = sqlite3.connect(settings.engine.db)
    conn.execute(
        "UPDATE engine SET running = 1, pid = ?, heartbeat_ts = ? WHERE id = 1",
        (os.getppid(), time.time_ns()),
    )
    conn.commit()
    conn.close()
    busy = CockpitStart(settings)
    app = CockpitApp(settings.engine.db, starting=busy)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: busy.failure is not None, "the refusal", 20)
            await wait_until(pilot, lambda: not app.is_running, "the cockpit closed", 5)
    finally:
        busy.close()
    message, code = busy.failure
    assert code == 1 and "another engine" in message and "--attach" in message
