"""Tick storage behind one writer and one reader.

Today a tick is a row of `ticks`, written through the batched writer's `append_ticks`; a later
change stores them as compressed column blocks. Whoever writes or reads ticks outside the
engine's own writer (the history importer, the exporter) goes through `write_ticks` and
`read_ticks`, so that change touches this file only.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np

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
    for start in range(0, len(ticks), CHUNK):
        chunk = ticks[start : start + CHUNK]
        writer.append_ticks(chunk, symbols)
        flush(writer)
        if on_chunk is not None:
            on_chunk(len(chunk))
    return len(ticks)


def flush(writer: Writer) -> None:
    """Flush until everything is written, waiting out a busy database up to GIVE_UP_S."""
    deadline = time.monotonic() + GIVE_UP_S
    while writer.pending_rows:
        writer.flush()
        if writer.pending_rows:
            if time.monotonic() > deadline:
                raise sqlite3.OperationalError(writer.problem or "database busy")
            time.sleep(0.05)


def tick_span(conn: sqlite3.Connection, symbol: str) -> tuple[int, int] | None:
    """(oldest, newest) ts_event stored for `symbol`, None when it has no tick."""
    row = conn.execute(
        "SELECT MIN(ts_event), MAX(ts_event) FROM ticks WHERE symbol = ?", [symbol]
    ).fetchone()
    return None if row is None or row[0] is None else (int(row[0]), int(row[1]))


def read_ticks(
    conn: sqlite3.Connection, symbol: str, start: int | None = None, end: int | None = None
) -> Iterator[tuple[int, float, float, float | None, float | None]]:
    """(ts_event, bid, ask, last, volume) of `symbol` in [start, end), in time order."""
    yield from conn.execute(
        "SELECT ts_event, bid, ask, last, volume FROM ticks WHERE symbol = ? "
        "AND ts_event >= ? AND ts_event < ? ORDER BY ts_event, rowid",
        [symbol, *time_range(start, end)],
    )


def time_range(start: int | None, end: int | None) -> tuple[int, int]:
    """[start, end) with an open side as the widest int64 bound."""
    info = np.iinfo(np.int64)
    return (info.min if start is None else start), (info.max if end is None else end)
