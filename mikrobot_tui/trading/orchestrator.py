"""From a strategy's signal to an order: breakers first, then risk, then sizing.

The signal has been scored before it comes here (trading/scoring.py): `risk_scale` is its
score's risk multiplier, 1 for an approved signal and less for a resized one, and it scales
the risk of percent sizing and the lots of fixed and Kelly sizing alike.

A signal that carries its size (`Signal.units`) is not sized by the account's method: its
units become lots (units / contract size, rounded down to the lot step), scaled by
`risk_scale` too, capped by what the free margin carries; its stop is optional. Without a
stop the order has none, risks nothing measurable (`risk_amount` 0: the account limits count
such a position at `risk_per_trade` of its equity, engine/limits.py) and its trade has no R
multiple.

The orchestrator owns no state of its own; the engine hands it what it needs to know about the
account and the market at the decision tick, and records the outcome (an order or a refusal
with its reason) as an event.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from mikrobot_tui.config import RiskSettings
from mikrobot_tui.domain.instruments import Instrument
from mikrobot_tui.domain.orders import (
    EntryType,
    Order,
    OrderIntent,
    OrderType,
    Side,
    Signal,
    TimeInForce,
)
from mikrobot_tui.trading.risk import check_order, size_position


@dataclass(frozen=True, slots=True)
class Decision:
    order: Order | None
    refusal: str | None = None
    risk_amount: float = 0.0  # account currency lost if the stop is hit (before costs)


def decide(
    signal: Signal,
    *,
    account: str,
    order_id: str,
    instrument: Instrument,
    quote_to_account: float | None,
    equity: float,
    open_positions: int,
    risk: RiskSettings,
    halted: bool,
    blocked_by: str | None,
    decision_ts: int,
    latency_ns: int,
    max_lots: float | None = None,
    trade_results: Sequence[float] = (),
    risk_scale: float = 1.0,
) -> Decision:
    """Turn a signal into an order (market, or limit at the signal's price), or say why not.

    `blocked_by` names an OPEN circuit breaker that covers this signal (its feed or strategy).
    Stops and targets are absolute prices around the decision price, rounded to the tick size.
    `open_positions` should not count the positions a reversing signal closes first.
    """
    if blocked_by is not None:
        return Decision(None, f"circuit breaker {blocked_by} is open")
    asked = None
    if signal.units is not None:
        asked = signal.units / instrument.contract_size * risk_scale
    verdict = check_order(
        trading_halted=halted,
        open_positions=open_positions,
        max_positions=risk.max_positions,
        equity=equity,
        risk_fraction=risk.risk_per_trade * risk_scale,
        stop_distance=signal.stop_distance,
        instrument=instrument,
        quote_to_account=quote_to_account,
        max_lots=max_lots,
        asked_lots=asked,
    )
    if not verdict.approved:
        return Decision(None, verdict.reason)
    lots = verdict.lots
    # fixed lots, or Kelly from the strategy's own R multiples (a signal's own size stands)
    if asked is None and risk.sizing != "percent":
        assert quote_to_account is not None  # check_order refuses without a rate
        sizing = size_position(
            risk,
            equity=equity,
            stop_distance=signal.stop_distance,
            instrument=instrument,
            quote_to_account=quote_to_account,
            trade_results=trade_results,
        )
        lots = sizing.lots * risk_scale
        lots = lots if max_lots is None else min(lots, max_lots)
        lots = instrument.round_lots(lots) if lots > 0 else 0.0
        if lots < instrument.min_lot:
            return Decision(None, sizing.reason or f"{risk.sizing} sizing gives no size")
    sign = signal.side.sign
    limit = signal.entry is EntryType.LIMIT
    entry = instrument.round_price(signal.limit_price) if limit and signal.limit_price else None
    if limit and entry is None:
        return Decision(None, "a limit entry without a limit price")
    base = entry if entry is not None else signal.price
    stop = None
    if signal.has_stop:
        stop = instrument.round_price(base - sign * signal.stop_distance)
    target = None
    if math.isfinite(signal.take_profit_distance) and signal.take_profit_distance > 0:
        target = instrument.round_price(base + sign * signal.take_profit_distance)
    order = Order(
        order_id=order_id,
        account=account,
        symbol=signal.symbol,
        side=signal.side,
        lots=lots,
        intent=OrderIntent.OPEN,
        ts_submitted=decision_ts,
        due_ts=decision_ts + latency_ns,
        stop_loss=stop,
        take_profit=target,
        strategy=signal.strategy,
        decision_price=base,
        type=OrderType.LIMIT if limit else OrderType.MARKET,
        price=entry,
        tif=TimeInForce.GTD if limit and signal.expire_ts else TimeInForce.GTC,
        expire_ts=signal.expire_ts if limit else None,
    )
    assert quote_to_account is not None  # check_order refuses without a rate
    risk_amount = 0.0
    if stop is not None:
        per_price_unit = instrument.value_per_price_unit(lots) * quote_to_account
        risk_amount = signal.stop_distance * per_price_unit
    return Decision(order, None, risk_amount)


def close_order(
    *,
    order_id: str,
    account: str,
    position_id: str,
    symbol: str,
    side: Side,
    lots: float,
    ts: int,
    latency_ns: int,
    reason: str,
) -> Order:
    """A market order that closes a whole position (flatten, or an exit decided by a rule)."""
    return Order(
        order_id=order_id,
        account=account,
        symbol=symbol,
        side=side.opposite,
        lots=lots,
        intent=OrderIntent.CLOSE,
        ts_submitted=ts,
        due_ts=ts + latency_ns,
        position_id=position_id,
        strategy=reason,
    )
