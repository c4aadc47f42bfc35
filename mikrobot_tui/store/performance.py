"""What the performance report reads: an account's equity curve, the events that carry its
trades and costs (positions, fills, swaps) and the bars for buy-and-hold. Reads only, in one read
transaction, so an engine writing at the same time cannot tear the picture."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

import numpy as np

# the events the report folds: orders (symbol, strategy), fills (commission, slippage),
# positions (strategy, the conversion rate, opened and closed) and swaps
REPORT_EVENTS = (
    "account_opened",
    "order_submitted",
    "order_filled",
    "position_opened",
    "position_changed",
    "position_closed",
    "swap",
)


@dataclass(frozen=True, slots=True)
class Instrument:
    asset_class: str
    contract_size: float


@dataclass(frozen=True)
class AccountRecord:
    """One account's stored history from `since_ns` on (the events: all of them, for the
    orders and positions they name)."""

    account: str
    currency: str
    opened_ts: int | None  # the account_opened event
    initial_balance: float | None
    equity_before: float | None  # the last equity point before since_ns, None without one
    first_equity_ts: int | None  # the account's first equity point ever
    equity_ts: np.ndarray  # int64 ns, one point a minute of market time
    equity: np.ndarray
    events: list[tuple[int, int, str, dict[str, Any]]]  # (seq, ts, kind, payload)
    instruments: dict[str, Instrument]


def account_names(conn: sqlite3.Connection) -> list[str]:
    """Every account the database knows, in the order they were opened."""
    rows = conn.execute(
        "SELECT account FROM events WHERE kind = 'account_opened' GROUP BY account "
        "ORDER BY MIN(seq)"
    ).fetchall()
    names = [r[0] for r in rows]
    for (name,) in conn.execute("SELECT name FROM accounts ORDER BY name").fetchall():
        if name not in names:
            names.append(name)
    return names


def read_account(
    conn: sqlite3.Connection, account: str, since_ns: int | None = None
) -> AccountRecord:
    since = -(2**63) if since_ns is None else since_ns
    own = not conn.in_transaction
    if own:
        conn.execute("BEGIN")
    try:
        eq = conn.execute(
            "SELECT ts, equity FROM equity WHERE account = ? AND ts >= ? ORDER BY ts",
            (account, since),
        ).fetchall()
        before = conn.execute(
            "SELECT equity FROM equity WHERE account = ? AND ts < ? ORDER BY ts DESC LIMIT 1",
            (account, since),
        ).fetchone()
        first = conn.execute("SELECT MIN(ts) FROM equity WHERE account = ?", (account,)).fetchone()
        marks = ", ".join("?" * len(REPORT_EVENTS))
        events = [
            (seq, ts, kind, json.loads(payload))
            for seq, ts, kind, payload in conn.execute(
                f"SELECT seq, ts, kind, payload FROM events WHERE account = ? AND kind IN "
                f"({marks}) ORDER BY seq",
                (account, *REPORT_EVENTS),
            )
        ]
        row = conn.execute("SELECT currency FROM accounts WHERE name = ?", (account,)).fetchone()
        instruments = {
            s: Instrument(a, c)
            for s, a, c in conn.execute(
                "SELECT symbol, asset_class, contract_size FROM instruments"
            ).fetchall()
        }
    finally:
        if own:
            conn.execute("COMMIT")
    opened = next((e for e in events if e[2] == "account_opened"), None)
    currency = (row[0] if row else None) or (opened[3].get("currency") if opened else "") or ""
    return AccountRecord(
        account=account,
        currency=currency,
        opened_ts=opened[1] if opened else None,
        initial_balance=float(opened[3]["balance"]) if opened else None,
        equity_before=float(before[0]) if before else None,
        first_equity_ts=first[0] if first else None,
        equity_ts=np.array([r[0] for r in eq], dtype=np.int64),
        equity=np.array([r[1] for r in eq], dtype=float),
        events=events,
        instruments=instruments,
    )


def first_last_close(
    conn: sqlite3.Connection, symbol: str, start_ns: int, end_ns: int
) -> tuple[float, float] | None:
    """The first and last M1 close of `symbol` whose bar opens in [start_ns, end_ns]."""
    sql = (
        "SELECT close FROM bars WHERE symbol = ? AND timeframe = 'M1' AND ts_open >= ? "
        "AND ts_open <= ? ORDER BY ts_open {} LIMIT 1"
    )
    first = conn.execute(sql.format("ASC"), (symbol, start_ns, end_ns)).fetchone()
    last = conn.execute(sql.format("DESC"), (symbol, start_ns, end_ns)).fetchone()
    if first is None or last is None:
        return None
    return float(first[0]), float(last[0])
