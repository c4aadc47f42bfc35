"""The one writer: buffers rows and flushes them in a single transaction, losing none.

The engine calls `flush()` every 50 ms or when 5,000 rows are waiting (live), or by size
(replay). Everything buffered between two flushes lands atomically, so an event and the
projection rows derived from it (trades, positions) are never seen half-written.

When the database is busy, locked by another process, full, or failing on I/O, a flush keeps
every row it has, records the problem (`problem`, `full`, `since`), and the next flushes retry
with a growing backoff (50 ms up to 2 s) until one succeeds. Rows for the read-side tables
(`snapshot`, `replace_all`) keep only their newest version while they wait, so a long lock
holds the log's rows and one snapshot, not a snapshot per refresh. `backlogged` tells the
engine to stop taking new ticks until the rows are down (back-pressure, never silent loss).
Any other error (a missing table, a broken constraint) is a bug: it raises.

Ticks are not rows: `append_ticks` hands them to a TickBuffer (store/tickstore.py), and every
flush writes the blocks that changed (the sealed ones, and each symbol's open block as it has
grown, as a chunk) in the same transaction as everything else. For flushing by size a tick
counts as 1/TICKS_PER_ROW of a row: a replay flushes every ~320,000 ticks rather than 5,000,
so most blocks fill and seal between flushes and are written once, and the transactions' own
cost (a file replay's checkpoint of the engine's state with each) is spread over more ticks.
For back-pressure a tick counts whole, as when it was a row.

Once ticks are written, a thread of the writer's own copies the WAL back into the database
file (`_Checkpointer`), so the engine's commits do not wait for that copy and its fsyncs.
`close()` stops the writer's threads.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from mikrobot_tui.store.tickstore import BLOCK_COLUMNS, TickBuffer, next_block_id

Op = Literal["append", "upsert", "replace_all", "update", "delete"]

# SQLite's primary result codes that a later attempt can get past
_TRANSIENT = {
    5: "locked by another process",  # SQLITE_BUSY
    6: "locked",  # SQLITE_LOCKED
    8: "read-only",  # SQLITE_READONLY
    10: "failing on disk I/O",  # SQLITE_IOERR
    13: "full",  # SQLITE_FULL
    14: "unable to open its files",  # SQLITE_CANTOPEN
}
_FULL = 13
_LOCK = (5, 6)  # another connection has it: wait, it will go


@dataclass
class _Pending:
    op: Op
    table: str
    columns: tuple[str, ...]
    rows: list[Sequence[Any]] = field(default_factory=list)
    key: tuple[str, ...] = ()  # for "update": the WHERE columns, after the SET columns


class Writer:
    FLUSH_ROWS = 5_000
    TICKS_PER_ROW = 64
    FLUSH_SECONDS = 0.05
    MAX_PENDING_ROWS = 250_000  # past this the engine takes no new ticks until rows land
    BACKOFF_S = (0.05, 2.0)

    def __init__(
        self,
        conn: sqlite3.Connection,
        busy_timeout_ms: int | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._conn = conn
        if busy_timeout_ms is not None:  # how long one attempt waits for another writer
            conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        self._pending: list[_Pending] = []
        self._latest: dict[str, _Pending] = {}  # read-side tables: newest rows only
        self._rows = 0
        self._monotonic = monotonic
        self.problem: str | None = None  # why the last flush could not write, None when fine
        self.full = False  # the last failure was SQLITE_FULL (disk or database full)
        self.cannot_store = False  # full, read-only or failing: not a lock that will pass
        self.since: float | None = None  # monotonic time the current problem started
        self._retry_at = 0.0
        self._backoff = self.BACKOFF_S[0]
        self.before_flush: Callable[[], None] | None = None  # adds rows that must go along
        self._ticks: TickBuffer | None = None  # made at the first tick: it asks the next id
        self._wal_bytes = 0  # about what commits added to the WAL since the last checkpoint
        self._checkpointer: _Checkpointer | None = None  # started by the first ticks written
        self._checkpointer_tried = False

    @property
    def pending_ticks(self) -> int:
        return self._ticks.waiting if self._ticks is not None else 0

    @property
    def pending_rows(self) -> int:
        ticks = self.pending_ticks // self.TICKS_PER_ROW
        return self._rows + ticks + sum(len(p.rows) for p in self._latest.values())

    @property
    def backlogged(self) -> bool:
        waiting = self._rows + self.pending_ticks
        return self.problem is not None and waiting >= self.MAX_PENDING_ROWS

    @property
    def pending_bytes(self) -> int:
        """A rough size of what waits to be written, for "free at least N MiB" messages."""
        return 120 * self.pending_rows + 30 * self.pending_ticks

    def _add(
        self,
        op: Op,
        table: str,
        columns: Sequence[str],
        rows: Iterable[Sequence[Any]],
        key: tuple[str, ...] = (),
    ) -> None:
        rows = list(rows)
        last = self._pending[-1] if self._pending else None
        cols = tuple(columns)
        if last is not None and (last.op, last.table, last.columns, last.key) == (
            op,
            table,
            cols,
            key,
        ):
            last.rows.extend(rows)
        else:
            self._pending.append(_Pending(op, table, cols, rows, key))
        self._rows += len(rows)

    def append(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        self._add("append", table, columns, rows)

    def upsert(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """Insert or replace by primary key."""
        self._add("upsert", table, columns, rows)

    def update(
        self,
        table: str,
        columns: Sequence[str],
        key: Sequence[str],
        rows: Iterable[Sequence[Any]],
    ) -> None:
        """UPDATE table SET columns WHERE key columns match; each row holds both, in order."""
        self._add("update", table, columns, rows, tuple(key))

    def replace_all(
        self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
    ) -> None:
        """Make the table hold exactly these rows (small read-side tables). A newer call
        supersedes one still waiting."""
        self._latest[table] = _Pending("replace_all", table, tuple(columns), list(rows))

    def snapshot(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """Insert or replace rows of a read-side table whose newer rows supersede older ones
        (every call carries every key the one before carried)."""
        self._latest[table] = _Pending("upsert", table, tuple(columns), list(rows))

    def append_ticks(self, ticks: np.ndarray, symbols: Sequence[str]) -> None:
        """Ticks (TICK_DTYPE, any symbols) for the tick store, written with the next flush."""
        if len(ticks) == 0:
            return
        if self._ticks is None:
            self._ticks = TickBuffer(next_block_id(self._conn))
        self._ticks.add(ticks, list(symbols))

    def _take_blocks(self) -> None:
        """The tick store's rows join the rows waiting: written, or kept while the database
        cannot take them, like any other."""
        if self._ticks is None or not self._ticks.waiting:
            return
        rows, gone = self._ticks.take()
        if not self._checkpointer_tried:  # ticks are the writes that make the WAL grow fast
            self._checkpointer_tried = True
            self._checkpointer = _Checkpointer.start(self._conn)
        self._wal_bytes += sum(len(r[6]) for r in rows)
        self.upsert("tick_blocks", BLOCK_COLUMNS, rows)
        if gone:
            self._add("delete", "tick_blocks", ("id",), [(i,) for i in gone])

    def append_trades(self, trades: np.ndarray, symbols: Sequence[str]) -> None:
        names = np.asarray(symbols, dtype=object)[trades["sym"]]
        rows = zip(
            trades["ts_event"].tolist(),
            trades["ts_recv"].tolist(),
            names.tolist(),
            trades["price"].tolist(),
            trades["size"].tolist(),
            trades["side"].tolist(),
            strict=True,
        )
        self.append("market_trades", TRADE_COLUMNS, rows)

    def flush(self) -> int:
        """Write everything buffered in one transaction; the number of rows written.

        0 without an exception when the database cannot take them now: they stay buffered.
        """
        ticks_waiting = self._ticks is not None and self._ticks.waiting > 0
        if not self._pending and not self._latest and not ticks_waiting:
            return 0
        if self.problem is not None and self._monotonic() < self._retry_at:
            return 0
        if self.before_flush is not None:
            self.before_flush()
        self._take_blocks()
        ops = [*self._pending, *self._latest.values()]
        written = self.pending_rows
        try:
            self._write(ops)
        except sqlite3.OperationalError as exc:
            code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
            if code not in _TRANSIENT:
                self._drop()
                raise
            self._failed(code, exc)
            return 0
        except BaseException:
            self._drop()
            raise
        self._drop()
        self.problem, self.full, self.cannot_store, self.since = None, False, False, None
        self._backoff = self.BACKOFF_S[0]
        self._wal_bytes += 120 * written
        if self._wal_bytes >= _Checkpointer.EVERY_BYTES:
            self._checkpoint()
        return written

    def _checkpoint(self) -> None:
        self._wal_bytes = 0
        if self._checkpointer is not None:
            self._checkpointer.nudge()

    @property
    def checkpoint_problem(self) -> str | None:
        """Why the last WAL checkpoint of the writer's thread failed, None when fine."""
        return self._checkpointer.problem if self._checkpointer is not None else None

    def close(self) -> None:
        """Stop the writer's threads (what is buffered stays buffered: flush first)."""
        if self._checkpointer is not None:
            self._checkpointer.close()
        self._checkpointer, self._checkpointer_tried = None, False
        if self._ticks is not None:
            self._ticks.close()

    def _write(self, ops: list[_Pending]) -> None:
        cur = self._conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            for p in ops:
                cols = ", ".join(p.columns)
                marks = ", ".join("?" for _ in p.columns)
                if p.op == "replace_all":
                    cur.execute(f"DELETE FROM {p.table}")
                if not p.rows:
                    continue
                if p.op == "delete":
                    where = " AND ".join(f"{c} = ?" for c in p.columns)
                    cur.executemany(f"DELETE FROM {p.table} WHERE {where}", p.rows)
                elif p.op == "update":
                    sets = ", ".join(f"{c} = ?" for c in p.columns)
                    where = " AND ".join(f"{c} = ?" for c in p.key)
                    cur.executemany(f"UPDATE {p.table} SET {sets} WHERE {where}", p.rows)
                else:
                    verb = "INSERT" if p.op == "append" else "INSERT OR REPLACE"
                    sql = f"{verb} INTO {p.table} ({cols}) VALUES ({marks})"
                    cur.executemany(sql, p.rows)
            cur.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:  # SQLite may have rolled back already (disk full)
                cur.execute("ROLLBACK")
            raise

    def _drop(self) -> None:
        self._pending, self._latest, self._rows = [], {}, 0

    def _failed(self, code: int, exc: sqlite3.OperationalError) -> None:
        now = self._monotonic()
        if self.problem is None:
            self.since = now
        self.full = code == _FULL
        self.cannot_store = code not in _LOCK
        self.problem = f"database {_TRANSIENT[code]} ({exc})"
        self._retry_at = now + self._backoff
        self._backoff = min(self._backoff * 2, self.BACKOFF_S[1])


