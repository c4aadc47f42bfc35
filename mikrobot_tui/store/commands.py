"""Operator commands through the `commands` table: any process sends, the engine executes.

The cockpit and the CLI insert a pending row and wait for its answer. The engine claims
pending rows in one transaction (status `running`), carries them out, and answers each as
`done` or `failed` with a result text, in the same transaction as the events it caused.

Every decision about a row is atomic, so no command is carried out that nobody wants any more:
- a sender that gives up withdraws its row (`withdrawn`) in the transaction that finds it
  still pending; if the engine claimed it first, the sender waits for the answer instead;
- an engine never carries out a command sent before it started (`expired`): a halt or a
  flatten typed at a dead cockpit must not happen at the next start-up;
- a malformed row (no time, an unknown command, arguments that are not a JSON object) is
  answered `failed` with the reason; it never stops the engine.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Command(StrEnum):
    HALT = "halt"
    RESUME = "resume"
    REDUCE = "reduce"  # engine-wide REDUCING: only orders that reduce exposure
    FLATTEN = "flatten"
    CANCEL = "cancel"  # {"order_id"}
    MODIFY = "modify"  # {"order_id", "changes": {price | trigger | lots | expire_ts: value}}


FINAL = ("done", "failed", "expired", "withdrawn")


@dataclass(frozen=True, slots=True)
class CommandRow:
    id: int
    ts: int | None
    command: str
    args: dict[str, Any]
    status: str
    result: str | None


@dataclass(frozen=True, slots=True)
class Claimed:
    """A command the engine has claimed: what to do, or why it cannot be done."""

    id: int
    command: Command | None
    args: dict[str, Any]
    problem: str | None  # set when the row is malformed


def _args(text: Any) -> dict[str, Any] | None:
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _row(r: tuple[Any, ...]) -> CommandRow:
    return CommandRow(r[0], r[1], r[2], _args(r[3]) or {}, r[4], r[5])


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
    return [_row(r) for r in rows]


def get(conn: sqlite3.Connection, command_id: int) -> CommandRow | None:
    r = conn.execute(
        "SELECT id, ts, command, args, status, result FROM commands WHERE id = ?", [command_id]
    ).fetchone()
    return _row(r) if r else None


def claim(conn: sqlite3.Connection, not_before: int, now: int) -> list[Claimed]:
    """Take every pending command in one transaction: those sent before `not_before` (the
    engine's start) are expired, the rest are marked `running` and returned, malformed ones
    with their problem. Raises sqlite3.OperationalError when the table cannot be written now.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        rows = conn.execute(
            "SELECT id, ts, command, args FROM commands WHERE status = 'pending' ORDER BY id"
        ).fetchall()
        claimed, expired = [], []
        for command_id, ts, command, args in rows:
            if isinstance(ts, int) and ts < not_before:
                expired.append(command_id)
                continue
            parsed = _args(args)
            problem = None
            if not isinstance(ts, int):
                problem = f"malformed command: no valid time ({ts!r})"
            elif command not in set(Command):
                problem = f"unknown command {command!r}; known: {', '.join(Command)}"
            elif parsed is None:
                problem = f"malformed command: arguments must be a JSON object, got {args!r}"
            known = Command(command) if problem is None else None
            claimed.append(Claimed(command_id, known, parsed or {}, problem))
        conn.executemany(
            "UPDATE commands SET status = 'expired', result = ?, done_ts = ? WHERE id = ?",
            [("sent before this engine started; not carried out", now, i) for i in expired],
        )
        conn.executemany(
            "UPDATE commands SET status = 'running' WHERE id = ?", [(c.id,) for c in claimed]
        )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return claimed


def abandon_running(conn: sqlite3.Connection, now: int) -> int:
    """Commands an earlier engine claimed but never answered (it died): answer them failed."""
    cur = conn.execute(
        "UPDATE commands SET status = 'failed', result = 'the engine stopped before answering', "
        "done_ts = ? WHERE status = 'running'",
        [now],
    )
    return cur.rowcount


def withdraw(conn: sqlite3.Connection, command_id: int, now: int) -> bool:
    """Take back a command nobody has claimed; False when the engine has it already."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        cur = conn.execute(
            "UPDATE commands SET status = 'withdrawn', result = 'the sender gave up waiting', "
            "done_ts = ? WHERE id = ? AND status = 'pending'",
            [now, command_id],
        )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return cur.rowcount == 1


def wait(
    conn: sqlite3.Connection,
    command_id: int,
    timeout_s: float = 3.0,
    still_hoping: Callable[[], bool] | None = None,
) -> CommandRow | None:
    """Poll until the engine has answered; None when nobody took the command in time, the
    row still `running` when the engine took it but has not answered.

    At the timeout a command still pending is withdrawn in the same transaction that finds
    it pending, so no engine carries it out later. One the engine has claimed is waited for
    as long as `still_hoping()` says (the engine is alive but its database is slow).
    Uses the wall clock on purpose: this is the sender's patience, not trading time.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        row = get(conn, command_id)
        if row is not None and row.status in FINAL:
            return row
        if time.monotonic() >= deadline:
            if row is None:
                return None
            if row.status == "pending" and withdraw(conn, command_id, time.time_ns()):
                return None
            if still_hoping is None or not still_hoping():
                return get(conn, command_id)  # claimed (`running`) but not answered yet
            deadline = time.monotonic() + 1.0
        time.sleep(0.05)
