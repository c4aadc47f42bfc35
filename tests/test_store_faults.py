"""A busy, locked or full database loses nothing: the writer keeps its rows and carries on."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest
from engine_data import FAST_ACCOUNTS, waves

from mikrobot_tui.data.feeds import ReplayFeed, save_ticks
from mikrobot_tui.domain.events import EventKind
from mikrobot_tui.domain.orders import TradingState
from mikrobot_tui.engine import Engine
from mikrobot_tui.engine.runner import Runner
from mikrobot_tui.store.events import read_events
from mikrobot_tui.store.schema import connect, open_db
from mikrobot_tui.store.writer import Writer

EVENT_COLS = ("seq", "ts", "kind", "payload")


def hold_write_lock(path: Path, seconds: float) -> threading.Thread:
    """Another process's `BEGIN IMMEDIATE`, held for `seconds` (a thread with its own file
    handle is the same to SQLite's locking as another process)."""
    ready = threading.Event()

    def hold() -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        ready.set()
        time.sleep(seconds)
        conn.execute("COMMIT")
        conn.close()

    t = threading.Thread(target=hold, daemon=True)
    t.start()
    ready.wait(5)
    return t


def test_a_locked_database_keeps_every_row_until_the_lock_goes(db_path: Path) -> None:
    db = open_db(db_path)
    w = Writer(db.conn, busy_timeout_ms=50)
    w.append("events", EVENT_COLS, [(1, 1, "halted", "{}")])
    holder = hold_write_lock(db_path, 0.6)
    assert w.flush() == 0  # no exception, nothing written, nothing dropped
    assert w.pending_rows == 1
    assert "locked" in (w.problem or "")
    w.append("events", EVENT_COLS, [(2, 2, "resumed", "{}")])
    holder.join()
    deadline = time.monotonic() + 5
    while w.pending_rows and time.monotonic() < deadline:
        w.flush()  # retried with backoff: early calls may return at once
        time.sleep(0.02)
    assert w.problem is None
    assert db.execute("SELECT seq FROM events ORDER BY seq").fetchall() == [(1,), (2,)]


def test_snapshot_tables_keep_only_their_newest_rows_while_blocked(db_path: Path) -> None:
    db = open_db(db_path)
    w = Writer(db.conn, busy_timeout_ms=20)
    holder = hold_write_lock(db_path, 0.4)
    for i in range(1000):  # four snapshots a second for minutes: bounded, not a growing list
        w.replace_all("breakers", ("name", "state", "ts"), [("feed:sim", "CLOSED", i)])
        w.flush()
    assert w.pending_rows == 1
    holder.join()
    time.sleep(2.1)  # past the longest backoff
    w.flush()
    assert db.execute("SELECT ts FROM breakers").fetchall() == [(999,)]


def test_a_full_database_is_a_problem_not_a_crash_and_recovers(db_path: Path) -> None:
    db = open_db(db_path)
    w = Writer(db.conn, busy_timeout_ms=20)
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages + 2}")
    w.append("rejects", ("ts", "reason", "raw"), [(i, "x", "y" * 500) for i in range(200)])
    assert w.flush() == 0
    assert w.full and "full" in (w.problem or "")
    assert db.execute("SELECT COUNT(*) FROM rejects").fetchone()[0] == 0  # nothing half-written
    db.execute("PRAGMA max_page_count = 1000000")
    time.sleep(0.1)
    deadline = time.monotonic() + 5
    while w.pending_rows and time.monotonic() < deadline:
        w.flush()
        time.sleep(0.02)
    assert db.execute("SELECT COUNT(*) FROM rejects").fetchone()[0] == 200
    assert w.problem is None and not w.full


def _replay_engine(make_settings, tmp_path: Path, n: int = 6000) -> tuple[Engine, ReplayFeed]:
    settings = make_settings(accounts=FAST_ACCOUNTS, paper={"latency_ms": 50})
    file = tmp_path / "w.npz"
    save_ticks(file, waves(n), ["EURUSD", "USDJPY"])
    feed = ReplayFeed(file, batch_size=200)
    return Engine(settings, feed=feed), feed


