"""Fills become positions and money: the order management systems.

A fill is booked by the account's order management system:
- hedging (as MetaTrader 5 hedging accounts): an opening order has a position of its own (the
  order's id), a closing order reduces the position it names;
- netting: one position per symbol; a fill on its side adds (the entry becomes the volume-
  weighted average), a fill against it reduces, closes, or closes and opens the rest the other
  way (a reversal).
Partial closes work in both. Commission (paper/costs.py) is charged on every fill and shared
by the positions it touches to the cent; P&L is converted into the account currency through
the current quotes, and through the rate stored on the position at entry only when no quote
links the currencies any more.
"""

from __future__ import annotations

from mikrobot_tui.domain.events import EventKind
from mikrobot_tui.domain.instruments import Instrument
from mikrobot_tui.domain.orders import Order, Position
from mikrobot_tui.paper import costs
from mikrobot_tui.paper.execution import BatchQuotes
from mikrobot_tui.paper.ledger import EPS, Ledger, money
from mikrobot_tui.paper.portfolio import AccountState
from mikrobot_tui.store.schema import COLUMNS


def book(
    ledger: Ledger,
    order: Order,
    lots: float,
    price: float,
    ts: int,
    quotes: BatchQuotes | None,
    k: int,
    liquidity: str,
    slippage: float,
) -> str | None:
    """Book one fill of `order`: the fill event, then the positions it opens, adds to,
    reduces or reverses. Returns the id of the position it opened or added to."""
    acct = ledger.state.accounts[order.account]
    inst = ledger.instrument(order.symbol)
    rate = ledger.rate(inst.quote, acct.currency, quotes, k)
    price = inst.round_price(price)
    lots = inst.round_lots(lots + EPS) if lots > 0 else lots
    commission = money(
        costs.commission(ledger.account_terms(acct.name), inst, lots, price, liquidity, rate or 1.0)
    )
    remaining = round(order.remaining - lots, 10)
    ledger.emit(
        ts,
        EventKind.ORDER_FILLED,
        acct.name,
        {
            "order_id": order.order_id,
            "price": price,
            "lots": lots,
            "commission": commission,
            "liquidity": liquidity,
            "slippage": inst.round_price(slippage),
            "remaining": max(remaining, 0.0),
        },
    )
    plan: list[tuple[Position | None, float]] = []  # (position reduced or None, lots)
    left = lots
    for pos in against(ledger, acct, order):
        if left <= EPS:
            break
        take = min(left, pos.lots)
        plan.append((pos, take))
        left = round(left - take, 10)
    if left > EPS and not order.reduces:
        plan.append((None, left))
    # the fill's commission is shared by lots; the last part takes the cents' remainder
    parts = [money(commission * part / lots) for _, part in plan[:-1]]
    if plan:
        parts.append(money(commission - sum(parts)))
    opened = None
    for (pos, part), fee in zip(plan, parts, strict=True):
        if pos is not None:
            _reduce(ledger, acct, pos, part, price, ts, quotes, k, fee, order)
        else:
            opened = _open_or_add(ledger, acct, order, inst, part, price, ts, quotes, k, fee, rate)
    return opened


def against(ledger: Ledger, acct: AccountState, order: Order) -> list[Position]:
    """The positions a fill reduces first, oldest first."""
    if order.position_id is not None:
        pos = acct.positions.get(order.position_id)
        return [pos] if pos is not None and pos.side is not order.side else []
    if not (order.reduces or ledger.netting(acct.name)):
        return []
    return sorted(
        (
            p
            for p in acct.positions.values()
            if p.symbol == order.symbol and p.side is not order.side
        ),
        key=lambda p: (p.ts_opened, p.position_id),
    )


