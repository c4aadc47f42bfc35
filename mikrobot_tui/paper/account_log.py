"""What an account's event log says beyond the trades table, for its performance report.

Costs: commission from every `order_filled`; slippage from the fill's `slippage` (price units
against the price when the order was decided, positive is worse) x lots x contract size x the
quote-to-account rate booked with the position event that follows the fill (a fill without
one, a netting add, takes the last rate of its symbol; none at all leaves it unmeasured);
swaps from `swap` events. Closed trades are folded from the position events with the fold the
engine uses, so a partial close is a trade of its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from mikrobot_tui.domain.events import Event, EventKind
from mikrobot_tui.domain.instruments import default_instruments
from mikrobot_tui.paper.portfolio import fold
from mikrobot_tui.store.performance import AccountRecord


@dataclass(frozen=True)
class Activity:
    """What the event log says beyond the trades table: fills with their costs, swaps, the
    positions still open, and the symbols the account ever ordered."""

    fills: list[dict[str, Any]]  # ts, symbol, strategy, commission, slippage (money or nan)
    swaps: list[dict[str, Any]]  # ts, symbol, strategy, amount (to the account)
    open_positions: list[dict[str, Any]]  # symbol, strategy, ts_opened
    symbols: set[str]


def activity(record: AccountRecord, since_ns: int | None) -> Activity:
    """Fold the account's events into fills, swaps and open positions (see the module doc)."""
    catalogue = default_instruments()
    since = -(2**63) if since_ns is None else since_ns
    orders: dict[str, dict[str, Any]] = {}
    positions: dict[str, dict[str, Any]] = {}
    rates: dict[str, float] = {}
    fills: list[dict[str, Any]] = []
    swaps: list[dict[str, Any]] = []
    waiting: dict[str, Any] | None = None  # a fill whose rate comes with the next position event
    for _seq, ts, kind, p in record.events:
        if kind == "order_submitted":
            orders[p["order_id"]] = p
        elif kind == "order_filled":
            order = orders.get(p["order_id"], {})
            symbol = order.get("symbol", "")
            owner = positions.get(order.get("position_id") or order.get("parent_id") or "")
            inst = record.instruments.get(symbol) or catalogue.get(symbol)
            size = inst.contract_size if inst is not None else math.nan
            waiting = {
                "ts": ts,
                "symbol": symbol,
                "strategy": owner["strategy"] if owner else order.get("strategy", ""),
                "commission": float(p.get("commission", 0.0)),
                "slip_units": float(p.get("slippage", 0.0)) * float(p["lots"]) * size,
                "slippage": math.nan,
            }
            waiting["slippage"] = waiting["slip_units"] * rates.get(symbol, math.nan)
            if ts >= since:
                fills.append(waiting)
        elif kind in ("position_opened", "position_changed", "position_closed"):
            pid = p["position_id"]
            if kind == "position_opened":
                positions[pid] = {
                    "symbol": p["symbol"],
                    "strategy": p.get("strategy", ""),
                    "ts_opened": ts,
                }
            pos = positions.get(pid)
            if "rate" in p and pos is not None:
                rates[pos["symbol"]] = float(p["rate"])
            if waiting is not None and waiting["ts"] == ts:
                rate = rates.get(waiting["symbol"], math.nan)
                waiting["slippage"] = waiting["slip_units"] * rate
            waiting = None
            if kind == "position_closed" and pos is not None:
                pos["closed"] = True
        elif kind == "swap" and ts >= since:
            pos = positions.get(p.get("position_id", ""), {})
            swaps.append(
                {
                    "ts": ts,
                    "symbol": pos.get("symbol", ""),
                    "strategy": pos.get("strategy", ""),
                    "amount": float(p["amount"]),
                }
            )
    still_open = [p for p in positions.values() if not p.get("closed")]
    symbols = {o["symbol"] for o in orders.values() if o.get("symbol")}
    return Activity(fills, swaps, still_open, symbols)


_TRADE_EVENTS = ("account_opened", "position_opened", "position_changed", "position_closed")


def closed_trades(record: AccountRecord, since_ns: int | None) -> list[dict[str, Any]]:
    """The account's closed trades (whole and partial closes) from `since_ns` on, in closing
    order: the fold the engine itself uses over the position events. The `trades` table keeps
    one row per position, so a later partial close replaces an earlier one there."""
    events = (
        Event(seq, ts, EventKind(kind), record.account, p)
        for seq, ts, kind, p in record.events
        if kind in _TRADE_EVENTS
    )
    acct = fold(events).accounts.get(record.account)
    since = -(2**63) if since_ns is None else since_ns
    trades = [
        {
            "position_id": t.position_id,
            "strategy": t.strategy,
            "symbol": t.symbol,
            "ts_opened": t.ts_opened,
            "ts_closed": t.ts_closed,
            "pnl": t.pnl,
            "commission": t.commission,
            "r_multiple": t.r_multiple,
        }
        for t in (acct.trades if acct is not None else [])
        if t.ts_closed >= since
    ]
    return sorted(trades, key=lambda t: (t["ts_closed"], t["position_id"]))


def is_crypto(record: AccountRecord, symbols: set[str]) -> bool:
    """An account that trades only crypto counts calendar days (365); any other 252."""
    catalogue = default_instruments()
    classes = set()
    for s in symbols:
        inst = record.instruments.get(s)
        classes.add(inst.asset_class if inst else getattr(catalogue.get(s), "asset_class", ""))
    return bool(classes) and classes == {"crypto"}
