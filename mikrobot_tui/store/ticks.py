"""Ticks written and read outside the engine's own writer: the history importer, the exporter.

Ticks are compressed column blocks (store/tickstore.py) written through the batched writer's
`append_ticks`; here that writer is driven in short transactions beside a running engine, and
reads come back in time order, as an export lists them.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from mikrobot_tui.store import tickstore
from mikrobot_tui.store.writer import Writer

CHUNK = 50_000  # rows per transaction: a running engine waits at most one chunk's write
GIVE_UP_S = 30.0  # a database locked this long fails the write (one line, exit 1)


def write_ticks(
    conn: sqlite3.Connection,
    ticks: np.ndarray,
    symbols: Sequence[str],
    on_chunk: Callable[[int], None] | None = None,
) -> int:
    """Store TICK_DTYPE `ticks` (`sym` indexes `symbols`) in short transactions; the count.

    `on_chunk(n)` is told after each transaction. A database busy for longer than GIVE_UP_S
    raises sqlite3.OperationalError; what was written before stays (each chunk is whole).
    """
    writer = Writer(conn)
    try:
        for start in range(0, len(ticks), CHUNK):
            chunk = ticks[start : start + CHUNK]
            writer.append_ticks(chunk, symbols)
            flush(writer)
            if on_chunk is not None:
                on_chunk(len(chunk))
    finally:
        writer.close()
    return len(ticks)


def flush(writer: Writer) -> None:
    """Flush until everything is written, waiting out a busy database up to GIVE_UP_S."""
    deadline = time.monotonic() + GIVE_UP_S
    while writer.pending_rows or writer.pending_ticks:
        writer.flush()
        if writer.pending_rows or writer.pending_ticks:
            if time.monotonic() > deadline:
                raise sqlite3.OperationalError(writer.problem or "database busy")
            time.sleep(0.05)


def tick_span(conn: sqlite3.Connection, symbol: str) -> tuple[int, int] | None:
    """(oldest, newest) ts_event stored for `symbol`, None when it has no tick."""
    spans = [
        conn.execute(sql, [symbol]).fetchone()
        for sql in (
            "SELECT MIN(ts_event), MAX(ts_event) FROM ticks WHERE symbol = ?",
            "SELECT MIN(ts_min), MAX(ts_max) FROM tick_blocks WHERE symbol = ?",
        )
    ]
    found = [s for s in spans if s is not None and s[0] is not None]
    if not found:
        return None
    return int(min(s[0] for s in found)), int(max(s[1] for s in found))


def read_ticks(
    conn: sqlite3.Connection, symbol: str, start: int | None = None, end: int | None = None
) -> Iterator[tuple[int, float, float, float | None, float | None]]:
    """(ts_event, bid, ask, last, volume) of `symbol` in [start, end), in time order (ties in
    arrival order); a missing last or volume is None."""
    ticks = tickstore.read_ticks(conn, symbol, start, end)
    ticks = ticks[np.argsort(ticks["ts_event"], kind="stable")]
    last, volume = ticks["last"].astype(object), ticks["volume"].astype(object)
    last[np.isnan(ticks["last"])] = None
    volume[np.isnan(ticks["volume"])] = None
    yield from zip(
        ticks["ts_event"].tolist(),
        ticks["bid"].tolist(),
        ticks["ask"].tolist(),
        last.tolist(),
        volume.tolist(),
        strict=True,
    )


def time_range(start: int | None, end: int | None) -> tuple[int, int]:
    """[start, end) with an open side as the widest int64 bound."""
    info = np.iinfo(np.int64)
    return (info.min if start is None else start), (info.max if end is None else end)
