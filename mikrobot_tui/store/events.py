"""The event log: append-only, `seq` primary key, JSON payloads with sorted keys."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any

from mikrobot_tui.domain.events import Event, EventKind
from mikrobot_tui.store.writer import Writer

EVENT_COLUMNS = ("seq", "ts", "kind", "account", "payload")


class EventLog:
    """Numbers events and hands them to the writer; the caller applies them to its state."""

    def __init__(self, writer: Writer, last_seq: int) -> None:
        self._writer = writer
        self._seq = last_seq

    @property
    def last_seq(self) -> int:
        return self._seq

    def append(self, ts: int, kind: EventKind, account: str | None, payload: dict[str, Any]):
        self._seq += 1
        event = Event(self._seq, ts, kind, account, payload)
        self._writer.append(
            "events", EVENT_COLUMNS, [(event.seq, ts, str(kind), account, event.payload_json())]
        )
        return event


def read_events(
    conn: sqlite3.Connection, after_seq: int = 0, account: str | None = None
) -> Iterator[Event]:
    sql = "SELECT seq, ts, kind, account, payload FROM events WHERE seq > ?"
    args: list[Any] = [after_seq]
    if account is not None:
        sql += " AND account = ?"
        args.append(account)
    for seq, ts, kind, acct, payload in conn.execute(sql + " ORDER BY seq", args):
        yield Event(seq, ts, EventKind(kind), acct, json.loads(payload))


def raw_events(conn: sqlite3.Connection) -> list[tuple[int, int, str, str | None, str]]:
    """The log exactly as stored, for byte-for-byte comparisons."""
    sql = "SELECT seq, ts, kind, account, payload FROM events ORDER BY seq"
    return conn.execute(sql).fetchall()