def test_a_replay_waits_out_a_lock_and_its_books_match_the_event_log(
    make_settings, tmp_path: Path
) -> None:
    engine, feed = _replay_engine(make_settings, tmp_path)
    engine.start()
    batches = feed.iter_batches()
    runner = Runner(engine)
    runner.replay(b for _, b in zip(range(10), batches, strict=False))
    holder = hold_write_lock(Path(engine.db_path), 1.5)  # longer than the writer's patience
    runner.replay(batches)  # waits, retries, never raises
    holder.join()
    conn = engine.conn
    closed = [e for e in read_events(conn) if e.kind is EventKind.POSITION_CLOSED]
    assert len(closed) >= 5
    for name, acct in engine.state.accounts.items():
        rows = conn.execute("SELECT trades FROM accounts WHERE name = ?", [name]).fetchone()
        logged = sum(1 for e in closed if e.account == name)
        stored = conn.execute("SELECT COUNT(*) FROM trades WHERE account = ?", [name]).fetchone()
        assert rows[0] == logged == stored[0] == len(acct.trades)
    engine.close()


def test_a_full_database_halts_trading_with_an_event_once_there_is_room(
    make_settings, tmp_path: Path
) -> None:
    engine, feed = _replay_engine(make_settings, tmp_path, n=8000)
    engine.start()
    batches = feed.iter_batches()
    runner = Runner(engine)
    runner._open_log()  # the run's log, as a live run keeps it
    runner.replay(b for _, b in zip(range(10), batches, strict=False))
    pages = engine.conn.execute("PRAGMA page_count").fetchone()[0]
    engine.conn.execute(f"PRAGMA max_page_count = {pages + 1}")
    for batch in batches:
        engine.corridor.process(batch)
        engine.writer.flush()
        if engine.writer.full:
            break
    assert engine.writer.full
    runner.on_writer_problem()  # what the live loop does when the writer reports
    assert engine.trading_state is TradingState.HALTED
    engine.conn.execute("PRAGMA max_page_count = 1000000")
    runner.replay(batches)
    halts = [e for e in read_events(engine.conn) if e.kind is EventKind.HALTED]
    assert [e.payload["source"] for e in halts] == ["database full"]
    seqs = [s for (s,) in engine.conn.execute("SELECT seq FROM events ORDER BY seq")]
    assert seqs == list(range(1, len(seqs) + 1))
    alerts = [e.payload for e in read_events(engine.conn) if e.kind is EventKind.ALERT]
    alert = next(a for a in alerts if a["kind"] == "engine_halted")
    assert alert["severity"] == "critical" and "database full" in alert["text"]
    assert runner.log is not None
    path = runner.log.path
    runner._close_log()
    engine.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    said = [(line["msg"], line["level"]) for line in lines]
    assert ("database problem", "error") in said and ("alert", "error") in said
    assert said.index(("database problem", "error")) < said.index(
        ("database problem cleared", "info")
    )
    problem = next(line for line in lines if line["msg"] == "database problem")
    assert "database or disk full" in problem["problem"]


def test_a_non_transient_error_still_raises(db_path: Path) -> None:
    db = open_db(db_path)
    w = Writer(db.conn)
    w.append("no_such_table", ("a",), [(1,)])
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        w.flush()


def test_connect_takes_its_busy_timeout(db_path: Path) -> None:
    conn = connect(db_path, busy_timeout_ms=123)
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 123


