"""Ticks as compressed column blocks: one symbol, one UTC hour, at most BLOCK_TICKS ticks each.

A row per tick (the `ticks` table, kept for files written before blocks) cost about a hundred
bytes with its index and took the replay from 3M to a quarter of a million ticks a second. A
block keeps a symbol's ticks in arrival order as columns, each made small before compression:

- ts_event as deltas from the tick before (the first from 0), so a steady feed is a run of
  near-equal small numbers; ts_recv as its latency against ts_event;
- bid, ask, last and volume as their 64-bit patterns XORed with the tick before's, so an
  unchanged price is all zero bits and a changed one mostly leading zeros (Gorilla's idea);
- every column's bytes shuffled (byte 0 of every value, then byte 1, ...) so those zeros
  line up in long runs, and the whole compressed with zstandard at level 1 (a payload).

A block's data (codec "xdz2") is a sequence of frames, each its tick count and payload size
("<II") and a payload of its own, so frames join by concatenation and a block written in
several pieces is never encoded again. Blocks written before (codec "xdz1") are one payload
without a header; they are still read. Decoding undoes each step exactly: a block
round-trips bit for bit, NaNs and all.

The writer (store/writer.py) keeps each symbol's newest block open in memory (a `TickBuffer`)
and writes what it gained with every flush as a chunk (a row of one frame), in the same
transaction as the events of those ticks: a kill -9 loses no tick the database says it has.
A block is sealed when it reaches BLOCK_TICKS or its hour ends; its frames joined make one row
that replaces its chunks (a block that was one chunk keeps that row). The engine's thread only
copies each batch: a worker thread of the buffer groups the ticks, and two shared encoding
threads encode each block as it seals (zstandard and most of numpy let go of the GIL); a flush
waits for them, and whatever failed there raises at the flush. Rows are read in id order,
which is the order the ticks arrived in; a read decodes its blocks on two threads straight
into one array.

`read_ticks(conn, symbol, start, end)` is the one way to read ticks back, from blocks and from
legacy rows alike.
"""

from __future__ import annotations

import functools
import sqlite3
import struct
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from mikrobot_tui.domain.market import NS_PER_SECOND, TICK_DTYPE

BLOCK_TICKS = 8_192
HOUR_NS = 3_600 * NS_PER_SECOND
CODEC = "xdz2"  # a sequence of frames, each "<II" (ticks, bytes) and an xdz1 payload
CODECS = ("xdz1", "xdz2")  # what read_ticks and decode read; xdz1 is one payload, no header
LEVEL = 1  # zstandard's level for new blocks
BLOCK_COLUMNS = ("id", "symbol", "ts_min", "ts_max", "n", "codec", "data")
_COLUMNS = ("ts_event", "ts_recv", "bid", "ask", "last", "volume")
_HEADER = struct.Struct("<II")
_I64 = np.iinfo(np.int64)
_local = threading.local()  # each thread's own compressor and decompressor (not shareable)


def _zstd() -> Any:
    import zstandard  # only where blocks are written or read: start-up stays fast

    return zstandard


def _compressor() -> Any:
    c = getattr(_local, "compressor", None)
    if c is None:
        c = _local.compressor = _zstd().ZstdCompressor(level=LEVEL)
    return c


def _decompressor() -> Any:
    d = getattr(_local, "decompressor", None)
    if d is None:
        d = _local.decompressor = _zstd().ZstdDecompressor()
    return d


def _payload(ticks: np.ndarray, compressor: Any) -> bytes:
    """The xdz1 payload: the columns made small, byte-shuffled, compressed."""
    n = len(ticks)
    cols = np.empty((len(_COLUMNS), n), dtype=np.uint64)
    signed = cols.view(np.int64)
    ts = ticks["ts_event"]
    if n:
        signed[0, 0] = ts[0]
        np.subtract(ts[1:], ts[:-1], out=signed[0, 1:])
    np.subtract(ticks["ts_recv"], ts, out=signed[1])
    for row, name in enumerate(_COLUMNS[2:], 2):
        bits = ticks[name].view(np.uint64)
        if n:
            cols[row, 0] = bits[0]
            np.bitwise_xor(bits[1:], bits[:-1], out=cols[row, 1:])
    shuffled = cols.view(np.uint8).reshape(len(_COLUMNS), n, 8).transpose(0, 2, 1)
    return compressor.compress(shuffled.tobytes())


def encode_frame(ticks: np.ndarray, compressor: Any = None) -> bytes:
    """One xdz2 frame of ticks (TICK_DTYPE, arrival order): frames join by concatenation."""
    payload = _payload(ticks, compressor or _compressor())
    return _HEADER.pack(len(ticks), len(payload)) + payload


def encode(ticks: np.ndarray, compressor: Any = None) -> bytes:
    """One symbol's ticks (TICK_DTYPE, arrival order) as an xdz2 block of one frame;
    `compressor` a zstandard.ZstdCompressor of another level (retention packs old blocks
    tighter)."""
    return encode_frame(ticks, compressor)


