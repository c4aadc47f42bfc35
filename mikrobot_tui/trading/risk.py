"""Position sizing and pre-trade checks, as plain functions.

Sizing risks a fixed fraction of equity to the stop: lots round down to the lot step, so the
distance from entry to stop costs at most equity * risk_fraction in the account currency. What
the market adds on top (a stop filled through a gap, price moving during the order latency,
commission) is not in the size; the trade's R multiple shows it.
The quote currency is converted with the current rate the caller passes in
(`instruments.conversion_rate`), never with a constant; without a rate there is no order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mikrobot_tui.domain.instruments import Instrument

__all__ = ["RiskDecision", "check_order", "position_size", "risk_money"]


def risk_money(equity: float, risk_fraction: float) -> float:
    """Account-currency amount a stop-out may lose."""
    return equity * risk_fraction


def position_size(
    equity: float,
    risk_fraction: float,
    stop_distance: float,
    instrument: Instrument,
    quote_to_account: float,
) -> float:
    """Lots such that hitting the stop loses about equity * risk_fraction (account currency).

    lots = risk_money / (stop_distance / pip_size * pip_value_per_lot), with
    pip_value_per_lot = instrument.pip_value(1.0, quote_to_account); rounded down to the lot
    step, 0.0 below the instrument's minimum lot. Commission and slippage are not included.
    Raises ValueError for a stop distance or rate that is not a finite positive number.
    """
    if not (math.isfinite(stop_distance) and stop_distance > 0):
        raise ValueError(f"stop_distance must be finite and > 0, got {stop_distance!r}")
    if not (math.isfinite(quote_to_account) and quote_to_account > 0):
        raise ValueError(f"quote_to_account must be finite and > 0, got {quote_to_account!r}")
    money = risk_money(equity, risk_fraction)
    if not (math.isfinite(money) and money > 0):
        return 0.0
    pip_value_per_lot = instrument.pip_value(1.0, quote_to_account)
    loss_per_lot = instrument.pips(stop_distance) * pip_value_per_lot
    lots = instrument.round_lots(money / loss_per_lot)
    return lots if lots >= instrument.min_lot else 0.0


@dataclass(frozen=True, slots=True)
class RiskDecision:
    approved: bool
    lots: float  # 0.0 when refused
    reason: str  # why refused, or what was sized when approved


def _refuse(reason: str) -> RiskDecision:
    return RiskDecision(approved=False, lots=0.0, reason=reason)


def check_order(
    *,
    trading_halted: bool,
    open_positions: int,
    max_positions: int,
    equity: float,
    risk_fraction: float,
    stop_distance: float,
    instrument: Instrument,
    quote_to_account: float | None,
    max_lots: float | None = None,
) -> RiskDecision:
    """Pre-trade checks in a fixed order; the first that fails gives the reason.

    Halted, at max positions, equity not positive, no conversion rate yet, bad stop distance,
    size rounding to 0. Otherwise approved with the lots from `position_size`, capped at
    `max_lots` (what the free margin carries), refused when that is below the minimum lot.
    """
    if trading_halted:
        return _refuse("trading halted: no new orders until resumed")
    if open_positions >= max_positions:
        return _refuse(f"at max positions ({open_positions}/{max_positions})")
    if not (math.isfinite(equity) and equity > 0):
        return _refuse(f"equity {equity!r} is not positive")
    if quote_to_account is None or not (math.isfinite(quote_to_account) and quote_to_account > 0):
        return _refuse(
            f"no conversion rate yet from {instrument.quote} to the account currency "
            f"(waiting for a price of a linking pair)"
        )
    if not (math.isfinite(stop_distance) and stop_distance > 0):
        return _refuse(f"stop distance {stop_distance!r} is not a finite positive price distance")
    money = risk_money(equity, risk_fraction)
    lots = position_size(equity, risk_fraction, stop_distance, instrument, quote_to_account)
    pips = instrument.pips(stop_distance)
    if lots <= 0:
        return _refuse(
            f"size rounds to 0: risking {money:.2f} over {pips:.1f} pips on {instrument.symbol} "
            f"is below the minimum lot {instrument.min_lot:g}"
        )
    reason = f"risk {money:.2f} over {pips:.1f} pips: {lots:g} lots {instrument.symbol}"
    if max_lots is not None and lots > max_lots:
        capped = instrument.round_lots(max_lots) if max_lots > 0 else 0.0
        if capped < instrument.min_lot:
            return _refuse(
                f"insufficient margin: the free margin carries {max(max_lots, 0):.4g} lots "
                f"{instrument.symbol}, below the minimum lot {instrument.min_lot:g}"
            )
        reason += f", capped at {capped:g} by free margin"
        lots = capped
    return RiskDecision(approved=True, lots=lots, reason=reason)
