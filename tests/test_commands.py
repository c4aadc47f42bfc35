"""Operator commands: bad rows are answered, old ones never run, nobody's command runs twice."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from engine_data import FAST_ACCOUNTS, replay, waves

from mikrobot_tui.domain.orders import TradingState
from mikrobot_tui.engine import EngineBusy
from mikrobot_tui.store import commands
from mikrobot_tui.store.schema import open_db

MALFORMED = [
    ("halt", "[1, 2]", "JSON object"),
    ("halt", "null", "JSON object"),
    ("halt", '"x"', "JSON object"),
    ("halt", "{not json", "JSON object"),
    ("explode", "{}", "unknown command"),
    (None, "{}", "unknown command"),
]


@pytest.fixture
def engine(make_settings, tmp_path):
    settings = make_settings(accounts=FAST_ACCOUNTS)
    e = replay(settings, waves(600), tmp_path / "c", batch=300)
    yield e
    e.close()


def insert(conn, command, args, ts) -> int:
    cur = conn.execute(
        "INSERT INTO commands (ts, command, args, status) VALUES (?, ?, ?, 'pending')",
        [ts, command, args],
    )
    return int(cur.lastrowid)


def test_malformed_commands_are_failed_with_the_reason_and_the_engine_runs_on(engine) -> None:
    conn = engine.conn
    now = time.time_ns()
    ids = [insert(conn, c, a, now) for c, a, _ in MALFORMED]
    no_ts = insert(conn, "halt", "{}", None)
    good = commands.send(conn, commands.Command.HALT, ts=now, source="test")
    assert engine.control.handle_commands() == len(ids) + 2
    for command_id, (_, _, why) in zip(ids, MALFORMED, strict=True):
        row = commands.get(conn, command_id)
        assert row.status == "failed" and why in row.result
    assert "no valid time" in commands.get(conn, no_ts).result
    assert commands.get(conn, good).status == "done"
    assert engine.trading_state is TradingState.HALTED


def test_a_malformed_row_does_not_stop_a_restart_either(make_settings, tmp_path) -> None:
    settings = make_settings(accounts=FAST_ACCOUNTS)
    first = replay(settings, waves(300), tmp_path / "a", batch=300)
    insert(first.conn, "halt", "{not json", time.time_ns() + 10**9)
    first.close()
    again = replay(settings, waves(600)[300:], tmp_path / "b", batch=300)
    assert again.control.handle_commands() == 1
    assert commands.get(again.conn, 1).status == "failed"
    again.close()


def test_a_command_sent_before_the_engine_started_is_never_carried_out(engine) -> None:
    old = commands.send(engine.conn, commands.Command.FLATTEN, ts=engine.control.started_ts - 1)
    assert engine.control.handle_commands() == 0
    row = commands.get(engine.conn, old)
    assert row.status == "expired" and "before this engine started" in row.result
    assert not [r for r in engine.conn.execute("SELECT * FROM events WHERE kind='flatten'")]


def test_a_sender_that_gives_up_withdraws_and_no_later_engine_runs_it(
    make_settings, tmp_path
) -> None:
    settings = make_settings(accounts=FAST_ACCOUNTS)
    db = Path(settings.engine.db)
    conn = open_db(db).conn
    cid = commands.send(conn, commands.Command.HALT, ts=time.time_ns())
    assert commands.wait(conn, cid, timeout_s=0.2) is None  # nobody answered
    assert commands.get(conn, cid).status == "withdrawn"
    engine = replay(settings, waves(300), tmp_path / "late", batch=300)
    assert engine.control.handle_commands() == 0
    assert engine.trading_state is TradingState.ACTIVE
    engine.close()


def test_a_command_the_engine_claimed_is_not_withdrawn_but_waited_for(engine) -> None:
    conn = engine.conn
    cid = commands.send(conn, commands.Command.HALT, ts=time.time_ns())
    claimed = commands.claim(conn, not_before=0, now=time.time_ns())
    assert [c.id for c in claimed] == [cid]
    assert not commands.withdraw(conn, cid, time.time_ns())
    row = commands.wait(conn, cid, timeout_s=0.1)
    assert row is not None and row.status == "running"


def test_the_second_of_two_engines_on_one_database_is_refused(make_settings, tmp_path) -> None:
    settings = make_settings(accounts=FAST_ACCOUNTS)
    from mikrobot_tui.data.feeds import ReplayFeed, save_ticks
    from mikrobot_tui.engine import Engine

    file = tmp_path / "two.npz"
    save_ticks(file, waves(100), ["EURUSD", "USDJPY"])
    one = Engine(settings, feed=ReplayFeed(file, 50))
    two = Engine(settings, feed=ReplayFeed(file, 50))  # both read the (empty) log first
    one.start()
    with pytest.raises(EngineBusy, match="another engine"):
        two.start()
    one.close()
    two.conn.close()


@pytest.mark.slow
def test_two_engines_started_at_the_same_instant_on_a_new_database(tmp_path: Path) -> None:
    from test_headless import env

    for attempt in range(4):
        db = tmp_path / f"race{attempt}.db"
        cmd = [sys.executable, "-m", "mikrobot_tui.cli", "--db", str(db), "run", "--headless"]
        procs = [
            subprocess.Popen(
                [*cmd, "--duration", "2"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env(MIKROBOT_SIM__WARMUP_MINUTES="1"),
            )
            for _ in range(2)
        ]
        outs = [p.communicate(timeout=60) for p in procs]
        codes = sorted(p.returncode for p in procs)
        assert codes == [0, 1], outs
        loser = next(err for p, (_, err) in zip(procs, outs, strict=True) if p.returncode)
        assert "Traceback" not in loser and len(loser.strip().splitlines()) == 1, loser
        assert "another engine" in loser
        events = open_db(db).conn.execute("SELECT kind FROM events").fetchall()
        assert events.count(("account_opened",)) == 2


def test_a_halt_overtakes_a_backlog_of_100000_ticks(make_settings, tmp_path) -> None:
    """100,000 ticks wait in one batch; a halt arrives, its row committed by another
    connection (as `mikrobot halt` does) just before the corridor reaches tick N, i.e. after
    every decision before tick N's time and before any at or after it. No order may be
    submitted from a tick at or after N; before N orders were submitted, and without the
    halt they would have gone on (so the test would catch a halt applied only between
    batches)."""
    from mikrobot_tui.clock import ReplayClock
    from mikrobot_tui.data.feeds import ReplayFeed, save_ticks
    from mikrobot_tui.engine import Engine
    from mikrobot_tui.engine.runner import Runner
    from mikrobot_tui.store.events import read_events
    from mikrobot_tui.store.schema import connect

    ticks = waves(100_000)
    n = 50_000
    t_n = int(ticks["ts_event"][n])

    def run(name: str, halt: bool) -> list:
        settings = make_settings(
            accounts=FAST_ACCOUNTS, engine={"db": tmp_path / f"{name}.db", "store_ticks": False}
        )
        file = tmp_path / f"{name}.npz"
        save_ticks(file, ticks, ["EURUSD", "USDJPY"])
        feed = ReplayFeed(file, batch_size=len(ticks))  # the whole backlog in one batch
        engine = Engine(settings, feed=feed, clock=ReplayClock())
        engine.start()
        sender = connect(engine.db_path)
        advance = engine.corridor.venue.advance
        sent: list[int] = []

        def arrives_before_tick_n(stop, on_step=None):
            # the venue is brought up to each decision point before the corridor decides
            # there: the first time it reaches tick N, the halt is committed
            advance(stop, on_step)
            if halt and not sent and stop >= n:
                sent.append(commands.send(sender, commands.Command.HALT, ts=time.time_ns()))

        engine.corridor.venue.advance = arrives_before_tick_n
        batches = list(feed.iter_batches())
        assert len(batches) == 1 and len(batches[0]) == 100_000
        Runner(engine).replay(iter(batches))
        events = list(read_events(engine.conn))
        if halt:
            assert commands.get(sender, sent[0]).status == "done"
            assert engine.trading_state is TradingState.HALTED
        sender.close()
        engine.close()
        return events

    halted = run("halted", halt=True)
    submitted = [e.ts for e in halted if e.kind.value == "order_submitted"]
    (stop,) = [e for e in halted if e.kind.value == "halted"]
    assert submitted and max(submitted) < t_n <= stop.ts
    assert not [ts for ts in submitted if ts >= t_n]
    free = run("free", halt=False)
    assert any(e.ts >= t_n for e in free if e.kind.value == "order_submitted")
