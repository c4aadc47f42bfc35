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
from mikrobot_tui.store.maintenance import check
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
from mikrobot_tui.store.maintenance import check
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


def _xdz1(ticks: np.ndarray) -> bytes:
    """A block as the first codec wrote it (files written before xdz2 hold these)."""
    import zstandard

    ts = ticks["ts_event"]
    columns = [np.diff(ts, prepend=np.int64(0)), ticks["ts_recv"] - ts]
    for name in ("bid", "ask", "last", "volume"):
        bits = np.ascontiguousarray(ticks[name]).view(np.uint64)
        columns.append(bits ^ np.r_[np.uint64(0), bits[:-1]])
    whole = np.stack([c.view(np.uint64) for c in columns]).view(np.uint8)
    shuffled = whole.reshape(len(columns), -1, 8).transpose(0, 2, 1).tobytes()
    return zstandard.ZstdCompressor(level=1).compress(shuffled)


def test_blocks_written_with_the_first_codec_still_read(tmp_path) -> None:
    eur = of(market(20_000), 0)
    db = open_db(tmp_path / "t.db")
    old, new = eur[:1000], eur[1000:]
    ts = old["ts_event"]
    db.conn.execute(
        "INSERT INTO tick_blocks (id, symbol, ts_min, ts_max, n, codec, data) "
        "VALUES (1, 'EURUSD', ?, ?, ?, 'xdz1', ?)",
        (int(ts.min()), int(ts.max()), len(old), _xdz1(old)),
    )
    w = Writer(db.conn)
    w.append_ticks(new, SYMBOLS)
    w.flush()
    assert read_ticks(db.conn, "EURUSD").tobytes() == eur.tobytes()
    start, end = int(eur["ts_event"][500]), int(eur["ts_event"][1500])
    inside = eur[(eur["ts_event"] >= start) & (eur["ts_event"] < end)]
    assert read_ticks(db.conn, "EURUSD", start, end).tobytes() == inside.tobytes()
    assert check(db.conn, full=True).problems == []


def test_a_block_sealed_from_several_chunks_is_one_row_that_round_trips(tmp_path) -> None:
    n = BLOCK_TICKS + 10
    eur = np.zeros(n, dtype=TICK_DTYPE)  # one symbol within one hour: one block and a bit
    eur["ts_event"] = T0 + np.arange(n) * 1_000_000
    eur["ts_recv"] = eur["ts_event"] + 7
    eur["bid"] = 1.1 + np.random.default_rng(1).integers(0, 50, n) * 1e-5
    eur["ask"], eur["last"], eur["volume"] = eur["bid"] + 1e-4, np.nan, 1.0
    db = open_db(tmp_path / "t.db")
    w = Writer(db.conn)
    for a in range(0, BLOCK_TICKS, 1000):  # a chunk a flush while the block is open
        w.append_ticks(eur[a : min(a + 1000, BLOCK_TICKS)], SYMBOLS)
        w.flush()
    assert db.conn.execute("SELECT COUNT(*) FROM tick_blocks").fetchone()[0] == 9
    w.append_ticks(eur[BLOCK_TICKS:], SYMBOLS)  # the next block opens: this one seals
    w.flush()
    rows = db.conn.execute("SELECT n, codec FROM tick_blocks ORDER BY id").fetchall()
    assert rows == [(BLOCK_TICKS, "xdz2"), (10, "xdz2")]
    assert read_ticks(db.conn, "EURUSD").tobytes() == eur.tobytes()
    (data,) = db.conn.execute("SELECT data FROM tick_blocks ORDER BY id LIMIT 1").fetchone()
    assert decode(data, BLOCK_TICKS).tobytes() == eur[:BLOCK_TICKS].tobytes()


def test_a_failed_encoding_raises_at_the_flush_and_writes_nothing(tmp_path, monkeypatch) -> None:
    from mikrobot_tui.store import tickstore

    def broken(ticks, compressor=None):
        raise MemoryError("no room to encode")

    monkeypatch.setattr(tickstore, "encode_frame", broken)
    db = open_db(tmp_path / "t.db")
    w = Writer(db.conn)
    w.append_ticks(market(20_000), SYMBOLS)  # blocks seal: the worker thread encodes them
    with pytest.raises(MemoryError, match="no room to encode"):
        w.flush()
    assert count_ticks(db.conn) == 0


def _wait_for(what, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not what() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_the_wal_is_copied_back_by_the_writers_own_thread(tmp_path) -> None:
    ticks = market(300_000)  # ~7 MB of blocks: past the 4 MB that nudge the thread
    db = open_db(tmp_path / "t.db")
    w = Writer(db.conn)
    w.append_ticks(ticks, SYMBOLS)
    w.flush()
    (pages,) = db.conn.execute("PRAGMA wal_autocheckpoint").fetchone()
    assert pages > 1000, "the commits leave the copying to the thread"
    w.close()
    assert db.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
    assert w.checkpoint_problem is None
    for s, symbol in enumerate(SYMBOLS):
        assert read_ticks(db.conn, symbol, sym=s).tobytes() == of(ticks, s).tobytes()


def test_a_failing_wal_checkpoint_is_told_not_hidden(tmp_path, monkeypatch) -> None:
    from mikrobot_tui.store import writer

    monkeypatch.setattr(writer._Checkpointer, "PRAGMA", "PRAGMA wal_checkpoint(NO_SUCH_MODE")
    db = open_db(tmp_path / "t.db")
    w = Writer(db.conn)
    w.append_ticks(market(300_000), SYMBOLS)
    w.flush()
    _wait_for(lambda: w.checkpoint_problem is not None)
    assert w.checkpoint_problem is not None and "WAL checkpoint failed" in w.checkpoint_problem
    w.close()
    assert count_ticks(db.conn) == 300_000


def test_a_block_that_does_not_decode_fails_the_read_of_many_blocks(tmp_path) -> None:
    ticks = market(40_000)
    db = open_db(tmp_path / "t.db")
    w = Writer(db.conn)
    w.append_ticks(ticks, SYMBOLS)
    w.flush()
    w.close()
    ids = [r[0] for r in db.conn.execute("SELECT id FROM tick_blocks WHERE symbol = 'EURUSD'")]
    assert len(ids) >= 2, "the read decodes several blocks, on the reading threads"
    db.conn.execute("UPDATE tick_blocks SET data = substr(data, 1, 40) WHERE id = ?", (ids[1],))
    with pytest.raises(ValueError, match="frames"):
        read_ticks(db.conn, "EURUSD")