def _decode_payload(payload: bytes | memoryview, n: int, out: np.ndarray) -> None:
    raw = _decompressor().decompress(payload, max_output_size=n * 8 * len(_COLUMNS))
    if len(raw) != n * 8 * len(_COLUMNS):
        raise ValueError(f"a tick frame holds {len(raw)} bytes where {n} ticks need more")
    planes = np.frombuffer(raw, dtype=np.uint8).reshape(len(_COLUMNS), 8, n)
    cols = np.empty((len(_COLUMNS), n), dtype=np.uint64)
    spread = cols.view(np.uint8).reshape(len(_COLUMNS), n, 8)
    for k in range(8):  # a plane at a time: twice as fast as one transposed copy
        spread[:, :, k] = planes[:, k, :]
    # undone in place, in the aligned columns, then copied into the packed records once: an
    # accumulation straight into their unaligned fields goes several times slower
    signed = cols.view(np.int64)
    np.cumsum(signed[0], out=signed[0])
    np.add(signed[0], signed[1], out=signed[1])
    out["ts_event"], out["ts_recv"] = signed[0], signed[1]
    for row, name in enumerate(_COLUMNS[2:], 2):
        np.bitwise_xor.accumulate(cols[row], out=cols[row])
        out[name] = cols[row].view(np.float64)  # a copy of the bits, NaN payloads and all


def decode_into(data: bytes, n: int, out: np.ndarray, codec: str = CODEC) -> None:
    """A block's n ticks written into `out` (TICK_DTYPE, n rows); `sym` is left alone."""
    if codec == "xdz1":
        _decode_payload(data, n, out)
        return
    if codec != "xdz2":
        raise ValueError(f"tick block has an unknown codec {codec!r}")
    view, at, done = memoryview(data), 0, 0
    while at < len(view):
        count, size = _HEADER.unpack_from(view, at)
        at += _HEADER.size
        if done + count > n or at + size > len(view):
            raise ValueError(f"a tick block's frames hold more than the {n} ticks it says")
        _decode_payload(view[at : at + size], count, out[done : done + count])
        at, done = at + size, done + count
    if done != n:
        raise ValueError(f"a tick block's frames hold {done} ticks where it says {n}")


def decode(data: bytes, n: int, sym: int = 0, codec: str = CODEC) -> np.ndarray:
    """A block back as TICK_DTYPE ticks, `sym` in every row."""
    out = np.empty(n, dtype=TICK_DTYPE)
    decode_into(data, n, out, codec)
    out["sym"] = sym
    return out


class _OpenBlock:
    __slots__ = (
        "chunks",
        "count",
        "frames",
        "fresh",
        "fresh_max",
        "fresh_min",
        "hour",
        "id",
        "ts_max",
        "ts_min",
    )

    def __init__(self, block_id: int, hour: int) -> None:
        self.id, self.hour = block_id, hour
        self.frames: list[Future[bytes]] = []  # its ticks encoded so far, in order
        self.fresh: list[np.ndarray] = []  # ticks not yet in a frame
        self.count = 0  # ticks in the block
        self.chunks: list[int] = []  # the ids of its chunk rows
        self.ts_min, self.ts_max = _I64.max, _I64.min
        self.fresh_min, self.fresh_max = _I64.max, _I64.min

    def add(self, ticks: np.ndarray) -> None:
        self.fresh.append(ticks)
        self.count += len(ticks)
        ts = ticks["ts_event"]
        lo, hi = int(ts.min()), int(ts.max())
        self.ts_min, self.ts_max = min(self.ts_min, lo), max(self.ts_max, hi)
        self.fresh_min, self.fresh_max = min(self.fresh_min, lo), max(self.fresh_max, hi)

    def frame_fresh(self) -> tuple[Future[bytes], int, int, int]:
        """The ticks not yet in a frame, handed to the encoders as one: the frame to come,
        its tick count and ts_event range."""
        fresh, self.fresh = self.fresh, []
        frame = _encoders().submit(_encode_parts, fresh)
        self.frames.append(frame)
        lo, hi = self.fresh_min, self.fresh_max
        self.fresh_min, self.fresh_max = _I64.max, _I64.min
        return frame, sum(len(f) for f in fresh), lo, hi


def _encode_parts(parts: list[np.ndarray]) -> bytes:
    return encode_frame(parts[0] if len(parts) == 1 else np.concatenate(parts))


@functools.cache
def _encoders() -> ThreadPoolExecutor:
    """Encoding threads, shared: zstandard lets go of the GIL, so two cores encode."""
    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="tick-encoder")


