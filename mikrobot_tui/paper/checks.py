"""What the venue checks when an order arrives and again when it fills; the reason is the
`order_rejected` event's."""

from __future__ import annotations

from mikrobot_tui.domain.hours import market_open
from mikrobot_tui.domain.orders import Order, OrderType, Side, TradingState
from mikrobot_tui.paper import booking
from mikrobot_tui.paper.execution import BatchQuotes, marketable
from mikrobot_tui.paper.ledger import EPS, Ledger


def refusal(
    ledger: Ledger,
    order: Order,
    quotes: BatchQuotes | None,
    k: int,
    ts: int,
    bid: float,
    ask: float,
) -> str | None:
    """Why the venue does not take this order now, or None: trading halted or reducing, the
    engine's or the account's (orders that only reduce pass), market closed, below the minimum
    size or notional, reduce-only with nothing to reduce, post-only that would cross,
    insufficient margin."""
    inst = ledger.instrument(order.symbol)
    opening = not order.reduces
    if opening:
        stopped = state_refusal(ledger, order)
        if stopped is not None:
            return stopped
    if not market_open(inst.asset_class, ts):
        return "market closed"
    price = ask if order.side is Side.BUY else bid
    if opening and order.remaining < inst.min_lot - EPS:
        return f"below minimum size: {order.remaining} < {inst.min_lot} lots"
    notional = inst.value_per_price_unit(order.remaining) * price
    if opening and notional < inst.min_notional:
        return f"below minimum notional: {notional:.2f} < {inst.min_notional} {inst.quote}"
    if order.reduces and not reducible(ledger, order):
        return "reduce-only: no position to reduce"
    if order.post_only and order.type is OrderType.LIMIT and marketable(order, bid, ask):
        return "post-only would cross"
    if order.type is OrderType.MARKET:  # it fills now: the fill checks margin at its price
        return None
    return margin_refusal(ledger, order, order.remaining, price, quotes, k)


def state_refusal(ledger: Ledger, order: Order) -> str | None:
    """Why an order that opens exposure may not go in the engine's or its account's trading
    state: an entry decided before a halt or a limit's REDUCING arrives after it."""
    engine = ledger.state.trading_state
    if engine is TradingState.HALTED:
        return "trading halted"
    if engine is TradingState.REDUCING:
        return "trading reducing: only orders that reduce exposure"
    acct = ledger.state.accounts.get(order.account)
    if acct is not None and acct.trading_state is TradingState.HALTED:
        return f"account {acct.name} halted by its limits"
    if acct is not None and acct.trading_state is TradingState.REDUCING:
        return f"account {acct.name} reducing: only orders that reduce exposure"
    return None


def reducible(ledger: Ledger, order: Order) -> float:
    """Lots of open positions this order would reduce."""
    acct = ledger.state.accounts[order.account]
    return sum(p.lots for p in booking.against(ledger, acct, order))


def margin_refusal(
    ledger: Ledger, order: Order, lots: float, price: float, quotes: BatchQuotes | None, k: int
) -> str | None:
    """Refused when the exposure it adds needs more margin than is free."""
    acct = ledger.state.accounts[order.account]
    opening = booking.exposure_after(ledger, acct, order, lots)
    if opening <= EPS:
        return None
    need = ledger.order_margin(acct, order, opening, price, k, quotes)
    free = ledger.margin(acct, quotes, k).free_margin
    if need > free + 1e-6:
        return f"insufficient margin: needs {need:.2f} {acct.currency}, free {free:.2f}"
    return None
