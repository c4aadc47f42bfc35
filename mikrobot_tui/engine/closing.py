"""Closing a whole position at market: the one way an operator's flatten, the limits and a
reversing signal (close first, then enter) submit a close."""

from __future__ import annotations

from collections.abc import Callable

from mikrobot_tui.domain.events import EventKind
from mikrobot_tui.domain.orders import Order
from mikrobot_tui.paper.ledger import Ledger
from mikrobot_tui.paper.portfolio import Position, order_payload
from mikrobot_tui.trading.orchestrator import close_order


def submit_close(
    ledger: Ledger,
    pos: Position,
    *,
    ts: int,
    latency: Callable[[str], int],
    reason: str,
    event_ts: int | None = None,
) -> Order:
    """A market order closing `pos`, decided at `ts` (its latency drawn for its id), booked
    as an `order_submitted` event at `event_ts` (default `ts`)."""
    acct = ledger.state.accounts[pos.account]
    order_id = acct.next_order_id()
    order = close_order(
        order_id=order_id,
        account=acct.name,
        position_id=pos.position_id,
        symbol=pos.symbol,
        side=pos.side,
        lots=pos.lots,
        ts=ts,
        latency_ns=latency(order_id),
        reason=reason,
    )
    at = ts if event_ts is None else event_ts
    ledger.emit(at, EventKind.ORDER_SUBMITTED, acct.name, order_payload(order))
    return order