def _open_or_add(
    ledger: Ledger,
    acct: AccountState,
    order: Order,
    inst: Instrument,
    lots: float,
    price: float,
    ts: int,
    quotes: BatchQuotes | None,
    k: int,
    commission: float,
    rate: float | None,
) -> str:
    commission = money(commission)
    if ledger.netting(acct.name):
        same = next((p for p in acct.positions.values() if p.symbol == order.symbol), None)
    else:
        same = acct.positions.get(order.order_id)  # an earlier partial fill of this order
    risk = 0.0
    if order.stop_loss is not None:
        r = rate if rate is not None else 1.0
        risk = abs(price - order.stop_loss) * inst.value_per_price_unit(lots) * r
    if same is not None:
        total = same.lots + lots
        entry = (same.entry_price * same.lots + price * lots) / total
        ledger.emit(
            ts,
            EventKind.POSITION_CHANGED,
            acct.name,
            {
                "position_id": same.position_id,
                "order_id": order.order_id,
                "lots": round(total, 10),
                "entry_price": round(entry, 10),
                "added_lots": lots,
                "closed_lots": 0.0,
                "commission": commission,
                "risk_amount": money(same.risk_amount + risk),
            },
        )
        return same.position_id
    equity = ledger.equity(acct, quotes, k)
    ledger.emit(
        ts,
        EventKind.POSITION_OPENED,
        acct.name,
        {
            "position_id": order.order_id,
            "order_id": order.order_id,
            "symbol": order.symbol,
            "side": str(order.side),
            "lots": lots,
            "entry_price": price,
            "stop_loss": order.stop_loss,
            "take_profit": order.take_profit,
            "commission": commission,
            "risk_amount": money(risk),
            "equity_at_open": money(equity),
            "strategy": order.strategy,
            "rate": rate if rate is not None else 1.0,
        },
    )
    return order.order_id


def _reduce(
    ledger: Ledger,
    acct: AccountState,
    pos: Position,
    lots: float,
    price: float,
    ts: int,
    quotes: BatchQuotes | None,
    k: int,
    commission: float,
    order: Order | None,
) -> None:
    """Close `lots` of a position at `price`: the whole of it, or part (a partial close)."""
    inst = ledger.instrument(pos.symbol)
    rate = ledger.rate(inst.quote, acct.currency, quotes, k)
    if rate is None:  # no quote links the currencies any more: the rate at entry
        rate = pos.rate_at_entry
    move = (price - pos.entry_price) * pos.side.sign
    pnl = money(move * inst.value_per_price_unit(lots) * rate)
    commission = money(commission)
    fraction = lots / pos.lots
    entry_commission = pos.entry_commission * fraction
    net = pnl - commission - entry_commission
    risk = pos.risk_amount * fraction
    reason = _exit_reason(order)
    common = {
        "position_id": pos.position_id,
        "exit_price": price,
        "reason": reason,
        "pnl": pnl,
        "commission": commission,
        "rate": rate,
        "return_pct": net / pos.equity_at_open * 100 if pos.equity_at_open else 0.0,
        "r_multiple": net / risk if risk > 0 else None,
    }
    if lots >= pos.lots - EPS:
        ledger.emit(ts, EventKind.POSITION_CLOSED, acct.name, common)
    else:
        ledger.emit(
            ts,
            EventKind.POSITION_CHANGED,
            acct.name,
            {
                **common,
                "order_id": order.order_id if order is not None else None,
                "lots": round(pos.lots - lots, 10),
                "entry_price": pos.entry_price,
                "added_lots": 0.0,
                "closed_lots": lots,
            },
        )
    trade = acct.trades[-1]  # ClosedTrade's fields are the table's columns
    row = tuple(getattr(trade, column) for column in COLUMNS["trades"])
    ledger.writer.upsert("trades", COLUMNS["trades"], [row])


def charge_swap(
    ledger: Ledger, acct: AccountState, pos: Position, amount: float, ts: int, m: int
) -> None:
    payload = {"position_id": pos.position_id, "amount": money(amount), "multiplier": m}
    ledger.emit(ts, EventKind.SWAP, acct.name, payload)


def exposure_after(ledger: Ledger, acct: AccountState, order: Order, lots: float) -> float:
    """Lots of the fill that would open or add exposure (the rest reduces a position)."""
    reducible = sum(p.lots for p in against(ledger, acct, order))
    return max(0.0, lots - reducible)


def _exit_reason(order: Order | None) -> str:
    if order is None:
        return "close"
    if order.parent_id is not None:  # a bracket's child
        return "stop_loss" if order.order_id.endswith("-SL") else "take_profit"
    return "stop_out" if order.strategy == "stop_out" else "close"
