"""The headless engine as a separate process, controlled from another, like a user does."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mikrobot_tui.domain.events import EventKind
from mikrobot_tui.paper.portfolio import fold
from mikrobot_tui.store.events import read_events
from mikrobot_tui.store.schema import open_db
from mikrobot_tui.store.tickstore import count_ticks

MIKROBOT = [sys.executable, "-m", "mikrobot_tui.cli"]


def env(**extra: str) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("MIKROBOT_")}
    e.update(PYTHONIOENCODING="ascii", **extra)
    return e


def cli(db: Path, *args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MIKROBOT, "--db", str(db), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env(),
    )


def start_engine(db: Path, duration_s: int, **env_vars: str) -> subprocess.Popen[bytes]:
    """A headless engine in its own process, as a user starts one in another terminal."""
    return subprocess.Popen(
        [*MIKROBOT, "--db", str(db), "run", "--headless", "--duration", str(duration_s)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env(**env_vars),
    )


def wait_until_running(db: Path, deadline_s: float = 15) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if db.exists():
            out = cli(db, "status", "--json")
            if out.returncode == 0 and json.loads(out.stdout)["engine"]["running"]:
                return
        time.sleep(0.2)
    raise AssertionError("the engine did not start")


def test_a_three_second_run_leaves_ticks_bars_and_events(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    run = subprocess.run(
        [*MIKROBOT, "--db", str(db), "run", "--headless", "--duration", "3", "--every", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env(MIKROBOT_SIM__SPEED="120"),  # two simulated minutes per second: bars close
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert len(lines) >= 3  # banner, status lines, the final line
    assert "SIMULATED" in lines[1] and "ticks" in lines[1]
    conn = open_db(db).conn
    count = lambda t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]  # noqa: E731
    assert count_ticks(conn) > 100
    assert count("bars") > 6
    assert count("events") >= 2
    assert conn.execute("SELECT running FROM engine").fetchone()[0] == 0


def test_halt_resume_and_status_from_another_terminal(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    engine = start_engine(db, 40, MIKROBOT_SIM__SPEED="30")
    try:
        wait_until_running(db)
        busy = cli(db, "run", "--headless", "--duration", "1")
        assert busy.returncode == 1
        assert f"attach to it with `mikrobot --db {db} --attach`" in busy.stderr, busy.stderr
        halted = cli(db, "halt")
        assert halted.returncode == 0, halted.stderr
        assert "halted" in halted.stdout
        status = json.loads(cli(db, "status", "--json").stdout)
        assert status["engine"]["trading_state"] == "HALTED"
        assert status["symbols"]
        flat = cli(db, "flatten", "--yes")
        assert flat.returncode == 0, flat.stderr + flat.stdout
        assert "flat" in flat.stdout
        assert json.loads(cli(db, "status", "--json").stdout)["positions"] == []
        resumed = cli(db, "resume")
        assert "resumed" in resumed.stdout
        assert json.loads(cli(db, "status", "--json").stdout)["engine"]["trading_state"] == "ACTIVE"
        engine.send_signal(signal.SIGTERM)
        assert engine.wait(timeout=15) == 0
    finally:
        if engine.poll() is None:
            engine.kill()
    kinds = [e.kind for e in read_events(open_db(db).conn)]
    assert EventKind.HALTED in kinds and EventKind.RESUMED in kinds and EventKind.FLATTEN in kinds
    assert "no engine is running" in cli(db, "halt").stderr


def test_after_kill_9_the_engine_restarts_to_the_same_state(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    engine = start_engine(db, 60, MIKROBOT_SIM__SPEED="600", MIKROBOT_RISK__MAX_POSITIONS="6")
    try:
        wait_until_running(db)
        time.sleep(4)
    finally:
        engine.kill()  # SIGKILL: no clean shutdown
        engine.wait(timeout=10)
    conn = open_db(db).conn
    state = fold(read_events(conn))
    closed = [e for e in read_events(conn) if e.kind is EventKind.POSITION_CLOSED]
    trades = conn.execute("SELECT position_id FROM trades ORDER BY position_id").fetchall()
    assert sorted(e.payload["position_id"] for e in closed) == [t[0] for t in trades]
    assert len({e.payload["position_id"] for e in closed}) == len(closed)

    rerun = subprocess.run(
        [*MIKROBOT, "--db", str(db), "run", "--headless", "--duration", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env(),
    )
    assert rerun.returncode == 0, rerun.stderr
    events = list(read_events(open_db(db).conn))
    again = fold(e for e in events if e.seq <= state.last_seq)
    for name, acct in state.accounts.items():
        assert again.accounts[name].balance == acct.balance
        assert again.accounts[name].positions == acct.positions
    assert sum(e.kind is EventKind.ACCOUNT_OPENED for e in events) == 2


def engine_row_running(db: Path) -> int | None:
    """The engine row's running flag; None when the engine never wrote its row."""
    if not db.exists():
        return None
    row = open_db(db).conn.execute("SELECT running FROM engine").fetchone()
    return None if row is None else row[0]


def test_sighup_stops_the_engine_cleanly_like_sigterm(tmp_path: Path) -> None:
    db = tmp_path / "hup.db"
    engine = start_engine(db, 40, MIKROBOT_SIM__SPEED="30")
    try:
        wait_until_running(db)
        engine.send_signal(signal.SIGHUP)
        assert engine.wait(timeout=15) == 0
    finally:
        if engine.poll() is None:
            engine.kill()
    assert engine_row_running(db) == 0


@pytest.mark.parametrize(
    "sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=["TERM", "HUP", "INT"]
)
def test_a_signal_during_start_up_still_stops_cleanly(tmp_path: Path, sig: int) -> None:
    """Start-up warms the strategies on simulated history (here a day of it, seconds of
    work): a signal then must stop the engine cleanly, and soon."""
    db = tmp_path / "early.db"
    engine = start_engine(db, 60, MIKROBOT_SIM__WARMUP_MINUTES="1440")
    try:
        end = time.monotonic() + 15
        while not db.exists() and time.monotonic() < end:
            time.sleep(0.02)
        assert db.exists()
        time.sleep(0.3)  # inside the warm-up now
        sent = time.monotonic()
        engine.send_signal(sig)
        assert engine.wait(timeout=30) == 0
        assert time.monotonic() - sent < 5, "the warm-up was not cut short"
    finally:
        if engine.poll() is None:
            engine.kill()
    assert engine_row_running(db) in (None, 0)


@pytest.mark.parametrize("kind", ["directory", "text file"])
@pytest.mark.parametrize(
    "args",
    [[], ["--attach"], ["run", "--headless", "--duration", "1"], ["status"], ["halt"]],
    ids=["cockpit", "cockpit --attach", "run", "status", "halt"],
)
def test_a_db_that_cannot_be_a_database_is_one_line_in_a_real_process(
    tmp_path: Path, kind: str, args: list[str]
) -> None:
    path = tmp_path / ("a-directory" if kind == "directory" else "notes.txt")
    if kind == "directory":
        path.mkdir()
    else:
        path.write_text("not a database\n")
    try:
        out = cli(path, *args, timeout=30)
    except subprocess.TimeoutExpired:
        raise AssertionError("the command did not stop on a bad --db") from None
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and "unexpected error" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and str(path) in out.stderr
