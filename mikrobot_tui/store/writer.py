"""The one writer: buffers rows and flushes them in a single transaction.

The engine calls `flush()` every 50 ms or when 5,000 rows are waiting (live), or per batch
(replay). Everything buffered between two flushes lands atomically, so an event and the
projection rows derived from it (trades, positions) are never seen half-written.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

Op = Literal["append", "upsert", "replace_all"]


@dataclass
class _Pending:
    op: Op
    table: str
    columns: tuple[str, ...]
    rows: list[Sequence[Any]] = field(default_factory=list)


class Writer:
    FLUSH_ROWS = 5_000
    FLUSH_SECONDS = 0.05

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._pending: list[_Pending] = []
        self._rows = 0

    @property
    def pending_rows(self) -> int:
        return self._rows

    def _add(self, op: Op, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]):
        rows = list(rows)
        last = self._pending[-1] if self._pending else None
        cols = tuple(columns)
        if last is not None and (last.op, last.table, last.columns) == (op, table, cols):
            last.rows.extend(rows)
        else:
            self._pending.append(_Pending(op, table, cols, rows))
        self._rows += len(rows)

    def append(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        self._add("append", table, columns, rows)

    def upsert(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """Insert or replace by primary key."""
        self._add("upsert", table, columns, rows)

    def replace_all(
        self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
    ) -> None:
        """Make the table hold exactly these rows (for small snapshot tables)."""
        self._add("replace_all", table, columns, rows)

    def append_ticks(self, ticks: np.ndarray, symbols: Sequence[str]) -> None:
        if len(ticks) == 0:
            return
        names = np.asarray(symbols, dtype=object)[ticks["sym"]]
        last = ticks["last"].astype(object)
        vol = ticks["volume"].astype(object)
        last[np.isnan(ticks["last"])] = None
        vol[np.isnan(ticks["volume"])] = None
        rows = zip(
            ticks["ts_event"].tolist(),
            ticks["ts_recv"].tolist(),
            names.tolist(),
            ticks["bid"].tolist(),
            ticks["ask"].tolist(),
            last.tolist(),
            vol.tolist(),
            strict=True,
        )
        self.append("ticks", TICK_COLUMNS, rows)

    def flush(self) -> int:
        """Write everything buffered in one transaction; returns the number of rows."""
        if not self._pending:
            return 0
        pending, self._pending, written, self._rows = self._pending, [], self._rows, 0
        cur = self._conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            for p in pending:
                cols = ", ".join(p.columns)
                marks = ", ".join("?" for _ in p.columns)
                if p.op == "replace_all":
                    cur.execute(f"DELETE FROM {p.table}")
                verb = "INSERT" if p.op == "append" else "INSERT OR REPLACE"
                if p.rows:
                    cur.executemany(f"{verb} INTO {p.table} ({cols}) VALUES ({marks})", p.rows)
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        return written


TICK_COLUMNS = ("ts_event", "ts_recv", "symbol", "bid", "ask", "last", "volume")