@pytest.mark.slow
def test_a_headless_engine_waits_out_a_7_second_lock_and_halt_says_it_waits(
    tmp_path: Path,
) -> None:
    from test_headless import cli, start_engine, wait_until_running

    db = tmp_path / "locked.db"
    engine = start_engine(db, 40, MIKROBOT_SIM__SPEED="60", MIKROBOT_RISK__MAX_POSITIONS="6")
    try:
        wait_until_running(db)
        time.sleep(2)
        holder = hold_write_lock(db, 7.0)  # longer than SQLite's 5 s busy timeout
        time.sleep(1.5)
        status = json.loads(cli(db, "status", "--json").stdout)
        assert status["engine"]["running"] is True
        assert "locked" in status["engine"]["db_problem"]
        halted = cli(db, "halt", timeout=60)
        holder.join()
        assert halted.returncode == 0, halted.stderr
        assert "waiting" in halted.stderr and "halted" in halted.stdout
        assert "Traceback" not in halted.stderr
        time.sleep(1.5)
        status = json.loads(cli(db, "status", "--json").stdout)
        assert status["engine"]["running"] and status["engine"]["db_problem"] is None
        assert status["engine"]["trading_state"] == "HALTED"
        engine.send_signal(signal.SIGTERM)
        assert engine.wait(timeout=20) == 0
    finally:
        if engine.poll() is None:
            engine.kill()
    conn = open_db(db).conn
    closed = [e for e in read_events(conn) if e.kind is EventKind.POSITION_CLOSED]
    for name, trades in conn.execute("SELECT name, trades FROM accounts").fetchall():
        logged = sum(1 for e in closed if e.account == name)
        stored = conn.execute("SELECT COUNT(*) FROM trades WHERE account = ?", [name]).fetchone()
        assert trades == logged == stored[0]


def _tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    run = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)])
    return run.returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_full_disk_halts_trading_says_what_to_free_and_recovers(tmp_path: Path) -> None:
    from test_headless import MIKROBOT, env

    disk = tmp_path / "disk"
    assert _tmpfs(disk, "32m")
    try:
        db = disk / "full.db"
        proc = subprocess.Popen(
            [*MIKROBOT, "--db", str(db), "run", "--headless", "--duration", "25", "--every", "1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env(MIKROBOT_SIM__SPEED="10", MIKROBOT_SIM__WARMUP_MINUTES="5"),
        )
        filler = disk / "filler"
        time.sleep(6)
        with open(filler, "wb") as f, contextlib.suppress(OSError):  # another program fills it
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        time.sleep(6)
        filler.unlink()  # the operator frees space
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert "Traceback" not in out + err
        assert "database problem" in out and "free at least" in out and str(db) in out
        assert "database ok again" in out
        conn = sqlite3.connect(db)
        kinds = [k for (k,) in conn.execute("SELECT kind FROM events ORDER BY seq")]
        payloads = [p for (p,) in conn.execute("SELECT payload FROM events WHERE kind='halted'")]
        assert "halted" in kinds and "database full" in payloads[0]
        seqs = [s for (s,) in conn.execute("SELECT seq FROM events ORDER BY seq")]
        assert seqs == list(range(1, len(seqs) + 1))
        conn.close()
    finally:
        subprocess.run(["umount", "-l", str(disk)])


@pytest.mark.slow
def test_a_disk_that_stays_full_ends_the_run_with_exit_1_and_a_plain_message(
    tmp_path: Path,
) -> None:
    import resource

    from test_headless import MIKROBOT, env

    db = tmp_path / "capped.db"

    def cap() -> None:  # the process may write no file past 1 MiB: SQLite sees a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024 * 1024, resource.RLIM_INFINITY))

    run = subprocess.run(
        [*MIKROBOT, "--db", str(db), "run", "--headless", "--duration", "60"],
        capture_output=True,
        text=True,
        timeout=90,
        preexec_fn=cap,
        env=env(
            MIKROBOT_SIM__SPEED="300",
            MIKROBOT_SIM__WARMUP_MINUTES="30",
            MIKROBOT_ENGINE__DB_WAIT_S="3",
        ),
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Traceback" not in run.stdout + run.stderr
    last = run.stderr.strip().splitlines()[-1]  # SQLite sees EFBIG as full or as an I/O error
    assert str(db) in last and "trading halted" in last and "db_wait_s" in last
    assert "free at least" in last
