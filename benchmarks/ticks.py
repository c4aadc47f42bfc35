"""Tick storage: ticks written and read per second, and the bytes a tick takes.

    python -m benchmarks.ticks [--ticks N] [--repeat R]

Writes the seeded benchmark ticks (six simulated symbols, faults included) through the
engine's writer into a new SQLite file in batches of 10,000, flushing by size as a replay
does; reads each
symbol back whole with `read_ticks`; and compares the blocks' size with the same ticks as
rows in the old `ticks` table with its index (SQLite's dbstat). Medians of R runs. DESIGN's
targets: 5,000,000 ticks/s written, 10,000,000 read, at least 70% smaller than rows.

"Written" is the engine thread's time until the last flush has committed: the writer's own
thread copying the WAL back into the database file (store/writer.py) may still be at it, and
the encoding and decoding threads want the machine's second core, so a busy machine shows
here more than it did when all of it ran on one thread.
"""

from __future__ import annotations

import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import seeded_ticks, seeded_ticks_cli


def one_run(ticks: np.ndarray, symbols: list[str], folder: Path) -> tuple[float, float, float]:
    from mikrobot_tui.store.schema import open_db
    from mikrobot_tui.store.tickstore import read_ticks
    from mikrobot_tui.store.writer import Writer

    path = folder / f"ticks-{time.perf_counter_ns()}.db"
    db = open_db(path)
    w = Writer(db.conn)
    step = 10_000  # engine.batch_max
    t0 = time.perf_counter()
    for a in range(0, len(ticks), step):
        w.append_ticks(ticks[a : a + step], symbols)
        if w.pending_rows >= Writer.FLUSH_ROWS:
            w.flush()
    w.flush()
    wrote = len(ticks) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    n = sum(len(read_ticks(db.conn, s, sym=i)) for i, s in enumerate(symbols))
    read = n / (time.perf_counter() - t0)
    assert n == len(ticks)
    (size,) = db.conn.execute("SELECT SUM(LENGTH(data)) FROM tick_blocks").fetchone()
    db.conn.close()
    return wrote, read, size / len(ticks)


def row_bytes(ticks: np.ndarray, symbols: list[str], folder: Path) -> float:
    """Bytes per tick as rows of the old `ticks` table with its (symbol, ts_event) index."""
    conn = sqlite3.connect(folder / "rows.db")
    conn.execute(
        "CREATE TABLE ticks (ts_event INTEGER, ts_recv INTEGER, symbol TEXT, bid REAL, "
        "ask REAL, last REAL, volume REAL)"
    )
    conn.execute("CREATE INDEX ix ON ticks (symbol, ts_event)")
    names = np.asarray(symbols, dtype=object)[ticks["sym"]].tolist()

    def none(values: np.ndarray) -> list[float | None]:
        return [None if v != v else v for v in values.tolist()]

    conn.executemany(
        "INSERT INTO ticks VALUES (?, ?, ?, ?, ?, ?, ?)",
        zip(
            ticks["ts_event"].tolist(),
            ticks["ts_recv"].tolist(),
            names,
            none(ticks["bid"]),
            none(ticks["ask"]),
            none(ticks["last"]),
            none(ticks["volume"]),
            strict=True,
        ),
    )
    conn.commit()
    sql = "SELECT SUM(pgsize) FROM dbstat WHERE name IN ('ticks', 'ix')"
    (size,) = conn.execute(sql).fetchone()
    conn.close()
    return size / len(ticks)


def figures(n_ticks: int = 1_000_000) -> dict[str, float]:
    """One run's figures, for `python -m benchmarks`: ticks written and read per second, and
    the bytes a tick takes in its blocks."""
    ticks, symbols = seeded_ticks(n_ticks)
    with tempfile.TemporaryDirectory() as tmp:
        wrote, read, size = one_run(ticks, symbols, Path(tmp))
    return {"written_per_s": wrote, "read_per_s": read, "bytes_per_tick": size}


def main() -> None:
    args, ticks, symbols = seeded_ticks_cli(__doc__)
    with tempfile.TemporaryDirectory() as tmp:
        runs = [one_run(ticks, symbols, Path(tmp)) for _ in range(args.repeat)]
        rows = row_bytes(ticks, symbols, Path(tmp))
    wrote, read, size = (statistics.median(r[i] for r in runs) for i in range(3))
    print(f"tick store, {len(ticks):,} ticks of {len(symbols)} symbols, median of {args.repeat}:")
    print(f"  written  {wrote / 1e6:6.2f} M ticks/s   (target 5)")
    print(f"  read     {read / 1e6:6.2f} M ticks/s   (target 10)")
    print(
        f"  size     {size:6.1f} bytes/tick against {rows:.1f} as rows: "
        f"{1 - size / rows:.0%} smaller   (target 70%)"
    )


if __name__ == "__main__":
    main()
