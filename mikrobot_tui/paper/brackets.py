"""Brackets and one-cancels-other: the orders a fill places, resizes or cancels.

When a bracket's entry fills, the venue places its stop-loss (a reduce-only STOP, trailing
when the entry asks for it) and its take-profit (a reduce-only LIMIT) for the lots filled,
each the other's one-cancels-other sibling; a further fill of the entry grows both. When one
of them fills, the other is cancelled (or shrunk by a partial fill). Closing orders whose
position is gone are cancelled.
"""

from __future__ import annotations

from collections.abc import Callable

from mikrobot_tui.domain.events import EventKind
from mikrobot_tui.domain.orders import Order, OrderIntent, OrderType
from mikrobot_tui.paper.ledger import EPS, Ledger
from mikrobot_tui.paper.portfolio import order_payload

Cancel = Callable[[Order, int, str], None]


def protect(ledger: Ledger, entry: Order, position_id: str, lots: float, ts: int) -> None:
    """Place or grow the entry's stop-loss and take-profit for the lots just filled."""
    acct = ledger.state.accounts[entry.account]
    sl_id, tp_id = f"{entry.order_id}-SL", f"{entry.order_id}-TP"
    children = []
    if entry.stop_loss is not None:
        children.append((sl_id, OrderType.STOP, tp_id if entry.take_profit is not None else None))
    if entry.take_profit is not None:
        children.append((tp_id, OrderType.LIMIT, sl_id if entry.stop_loss is not None else None))
    for child_id, kind, oco in children:
        working = acct.working.get(child_id)
        if working is not None:
            payload = {
                "order_id": child_id,
                "changes": {"lots": round(working.lots + lots, 10)},
                "reason": "bracket entry filled further",
            }
            ledger.emit(ts, EventKind.ORDER_MODIFIED, acct.name, payload)
            continue
        stop = kind is OrderType.STOP
        child = Order(
            order_id=child_id,
            account=acct.name,
            symbol=entry.symbol,
            side=entry.side.opposite,
            lots=lots,
            intent=OrderIntent.CLOSE,
            ts_submitted=ts,
            due_ts=ts,
            position_id=position_id,
            strategy=entry.strategy,
            type=kind,
            price=None if stop else entry.take_profit,
            trigger=entry.stop_loss if stop else None,
            reduce_only=True,
            trail_distance=entry.trail_distance if stop else None,
            parent_id=entry.order_id,
            oco_id=oco,
            accepted=True,
            decision_price=entry.stop_loss if stop else entry.take_profit,
        )
        ledger.emit(ts, EventKind.ORDER_SUBMITTED, acct.name, order_payload(child))


def settle(ledger: Ledger, order: Order, lots: float, ts: int, cancel: Cancel) -> None:
    """After a fill of `order`: one cancels (or shrinks) the other; orders left with no
    position to close go."""
    acct = ledger.state.accounts[order.account]
    if order.oco_id is not None:
        sibling = acct.working.get(order.oco_id)
        if sibling is not None:
            if order.order_id not in acct.working or sibling.remaining - lots <= EPS:
                cancel(sibling, ts, f"one cancels other: {order.order_id} filled")
            else:
                payload = {
                    "order_id": sibling.order_id,
                    "changes": {"lots": round(sibling.lots - lots, 10)},
                    "reason": f"one cancels other: {order.order_id} partly filled",
                }
                ledger.emit(ts, EventKind.ORDER_MODIFIED, acct.name, payload)
    sweep(ledger, order.account, ts, cancel)


def sweep(ledger: Ledger, account: str, ts: int, cancel: Cancel) -> None:
    """Cancel the account's closing orders whose position is gone."""
    acct = ledger.state.accounts[account]
    for o in list(acct.working.values()):
        if o.position_id is not None and o.position_id not in acct.positions:
            cancel(o, ts, "position closed")


def protect_unprotected(ledger: Ledger, ts: int) -> int:
    """Positions from before stops and targets were orders get them now; returns how many."""
    n = 0
    for acct in ledger.state.accounts.values():
        for position_id in sorted(acct.unprotected):
            pos = acct.positions.get(position_id)
            if pos is None:
                continue
            entry = Order(
                order_id=pos.position_id,
                account=acct.name,
                symbol=pos.symbol,
                side=pos.side,
                lots=pos.lots,
                intent=OrderIntent.OPEN,
                ts_submitted=pos.ts_opened,
                due_ts=pos.ts_opened,
                stop_loss=pos.stop_loss,
                take_profit=pos.take_profit,
                strategy=pos.strategy,
            )
            protect(ledger, entry, pos.position_id, pos.lots, ts)
            n += 1
    return n
