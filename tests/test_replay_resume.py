"""A replay killed at any moment resumes on its own database to the log of an unbroken run."""

from __future__ import annotations

import itertools
import random
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from engine_data import FAST_ACCOUNTS

from mikrobot_tui.config import SimSettings
from mikrobot_tui.data.feeds import save_ticks
from mikrobot_tui.data.sim import generate_ticks
from mikrobot_tui.domain.instruments import default_instruments
from mikrobot_tui.domain.market import NS_PER_SECOND
from mikrobot_tui.engine import build_engine
from mikrobot_tui.engine.runner import Runner
from mikrobot_tui.store.events import raw_events
from mikrobot_tui.store.schema import open_db
from mikrobot_tui.store.writer import Writer

T0 = 1_767_225_600 * NS_PER_SECOND
SYMBOLS = ["EURUSD", "USDJPY", "BTCUSDT"]


@pytest.fixture(scope="module")
def tick_file(tmp_path_factory) -> Path:
    catalogue = default_instruments()
    sim = SimSettings(symbols=SYMBOLS, seed=21, fault_rate=0.01)
    ticks = generate_ticks([catalogue[s] for s in SYMBOLS], sim, T0, 60_000)
    path = tmp_path_factory.mktemp("replay") / "ticks.npz"
    save_ticks(path, ticks, SYMBOLS)
    return path


def settings_for(make_settings, file: Path, db: Path):
    return make_settings(
        accounts=FAST_ACCOUNTS,
        engine={"db": db, "feed": "replay", "store_ticks": True, "batch_max": 700},
        replay={"file": file},
        breakers={"failure_threshold": 2},
    )


def tables(db: Path) -> dict[str, list[tuple]]:
    conn = open_db(db).conn
    try:
        return {
            "events": raw_events(conn),
            "bars": conn.execute(
                "SELECT * FROM bars ORDER BY symbol, timeframe, ts_open"
            ).fetchall(),
            "rejects": conn.execute("SELECT * FROM rejects ORDER BY id").fetchall(),
            "ticks": conn.execute("SELECT * FROM ticks ORDER BY rowid").fetchall(),
            "trades": conn.execute("SELECT * FROM trades ORDER BY position_id").fetchall(),
        }
    finally:
        conn.close()


@pytest.fixture(scope="module")
def reference(tick_file, tmp_path_factory) -> dict[str, list[tuple]]:
    from mikrobot_tui.config import load_settings

    db = tmp_path_factory.mktemp("ref") / "ref.db"
    s = load_settings(
        None,
        overrides={
            "engine": {"db": db, "feed": "replay", "store_ticks": True, "batch_max": 700},
            "replay": {"file": tick_file},
            "accounts": FAST_ACCOUNTS,
            "breakers": {"failure_threshold": 2},
        },
    )
    engine = build_engine(s)
    Runner(engine).replay(engine.feed.iter_batches())
    engine.close()
    return tables(db)


def kill_after(settings, batches: int) -> int:
    """Run `batches` batches, flushing as a replay does, then vanish like kill -9."""
    engine = build_engine(settings)
    engine.start()
    for batch in itertools.islice(engine.feed.iter_batches(), batches):
        engine.corridor.process(batch)
        if engine.writer.pending_rows >= Writer.FLUSH_ROWS:
            engine.writer.flush()
    lost = engine.writer.pending_rows
    engine.writer._drop()  # what was not flushed is lost with the process
    engine.conn.close()
    return lost


def test_the_reference_run_exercises_the_whole_corridor(reference) -> None:
    kinds = {row[2] for row in reference["events"]}
    assert {"breaker_changed", "order_filled", "position_closed", "order_refused"} <= kinds
    assert len(reference["rejects"]) > 10 and len(reference["ticks"]) > 50_000


@pytest.mark.parametrize("cuts", [[0], [3], [17, 40], [1, 2, 55, 70]])
def test_a_replay_killed_midway_resumes_to_the_same_tables(
    make_settings, tick_file, reference, tmp_path, cuts
) -> None:
    db = tmp_path / "resume.db"
    settings = settings_for(make_settings, tick_file, db)
    lost = [kill_after(settings, cut) for cut in cuts]
    assert cuts == [0] or any(lost)  # some work died unflushed and must be done again
    engine = build_engine(settings)
    assert engine.resumed_at is not None
    Runner(engine).replay(engine.feed.iter_batches())
    engine.close()
    got = tables(db)
    for name in reference:
        assert got[name] == reference[name], name


def test_a_finished_replay_restarted_does_nothing_more(make_settings, tick_file, tmp_path) -> None:
    db = tmp_path / "done.db"
    settings = settings_for(make_settings, tick_file, db)
    engine = build_engine(settings)
    Runner(engine).replay(engine.feed.iter_batches())
    engine.close()
    before = tables(db)
    again = build_engine(settings)
    assert again.resumed_at == 60_000
    Runner(again).replay(again.feed.iter_batches())
    again.close()
    assert tables(db)["events"] == before["events"]


def test_another_file_into_a_used_database_is_still_refused(
    make_settings, tick_file, tmp_path
) -> None:
    from mikrobot_tui.config import ConfigError

    db = tmp_path / "other.db"
    settings = settings_for(make_settings, tick_file, db)
    kill_after(settings, 20)
    ticks = np.load(tick_file)["ticks"][:1000].copy()
    ticks["bid"] += 1e-5
    other = tmp_path / "other.npz"
    save_ticks(other, ticks, SYMBOLS)
    with pytest.raises(ConfigError, match="before the last event"):
        build_engine(settings_for(make_settings, other, db))


@pytest.mark.slow
def test_sigkill_at_15_random_moments_changes_nothing(tmp_path: Path) -> None:
    from test_headless import MIKROBOT, env

    catalogue = default_instruments()
    sim = SimSettings(symbols=SYMBOLS, seed=8, fault_rate=0.01)
    ticks = generate_ticks([catalogue[s] for s in SYMBOLS], sim, T0, 120_000)
    file = tmp_path / "live.npz"
    save_ticks(file, ticks, SYMBOLS)
    hours = (int(ticks["ts_event"][-1]) - T0) / NS_PER_SECOND / 3600
    variables = {
        "MIKROBOT_ENGINE__FEED": "replay",
        "MIKROBOT_REPLAY__FILE": str(file),
        "MIKROBOT_REPLAY__SPEED": str(round(hours * 3600 / 4)),  # about 4 s a run
        "MIKROBOT_ENGINE__STORE_TICKS": "true",
        "MIKROBOT_BREAKERS__FAILURE_THRESHOLD": "2",
        "MIKROBOT_ACCOUNTS": (
            '[{"name": "A", "params": {"fast": 2, "slow": 4, "atr_period": 3}},'
            ' {"name": "B", "params": {"fast": 3, "slow": 6, "atr_period": 3}}]'
        ),
    }

    def run(db: Path) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*MIKROBOT, "--db", str(db), "run", "--headless", "--duration", "120"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env(**variables),
        )

    ref_db = tmp_path / "ref.db"
    ref = run(ref_db)
    assert ref.wait(timeout=120) == 0, ref.stderr.read() if ref.stderr else ""
    reference = tables(ref_db)

    db = tmp_path / "killed.db"
    rng = random.Random(5)
    for _ in range(15):
        proc = run(db)
        time.sleep(rng.uniform(0.3, 3.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=20)
    final = run(db)
    assert final.wait(timeout=120) == 0, final.stderr.read() if final.stderr else ""
    got = tables(db)
    for name in reference:
        assert got[name] == reference[name], name
