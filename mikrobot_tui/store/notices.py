"""What the cockpit tells the operator as it happens: alerts, and each external signal.

Every `alert` event (engine/alerts.py: a breaker, a margin call, a limit, a halt) becomes a
notice of its severity: info as information, warning as a warning, critical as an error that
stays on screen longer. External signals (the EA's file, the webhook) arrive without the
operator watching: each order submitted or refused for one (an event whose payload names its
`source`) and each input rejected from one (a `rejects` row whose source is `ea:...` or
`webhook:...`) becomes a notice too. A cursor remembers how far the reader has come, so each is
told once.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

SIGNAL_SOURCES = "(source LIKE 'ea:%' OR source LIKE 'webhook:%')"
# an alert's severity as Textual's notification severity, and how long it stays (seconds)
ALERT_SEVERITY = {"info": "information", "warning": "warning", "critical": "error"}
TIMEOUT_S = 8.0
CRITICAL_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class Notice:
    title: str
    text: str
    severity: str  # "information", "warning" or "error"
    timeout: float = TIMEOUT_S
    alert: bool = False  # an alert's (told before the signals' when a burst comes)


@dataclass
class NoticeCursor:
    reject_id: int = 0
    seq: int = 0


def start_cursor(conn: sqlite3.Connection) -> NoticeCursor:
    """The cursor at what the database holds now: only what comes later is told."""
    (reject_id,) = conn.execute("SELECT COALESCE(MAX(id), 0) FROM rejects").fetchone()
    (seq,) = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
    return NoticeCursor(int(reject_id), int(seq))


def signal_notices(conn: sqlite3.Connection, cursor: NoticeCursor) -> list[Notice]:
    """The notices after `cursor`, oldest first; the cursor moves past them (and past the
    rows that are none, read in the same snapshot of the database)."""
    conn.execute("BEGIN")
    try:
        return _notices(conn, cursor)
    finally:
        conn.execute("COMMIT")


def _notices(conn: sqlite3.Connection, cursor: NoticeCursor) -> list[Notice]:
    notices = []
    for rid, source, reason in conn.execute(
        f"SELECT id, source, reason FROM rejects WHERE id > ? AND {SIGNAL_SOURCES} ORDER BY id",
        [cursor.reject_id],
    ):
        cursor.reject_id = max(cursor.reject_id, rid)
        notices.append(Notice("Signal rejected", f"{source}: {reason}", "warning"))
    (top,) = conn.execute("SELECT COALESCE(MAX(id), 0) FROM rejects").fetchone()
    cursor.reject_id = max(cursor.reject_id, int(top))
    for seq, kind, account, payload in conn.execute(
        "SELECT seq, kind, account, payload FROM events WHERE seq > ? "
        "AND kind IN ('order_submitted', 'order_refused', 'alert') ORDER BY seq",
        [cursor.seq],
    ):
        cursor.seq = max(cursor.seq, seq)
        p = json.loads(payload)
        if kind == "alert":
            notices.append(_alert_notice(p))
            continue
        if "source" not in p:
            continue  # a strategy's: the positions pane shows those
        what = f"{p['source']}: {p.get('side', '')} {p.get('symbol', '')} in {account}"
        if kind == "order_submitted":
            notices.append(Notice("Signal order", f"{what}, {p['lots']:g} lots", "information"))
        else:
            notices.append(Notice("Signal refused", f"{what}: {p['reason']}", "warning"))
    (top,) = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
    cursor.seq = max(cursor.seq, int(top))
    return notices


def _alert_notice(p: dict) -> Notice:
    severity = str(p.get("severity", "critical"))
    critical = severity not in ("info", "warning")
    return Notice(
        str(p.get("title", "Alert")),
        str(p.get("text", "")),
        ALERT_SEVERITY.get(severity, "error"),
        CRITICAL_TIMEOUT_S if critical else TIMEOUT_S,
        alert=True,
    )
