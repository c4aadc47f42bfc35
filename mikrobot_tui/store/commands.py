"""Operator commands through the `commands` table: any process sends, the engine executes.

The cockpit and the CLI insert a pending row; the engine polls (every 100 ms, or at once when
woken in-process), carries the command out, and marks the row done or failed with a result
text the sender prints.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Command(StrEnum):
    HALT = "halt"
    RESUME = "resume"
    FLATTEN = "flatten"


@dataclass(frozen=True, slots=True)
class CommandRow:
    id: int
    ts: int
    command: str
    args: dict[str, Any]
    status: str
    result: str | None


def send(conn: sqlite3.Connection, command: Command, ts: int, **args: Any) -> int:
    cur = conn.execute(
        "INSERT INTO commands (ts, command, args, status) VALUES (?, ?, ?, 'pending')",
        [ts, str(command), json.dumps(args, sort_keys=True)],
    )
    return int(cur.lastrowid)


def pending(conn: sqlite3.Connection) -> list[CommandRow]:
    rows = conn.execute(
        "SELECT id, ts, command, args, status, result FROM commands "
        "WHERE status = 'pending' ORDER BY id"
    ).fetchall()
    return [CommandRow(r[0], r[1], r[2], json.loads(r[3] or "{}"), r[4], r[5]) for r in rows]


def expire_older_than(conn: sqlite3.Connection, ts: int, now: int) -> int:
    """Mark pending commands sent before `ts` as expired: nobody waits for them any more, and
    an engine started later must not carry out an old flatten."""
    cur = conn.execute(
        "UPDATE commands SET status = 'expired', result = 'no engine answered in time', "
        "done_ts = ? WHERE status = 'pending' AND ts < ?",
        [now, ts],
    )
    return cur.rowcount


def get(conn: sqlite3.Connection, command_id: int) -> CommandRow | None:
    r = conn.execute(
        "SELECT id, ts, command, args, status, result FROM commands WHERE id = ?", [command_id]
    ).fetchone()
    return CommandRow(r[0], r[1], r[2], json.loads(r[3] or "{}"), r[4], r[5]) if r else None


def wait(conn: sqlite3.Connection, command_id: int, timeout_s: float = 3.0) -> CommandRow | None:
    """Poll until the engine has answered; None when it did not within the timeout.

    Uses the wall clock on purpose: this is the sender's patience, not trading time.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        row = get(conn, command_id)
        if row is not None and row.status != "pending":
            return row
        if time.monotonic() >= deadline:
            return row if row is not None and row.status != "pending" else None
        time.sleep(0.05)
