"""Ticks as compressed blocks: bit-for-bit round trips, blocks by symbol and hour, chunks that
a sealed block replaces, a locked database, and a kill -9 while blocks are written."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mikrobot_tui.config import SimSettings
from mikrobot_tui.data.sim import generate_ticks
from mikrobot_tui.domain.instruments import default_instruments
from mikrobot_tui.domain.market import NS_PER_SECOND, TICK_DTYPE
from mikrobot_tui.store.schema import open_db
from mikrobot_tui.store.tickstore import (
    BLOCK_TICKS,
    HOUR_NS,
    count_ticks,
    decode,
    encode,
    newest_tick_ts,
    read_ticks,
)
from mikrobot_tui.store.writer import Writer

T0 = 1_767_225_600 * NS_PER_SECOND  # 2026-01-01 00:00 UTC
SYMBOLS = ["EURUSD", "BTCUSDT", "USDJPY"]


def market(n: int, seed: int = 4, faults: float = 0.01) -> np.ndarray:
    cat = default_instruments()
    sim = SimSettings(symbols=SYMBOLS, seed=seed, fault_rate=faults)
    return generate_ticks([cat[s] for s in SYMBOLS], sim, T0, n)


def of(ticks: np.ndarray, s: int) -> np.ndarray:
    return ticks[ticks["sym"] == s]


@settings(max_examples=60, deadline=None)
@given(
    ts=hnp.arrays(np.int64, st.integers(1, 300), elements=st.integers(-(2**62), 2**62)),
    data=st.data(),
)
def test_a_block_round_trips_bit_for_bit_whatever_the_values(ts, data) -> None:
    n = len(ts)
    floats = hnp.arrays(np.uint64, n).map(lambda a: a.view(np.float64))  # NaN payloads too
    ticks = np.zeros(n, dtype=TICK_DTYPE)
    ticks["ts_event"] = ts
    ticks["ts_recv"] = data.draw(hnp.arrays(np.int64, n, elements=st.integers(-(2**62), 2**62)))
    for name in ("bid", "ask", "last", "volume"):
        ticks[name] = data.draw(floats)
    back = decode(encode(ticks), n)
    assert back.tobytes() == ticks.tobytes()


@pytest.mark.parametrize("batch", [1, 37, 5_000])
def test_ticks_written_in_any_batches_read_back_in_arrival_order(tmp_path, batch) -> None:
    ticks = market(40_000)  # ~ 3 hours of three symbols, faults and all, > 8,192 per symbol
    db = open_db(tmp_path / "t.db")
    w = Writer(db.conn)
    for a in range(0, len(ticks), batch):
        w.append_ticks(ticks[a : a + batch], SYMBOLS)
        if w.pending_rows >= Writer.FLUSH_ROWS:
            w.flush()
    w.flush()
    for s, symbol in enumerate(SYMBOLS):
        assert read_ticks(db.conn, symbol, sym=s).tobytes() == of(ticks, s).tobytes()
    assert count_ticks(db.conn) == len(ticks)
    assert newest_tick_ts(db.conn, "EURUSD") == of(ticks, 0)["ts_event"].max()
    # a sealed block is one row: only the open blocks are still chunks
    rows = db.conn.execute("SELECT symbol, ts_min, ts_max, n FROM tick_blocks").fetchall()
    full = [r for r in rows if r[3] == BLOCK_TICKS]
    assert full, "some block filled up"
    assert all(r[1] // HOUR_NS == r[2] // HOUR_NS for r in rows if r[2] - r[1] < HOUR_NS)
    sealed = sum(1 for r in rows if r[3] == BLOCK_TICKS)
    assert len(rows) <= sealed + len(SYMBOLS) * (len(ticks) // batch + 4)


def test_a_range_reads_exactly_the_ticks_inside_it_from_rows_and_blocks(tmp_path) -> None:
    ticks = market(20_000, faults=0.0)
    eur = of(ticks, 0)
    db = open_db(tmp_path / "t.db")
    old, new = eur[:1000], eur[1000:]
    db.conn.executemany(  # a file written before blocks: a row per tick
        "INSERT INTO ticks (ts_event, ts_recv, symbol, bid, ask, last, volume) "
        "VALUES (?, ?, 'EURUSD', ?, ?, NULL, NULL)",
        [(int(t["ts_event"]), int(t["ts_recv"]), float(t["bid"]), float(t["ask"])) for t in old],
    )
    db.conn.commit()
    w = Writer(db.conn)
    w.append_ticks(new, SYMBOLS)
    w.flush()
    start, end = int(eur["ts_event"][500]), int(eur["ts_event"][3500])
    got = read_ticks(db.conn, "EURUSD", start, end)
    inside = eur[(eur["ts_event"] >= start) & (eur["ts_event"] < end)]
    assert got.tobytes() == inside.tobytes()
    assert count_ticks(db.conn, "EURUSD") == len(eur)


def test_blocks_are_at_least_70_percent_smaller_than_rows(tmp_path) -> None:
    ticks = market(60_000, faults=0.0)
    rows_db = sqlite3.connect(tmp_path / "rows.db")
    rows_db.execute(
        "CREATE TABLE ticks (ts_event INTEGER, ts_recv INTEGER, symbol TEXT, bid REAL, "
        "ask REAL, last REAL, volume REAL)"
    )
    rows_db.execute("CREATE INDEX ix ON ticks (symbol, ts_event)")
    names = np.asarray(SYMBOLS, dtype=object)[ticks["sym"]]
    rows_db.executemany(
        "INSERT INTO ticks VALUES (?, ?, ?, ?, ?, ?, ?)",
        zip(
            ticks["ts_event"].tolist(),
            ticks["ts_recv"].tolist(),
            names.tolist(),
            ticks["bid"].tolist(),
            ticks["ask"].tolist(),
            [None if np.isnan(v) else v for v in ticks["last"].tolist()],
            [None if np.isnan(v) else v for v in ticks["volume"].tolist()],
            strict=True,
        ),
    )
    rows_db.commit()
    (row_pages,) = rows_db.execute(
        "SELECT SUM(pgsize) FROM dbstat WHERE name IN ('ticks', 'ix')"
    ).fetchone()
    db = open_db(tmp_path / "t.db")
    w = Writer(db.conn)
    w.append_ticks(ticks, SYMBOLS)
    w.flush()
    (block_bytes,) = db.conn.execute("SELECT SUM(LENGTH(data)) FROM tick_blocks").fetchone()
    assert block_bytes < 0.3 * row_pages, (block_bytes, row_pages)


def test_a_locked_database_keeps_every_tick_until_it_can_write(tmp_path) -> None:
    ticks = market(6_000)
    path = tmp_path / "t.db"
    db = open_db(path)
    w = Writer(db.conn, busy_timeout_ms=10)
    other = sqlite3.connect(path)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    w.append_ticks(ticks[:3000], SYMBOLS)
    assert w.flush() == 0 and w.problem is not None
    w.append_ticks(ticks[3000:], SYMBOLS)
    other.rollback()
    other.close()
    w._retry_at = 0.0  # no need to wait out the backoff here
    assert w.flush() > 0 and w.problem is None
    for s, symbol in enumerate(SYMBOLS):
        assert read_ticks(db.conn, symbol, sym=s).tobytes() == of(ticks, s).tobytes()


WRITER = """
import sys, numpy as np
from mikrobot_tui.store.schema import open_db
from mikrobot_tui.store.writer import Writer
data = np.load(sys.argv[2])
ticks, symbols = data["ticks"], list(data["symbols"])
w = Writer(open_db(sys.argv[1]).conn)
for a in range(0, len(ticks), 50):
    w.append_ticks(ticks[a : a + 50], symbols)
    w.flush()
    if a == 500:
        print("writing", flush=True)
"""


@pytest.mark.slow
def test_a_kill_9_while_blocks_are_written_leaves_a_prefix_of_every_symbol(tmp_path) -> None:
    ticks = market(200_000)
    src = tmp_path / "ticks.npz"
    np.savez(src, ticks=ticks, symbols=np.asarray(SYMBOLS))
    path = tmp_path / "t.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(src)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "writing"
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stored = 0
    for s, symbol in enumerate(SYMBOLS):
        got = read_ticks(conn, symbol, sym=s)
        assert got.tobytes() == of(ticks, s)[: len(got)].tobytes()
        stored += len(got)
    assert 0 < stored < len(ticks)