class TickBuffer:
    """Each symbol's open block, and the sealed ones not yet handed to the writer.

    An open block reaches the database as chunks: each flush writes the ticks that arrived
    since the last one as a frame in a small row of its own, so no tick waits for its block
    to fill. Sealing writes the block's frames joined as one row, under the id it was given
    when it opened, and deletes its chunks in the same transaction; no tick is encoded twice.
    A block sealed whole between two flushes is one frame, a block that was one chunk keeps
    that chunk's row as it is.

    The work happens off the caller's thread, in the order it was asked for: `add` copies the
    batch and queues it for the buffer's worker thread, which groups the ticks and hands each
    block that seals to the encoding threads; `take` waits for both and re-raises whatever
    failed there.
    """

    def __init__(self, next_id: int = 1) -> None:
        self._next_id = next_id
        self._open: dict[str, _OpenBlock] = {}
        self._sealed: list[tuple[str, _OpenBlock]] = []
        self._pool: ThreadPoolExecutor | None = None
        self._queued: list[Future[None]] = []
        self._waiting = 0

    @property
    def waiting(self) -> int:
        """Ticks not yet handed to the writer in a row."""
        return self._waiting

    def close(self) -> None:
        """Stop the worker thread (the buffer starts another if used again)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _worker(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tick-buffer")
        return self._pool

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def add(self, ticks: np.ndarray, symbols: list[str] | tuple[str, ...]) -> None:
        """A batch of ticks (any symbols, arrival order), copied: the caller may reuse it."""
        if len(ticks) == 0:
            return
        self._waiting += len(ticks)
        self._queued.append(self._worker().submit(self._add, ticks.copy(), tuple(symbols)))

    def _add(self, ticks: np.ndarray, symbols: tuple[str, ...]) -> None:
        syms = ticks["sym"]
        # one stable sort groups the symbols and keeps each one's arrival order; each group
        # is then cut where its hour changes
        order = np.argsort(syms, kind="stable")
        grouped = np.take(ticks, order)  # ten times ticks[order] for a packed record dtype
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
                    if block.fresh:
                        block.frame_fresh()
                    self._sealed.append((symbol, block))
                block = self._open[symbol] = _OpenBlock(self._new_id(), hour)
            room = BLOCK_TICKS - block.count
            block.add(run[:room])
            run = run[room:]

    def take(self) -> tuple[list[tuple[Any, ...]], list[int]]:
        """What the next flush writes: rows (BLOCK_COLUMNS) to insert or replace, and the ids
        of chunk rows to delete (their sealed block's row replaces them). Raises what failed
        on the worker thread since the last take."""
        queued, self._queued = self._queued, []
        for job in queued:
            job.result()
        rows, gone = self._worker().submit(self._take).result()
        self._waiting = 0
        return rows, gone

    def _take(self) -> tuple[list[tuple[Any, ...]], list[int]]:
        rows, gone = [], []
        for symbol, block in self._sealed:
            if len(block.chunks) == 1 and len(block.frames) == 1:
                continue  # its one chunk row is the whole block already
            data = b"".join(f.result() for f in block.frames)
            rows.append((block.id, symbol, block.ts_min, block.ts_max, block.count, CODEC, data))
            gone.extend(block.chunks)
        self._sealed.clear()
        for symbol, block in self._open.items():
            if block.fresh:
                frame, n, ts_min, ts_max = block.frame_fresh()
                chunk = self._new_id()
                rows.append((chunk, symbol, ts_min, ts_max, n, CODEC, frame.result()))
                block.chunks.append(chunk)
        return rows, gone


@functools.cache
def _readers() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="tick-decoder")


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
    lo = _I64.min if start is None else int(start)
    hi = _I64.max if end is None else int(end)
    legacy = _legacy_rows(conn, symbol, lo, hi, sym)
    rows = conn.execute(
        "SELECT n, codec, data, ts_min, ts_max FROM tick_blocks "
        "WHERE symbol = ? AND ts_min < ? AND ts_max >= ? ORDER BY id",
        (symbol, hi, lo),
    ).fetchall()
    # every block decoded straight into its place in one array, `sym` filled once
    out = np.empty(len(legacy) + sum(r[0] for r in rows), dtype=TICK_DTYPE)
    out[: len(legacy)] = legacy
    at, cut, jobs = len(legacy), [], []
    for n, codec, data, ts_min, ts_max in rows:
        if codec not in CODECS:
            raise ValueError(f"tick block of {symbol} has an unknown codec {codec!r}")
        jobs.append((data, n, out[at : at + n], codec))
        if ts_min < lo or ts_max >= hi:  # the range cuts this block
            cut.append((at, at + n))
        at += n
    if len(jobs) > 1:  # zstandard and numpy's copies let go of the GIL: two threads decode
        list(_readers().map(lambda job: decode_into(*job), jobs))  # raises what a job raised
    elif jobs:
        decode_into(*jobs[0])
    out["sym"][len(legacy) :] = sym
    if cut:
        keep = np.ones(len(out), dtype=bool)
        for a, b in cut:
            ts = out["ts_event"][a:b]
            keep[a:b] = (ts >= lo) & (ts < hi)
        out = out[keep]
    return out


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
