"""A test-only hook: each entry the orchestrator submits brings resting entry orders along.

Strategies today only send market entries (with their bracket's reduce-only stop and limit),
and the Signal has no entry type yet. To exercise resting entries (limits, stops, stop-limits,
trailing stops, good-till-date and post-only orders) in the recovery tests, this wraps
`Decisions._decide`: after the orchestrator's `order_submitted` for a market entry, it submits a
pullback order (a limit below a buy, above a sell) and a breakout order (a stop on the other
side) through the ledger, priced from the entry's decision price and stop distance. They are
decided from the event log and the ticks only, so an unbroken run and a killed one submit the
same orders, and the hook keeps no memory a checkpoint would have to carry.

Run as a script it is the `mikrobot` command with the hook installed (for the subprocess
tests: `python tests/resting_entries.py --db ... run --headless`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from mikrobot_tui.domain.events import EventKind
from mikrobot_tui.domain.instruments import Instrument
from mikrobot_tui.domain.market import NS_PER_SECOND
from mikrobot_tui.domain.orders import Order, OrderType, TimeInForce
from mikrobot_tui.engine.decisions import Decisions
from mikrobot_tui.paper.ledger import Ledger
from mikrobot_tui.paper.portfolio import order_payload

MINUTE = 60 * NS_PER_SECOND
REASON = "resting entry (test hook)"


def resting_orders(entry: Order, inst: Instrument, now: int) -> list[Order]:
    """A pullback and a breakout order for a market entry, a quarter of its size (margin
    for all three); which kinds by the entry's number. Ids and latencies come later."""
    assert entry.decision_price is not None and entry.stop_loss is not None
    p, s = entry.decision_price, entry.side.sign
    d = abs(p - entry.stop_loss)
    target = abs(entry.take_profit - p) if entry.take_profit is not None else 2 * d
    half = inst.round_price(d / 2)
    v = int(entry.order_id.rsplit("-", 1)[1]) % 3
    rp = inst.round_price

    lots = max(inst.min_lot, inst.round_lots(entry.lots / 4))

    def order(**fields: Any) -> Order:
        base = Order(
            order_id="",
            account=entry.account,
            symbol=entry.symbol,
            side=entry.side,
            lots=lots,
            intent=entry.intent,
            ts_submitted=now,
            due_ts=now,
            strategy=entry.strategy,
        )
        return replace(base, **fields)

    limit = rp(p - s * half)
    pullback = order(
        type=OrderType.LIMIT,
        price=limit,
        decision_price=limit,
        stop_loss=rp(limit - s * d) if v != 1 else None,
        take_profit=rp(limit + s * target) if v != 1 else None,
        tif=TimeInForce.GTC if v == 0 else TimeInForce.GTD,
        expire_ts=None if v == 0 else now + (5 + 5 * v) * MINUTE,
        post_only=v == 1,
    )
    trigger = rp(p + s * half)
    if v == 0:  # a plain stop entry with its bracket, good till cancelled
        breakout = order(
            type=OrderType.STOP,
            trigger=trigger,
            decision_price=trigger,
            stop_loss=rp(trigger - s * d),
            take_profit=rp(trigger + s * target),
        )
    elif v == 1:  # a stop-limit: once triggered, a limit resting behind it, till a date
        breakout = order(
            type=OrderType.STOP_LIMIT,
            trigger=trigger,
            price=rp(trigger - s * half / 2),  # then waits for a retest
            decision_price=trigger,
            tif=TimeInForce.GTD,
            expire_ts=now + 12 * MINUTE,
        )
    else:  # a trailing stop entry (its bracket's stop trails too), till a date
        breakout = order(
            type=OrderType.STOP,
            trail_distance=half,
            stop_loss=rp(p - s * d),
            take_profit=rp(p + s * target),
            tif=TimeInForce.GTD,
            expire_ts=now + 20 * MINUTE,
        )
    if v == 2:  # and a post-only limit through the market: the venue rejects it
        crossing = rp(p + s * half)
        return [pullback, breakout, order(type=OrderType.LIMIT, price=crossing, post_only=True)]
    return [pullback, breakout]


def submit_resting(ledger: Ledger, entry: Order, now: int, latency: Callable[[str], int]) -> None:
    acct = ledger.state.accounts[entry.account]
    inst = ledger.instrument(entry.symbol)
    for order in resting_orders(entry, inst, now):
        order_id = acct.next_order_id()  # each submission counts: the next id is new
        order = replace(order, order_id=order_id, due_ts=now + latency(order_id))
        payload = order_payload(order)
        payload["reason"] = REASON
        ledger.emit(now, EventKind.ORDER_SUBMITTED, entry.account, payload)


def install(setattr_: Callable[[object, str, object], None] = setattr) -> None:
    """Wrap `Decisions._decide` (pass `monkeypatch.setattr` to undo it after a test)."""
    original = Decisions._decide

    def _decide(self: Decisions, name: str, *args: Any, **kwargs: Any) -> bool:
        ledger: Ledger = self._ledger
        acct = ledger.state.accounts[name]
        entry_id = acct.next_order_id()
        ordered = original(self, name, *args, **kwargs)
        entry = acct.working.get(entry_id)
        if ordered and entry is not None and entry.type is OrderType.MARKET:
            submit_resting(ledger, entry, entry.ts_submitted, self._latency)
        return ordered

    setattr_(Decisions, "_decide", _decide)


if __name__ == "__main__":
    install()
    from mikrobot_tui.cli import main

    main()
