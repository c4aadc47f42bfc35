"""Ticks as compressed column blocks: one symbol, one UTC hour, at most BLOCK_TICKS ticks each.

A row per tick (the `ticks` table, kept for files written before blocks) cost about a hundred
bytes with its index and took the replay from 3M to a quarter of a million ticks a second. A
block keeps a symbol's ticks in arrival order as columns, each made small before compression:

- ts_event as deltas from the tick before (the first from 0), so a steady feed is a run of
  near-equal small numbers; ts_recv as its latency against ts_event;
- bid, ask, last and volume as their 64-bit patterns XORed with the tick before's, so an
  unchanged price is all zero bits and a changed one mostly leading zeros (Gorilla's idea);
- every column's bytes shuffled (byte 0 of every value, then byte 1, ...) so those zeros
  line up in long runs, and the whole compressed with zstandard at level 1.

Decoding undoes each step exactly: a block round-trips bit for bit, NaNs and all.

The writer (store/writer.py) keeps each symbol's newest block open in memory (a `TickBuffer`)
and writes what it gained with every flush as a chunk, in the same transaction as the events
of those ticks: a kill -9 loses no tick the database says it has. A block is sealed when it
reaches BLOCK_TICKS or its hour ends; its one row then replaces its chunks. Rows are read in
id order, which is the order the ticks arrived in.

`read_ticks(conn, symbol, start, end)` is the one way to read ticks back, from blocks and from
legacy rows alike.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import numpy as np

from mikrobot_tui.domain.market import NS_PER_SECOND, TICK_DTYPE

BLOCK_TICKS = 8_192
HOUR_NS = 3_600 * NS_PER_SECOND
CODEC = "xdz1"  # xor/delta columns, byte-shuffled, zstandard level 1
BLOCK_COLUMNS = ("id", "symbol", "ts_min", "ts_max", "n", "codec", "data")
_COLUMNS = ("ts_event", "ts_recv", "bid", "ask", "last", "volume")


def _shuffled(columns: list[np.ndarray]) -> bytes:
    whole = np.stack([c.view(np.uint64) for c in columns]).view(np.uint8)
    whole = whole.reshape(len(columns), -1, 8)
    return whole.transpose(0, 2, 1).tobytes()


def encode(ticks: np.ndarray, compressor: Any = None) -> bytes:
    """One symbol's ticks (TICK_DTYPE, arrival order) as a compressed block; `compressor` a
    zstandard.ZstdCompressor of another level (retention packs old blocks tighter)."""
    import zstandard  # only where blocks are written or read: start-up stays fast

    ts = ticks["ts_event"]
    columns = [np.diff(ts, prepend=np.int64(0)), ticks["ts_recv"] - ts]
    for name in _COLUMNS[2:]:
        bits = np.ascontiguousarray(ticks[name]).view(np.uint64)
        columns.append(bits ^ np.r_[np.uint64(0), bits[:-1]])
    compressor = compressor or zstandard.ZstdCompressor(level=1)
    return compressor.compress(_shuffled(columns))


def decode(data: bytes, n: int, sym: int = 0) -> np.ndarray:
    """A block back as TICK_DTYPE ticks, `sym` in every row."""
    import zstandard

    raw = zstandard.ZstdDecompressor().decompress(data, max_output_size=n * 8 * len(_COLUMNS))
    planes = np.frombuffer(raw, dtype=np.uint8).reshape(len(_COLUMNS), 8, n)
    columns = planes.transpose(0, 2, 1).copy().view(np.uint64).reshape(len(_COLUMNS), n)
    out = np.empty(n, dtype=TICK_DTYPE)
    ts = np.cumsum(columns[0].view(np.int64))
    out["ts_event"] = ts
    out["ts_recv"] = ts + columns[1].view(np.int64)
    out["sym"] = sym
    for name, bits in zip(_COLUMNS[2:], columns[2:], strict=True):
        out[name] = np.bitwise_xor.accumulate(bits).view(np.float64)
    return out


class _OpenBlock:
    __slots__ = ("chunks", "count", "fresh", "hour", "id", "parts")

    def __init__(self, block_id: int, hour: int) -> None:
        self.id, self.hour = block_id, hour
        self.parts: list[np.ndarray] = []  # every tick of the block, joined only when sealed
        self.fresh: list[np.ndarray] = []  # those not yet in a chunk row
        self.count = 0  # ticks in the block
        self.chunks: list[int] = []  # the ids of its chunk rows

    def add(self, ticks: np.ndarray) -> None:
        self.parts.append(ticks)
        self.fresh.append(ticks)
        self.count += len(ticks)

    def ticks(self) -> np.ndarray:
        return self.parts[0] if len(self.parts) == 1 else np.concatenate(self.parts)

    def take_fresh(self) -> np.ndarray:
        fresh, self.fresh = self.fresh, []
        return fresh[0] if len(fresh) == 1 else np.concatenate(fresh)


class TickBuffer:
    """Each symbol's open block, and the sealed ones not yet handed to the writer.

    An open block reaches the database as chunks: each flush writes the ticks that arrived
    since the last one as a small row of their own, so no tick waits for its block to fill
    and none is encoded twice while it is open. Sealing writes the whole block once, under
    the id it was given when it opened, and deletes its chunks in the same transaction.
    """

    def __init__(self, next_id: int = 1) -> None:
        self._next_id = next_id
        self._open: dict[str, _OpenBlock] = {}
        self._sealed: list[tuple[str, _OpenBlock]] = []

    @property
    def waiting(self) -> int:
        """Ticks not yet handed to the writer in a row."""
        blocks = [b for _, b in self._sealed] + list(self._open.values())
        return sum(len(part) for b in blocks for part in b.fresh)

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def add(self, ticks: np.ndarray, symbols: list[str] | tuple[str, ...]) -> None:
        """A batch of ticks (any symbols, arrival order)."""
        if len(ticks) == 0:
            return
        syms = ticks["sym"]
        # one stable sort groups the symbols and keeps each one's arrival order; each group
        # is then cut where its hour changes
        order = np.argsort(syms, kind="stable")
        grouped = ticks[order]
        keys = syms[order].astype(np.int64) << 40 | grouped["ts_event"] // HOUR_NS & 0xFFFFFFFFFF
        cuts = np.flatnonzero(keys[1:] != keys[:-1]) + 1
        starts, ends = np.r_[0, cuts].tolist(), np.r_[cuts, len(grouped)].tolist()
        for a, b in zip(starts, ends, strict=True):
            run = grouped[a:b]
            self._add_run(symbols[int(run["sym"][0])], run, int(run["ts_event"][0] // HOUR_NS))

    def _add_run(self, symbol: str, run: np.ndarray, hour: int) -> None:
        while len(run):
            block = self._open.get(symbol)
            if block is None or block.hour != hour or block.count >= BLOCK_TICKS:
                if block is not None:
                    self._sealed.append((symbol, block))
                block = self._open[symbol] = _OpenBlock(self._new_id(), hour)
            room = BLOCK_TICKS - block.count
            block.add(run[:room])
            run = run[room:]

    def take(self) -> tuple[list[tuple[Any, ...]], list[int]]:
        """What the next flush writes: rows (BLOCK_COLUMNS) to insert or replace, and the ids
        of chunk rows to delete (their sealed block's row replaces them)."""
        rows, gone = [], []
        for symbol, block in self._sealed:
            rows.append(_row(block.id, symbol, block.ticks()))
            gone.extend(block.chunks)
        self._sealed.clear()
        for symbol, block in self._open.items():
            if block.fresh:
                chunk = self._new_id()
                rows.append(_row(chunk, symbol, block.take_fresh()))
                block.chunks.append(chunk)
        return rows, gone


def _row(row_id: int, symbol: str, ticks: np.ndarray) -> tuple[Any, ...]:
    ts = ticks["ts_event"]
    return (row_id, symbol, int(ts.min()), int(ts.max()), len(ticks), CODEC, encode(ticks))


def next_block_id(conn: sqlite3.Connection) -> int:
    (top,) = conn.execute("SELECT COALESCE(MAX(id), 0) FROM tick_blocks").fetchone()
    return int(top) + 1


def read_ticks(
    conn: sqlite3.Connection,
    symbol: str,
    start: int | None = None,
    end: int | None = None,
    sym: int = 0,
) -> np.ndarray:
    """A symbol's stored ticks with start <= ts_event < end (either open), in the order they
    arrived, as TICK_DTYPE with `sym` in every row: legacy rows first, then blocks."""
    lo = np.iinfo(np.int64).min if start is None else int(start)
    hi = np.iinfo(np.int64).max if end is None else int(end)
    parts = [_legacy_rows(conn, symbol, lo, hi, sym)]
    for n, codec, data, ts_min, ts_max in conn.execute(
        "SELECT n, codec, data, ts_min, ts_max FROM tick_blocks "
        "WHERE symbol = ? AND ts_min < ? AND ts_max >= ? ORDER BY id",
        (symbol, hi, lo),
    ):
        if codec != CODEC:
            raise ValueError(f"tick block of {symbol} has an unknown codec {codec!r}")
        block = decode(data, n, sym)
        if ts_min < lo or ts_max >= hi:  # the range cuts this block
            ts = block["ts_event"]
            block = block[(ts >= lo) & (ts < hi)]
        parts.append(block)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def count_ticks(conn: sqlite3.Connection, symbol: str | None = None) -> int:
    """How many ticks are stored (of one symbol, or all), legacy rows and blocks together."""
    where, args = ("WHERE symbol = ?", (symbol,)) if symbol is not None else ("", ())
    (rows,) = conn.execute(f"SELECT COUNT(*) FROM ticks {where}", args).fetchone()
    (blocks,) = conn.execute(
        f"SELECT COALESCE(SUM(n), 0) FROM tick_blocks {where}", args
    ).fetchone()
    return int(rows) + int(blocks)


def newest_tick_ts(conn: sqlite3.Connection, symbol: str) -> int | None:
    """The latest ts_event stored for a symbol, None when it has none."""
    (rows,) = conn.execute("SELECT MAX(ts_event) FROM ticks WHERE symbol = ?", (symbol,)).fetchone()
    (blocks,) = conn.execute(
        "SELECT MAX(ts_max) FROM tick_blocks WHERE symbol = ?", (symbol,)
    ).fetchone()
    found = [v for v in (rows, blocks) if v is not None]
    return max(found) if found else None


def _legacy_rows(conn: sqlite3.Connection, symbol: str, lo: int, hi: int, sym: int) -> np.ndarray:
    rows = conn.execute(
        "SELECT ts_event, ts_recv, bid, ask, last, volume FROM ticks "
        "WHERE symbol = ? AND ts_event >= ? AND ts_event < ? ORDER BY rowid",
        (symbol, lo, hi),
    ).fetchall()
    out = np.zeros(len(rows), dtype=TICK_DTYPE)
    if rows:
        cols = list(zip(*rows, strict=True))
        out["ts_event"], out["ts_recv"] = cols[0], cols[1]
        out["bid"], out["ask"] = cols[2], cols[3]
        out["last"] = [np.nan if v is None else v for v in cols[4]]
        out["volume"] = [np.nan if v is None else v for v in cols[5]]
        out["sym"] = sym
    return out