class _Checkpointer:
    """Copies the WAL back into the database file on a thread and connection of its own.

    SQLite's auto-checkpoint does it inside the COMMIT that takes the WAL past 1,000 pages,
    with two fsyncs: most of what a replay storing ticks paid to write them. Here the engine's
    commits only append to the WAL, and the writer nudges this thread after every ~4 MB; a
    PASSIVE checkpoint never blocks the writer or readers. Should the thread fall behind or
    fail (`problem`), SQLite's own auto-checkpoint, raised to SAFETY_PAGES, bounds the WAL.
    """

    EVERY_BYTES = 4 << 20  # about SQLite's own 1,000 pages
    SAFETY_PAGES = 25_000  # ~100 MB of WAL
    PRAGMA = "PRAGMA wal_checkpoint(PASSIVE)"

    def __init__(self, conn: sqlite3.Connection, path: str) -> None:
        self._conn, self._path = conn, path
        self._wake = threading.Event()
        self._stopping = False
        self.problem: str | None = None
        self._thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)
        conn.execute(f"PRAGMA wal_autocheckpoint={self.SAFETY_PAGES}")
        self._thread.start()

    @classmethod
    def start(cls, conn: sqlite3.Connection) -> _Checkpointer | None:
        """A checkpointer for this connection's file, None when it has no file or no WAL."""
        (mode,) = conn.execute("PRAGMA journal_mode").fetchone()
        path = next((r[2] for r in conn.execute("PRAGMA database_list") if r[1] == "main"), "")
        if str(mode).lower() != "wal" or not path:
            return None
        return cls(conn, path)

    def nudge(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._stopping:
                    return
                try:
                    conn.execute(self.PRAGMA).fetchall()
                    self.problem = None
                except sqlite3.Error as exc:
                    self.problem = f"WAL checkpoint failed ({exc})"
        finally:
            conn.close()

    def close(self) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join()
        self._conn.execute("PRAGMA wal_autocheckpoint=1000")  # SQLite's default


TRADE_COLUMNS = ("ts_event", "ts_recv", "symbol", "price", "size", "side")
