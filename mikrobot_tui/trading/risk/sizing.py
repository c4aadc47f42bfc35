"""Position sizing and pre-trade checks, as plain functions.

Sizing risks a fixed fraction of equity to the stop: lots round down to the lot step, so the
distance from entry to stop costs at most equity * risk_fraction in the account currency. What
the market adds on top (a stop filled through a gap, price moving during the order latency,
commission) is not in the size; the trade's R multiple shows it.

A pip's value per lot in the account currency comes from the broker's tick value when the feed
provides one (MT5's `trade_tick_value`: the account-currency value of one tick for one lot),
else from the contract size converted at the current rate the caller passes in
(`instruments.conversion_rate`), never from a constant; with neither there is no order.
Three methods (`risk.sizing`): "fixed" lots, "percent" (risk_per_trade of equity to the stop)
and "kelly" (a fraction of the Kelly bet from the strategy's own closed trades, never more than
percent would risk).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from mikrobot_tui.config import RiskSettings
from mikrobot_tui.domain.instruments import Instrument

__all__ = [
    "KellyEstimate",
    "RiskDecision",
    "Sizing",
    "check_order",
    "clamp_lots",
    "kelly_estimate",
    "pip_value_per_lot",
    "position_size",
    "risk_money",
    "size_position",
]


def risk_money(equity: float, risk_fraction: float) -> float:
    """Account-currency amount a stop-out may lose."""
    return equity * risk_fraction


def _positive(name: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")


def pip_value_per_lot(
    instrument: Instrument,
    quote_to_account: float | None = None,
    *,
    tick_value: float | None = None,
) -> float:
    """Account-currency value of one pip for 1.0 lot.

    With the broker's `tick_value` (account currency per `instrument.tick_size` move per lot):
    tick_value * pip_size / tick_size; otherwise pip_size * contract_size * quote_to_account.
    EURUSD in USD: 0.0001 x 100,000 x 1 = 10; USDJPY at 150.00: 0.01 x 100,000 / 150 = 6.667.
    Raises ValueError when the value used is not a finite positive number.
    """
    if tick_value is not None:
        _positive("tick_value", tick_value)
        return tick_value * instrument.pip_size / instrument.tick_size
    if quote_to_account is None:
        raise ValueError("quote_to_account must be finite and > 0, got None (and no tick_value)")
    _positive("quote_to_account", quote_to_account)
    return instrument.pip_value(1.0, quote_to_account)


def clamp_lots(lots: float, instrument: Instrument) -> float:
    """Lots rounded down to the lot step; 0.0 below the minimum lot, the maximum lot above it."""
    if not (math.isfinite(lots) and lots > 0):
        return 0.0
    lots = instrument.round_lots(min(lots, instrument.max_lot))
    return lots if lots >= instrument.min_lot else 0.0


def position_size(
    equity: float,
    risk_fraction: float,
    stop_distance: float,
    instrument: Instrument,
    quote_to_account: float | None = None,
    *,
    tick_value: float | None = None,
) -> float:
    """Lots such that hitting the stop loses about equity * risk_fraction (account currency).

    lots = risk_money / (stop_distance / pip_size * pip_value_per_lot), rounded down to the lot
    step, 0.0 below the instrument's minimum lot, at most its maximum lot. 0.55% of 10,000 USD
    over 10 pips of EURUSD: 55 / (10 x 10) = 0.55 lots; of USDJPY at 150.00: 55 / (10 x 6.667)
    = 0.825, so 0.82 lots. Commission and slippage are not included. Raises ValueError for a
    stop distance, rate or tick value that is not a finite positive number.
    """
    _positive("stop_distance", stop_distance)
    pip_value = pip_value_per_lot(instrument, quote_to_account, tick_value=tick_value)
    money = risk_money(equity, risk_fraction)
    if not (math.isfinite(money) and money > 0):
        return 0.0
    return clamp_lots(money / (instrument.pips(stop_distance) * pip_value), instrument)


@dataclass(frozen=True, slots=True)
class KellyEstimate:
    trades: int
    win_rate: float  # p: winners / all closed trades; a break-even trade is not a win
    payoff: float  # b: mean win / mean loss (inf with no losing trade, 0 with no winner)
    kelly: float  # f = p - (1 - p) / b: the fraction of equity to risk, full Kelly


def kelly_estimate(results: Sequence[float]) -> KellyEstimate | None:
    """p, b and f = p - (1 - p) / b from closed trades' results (R multiples or net P&L).

    With no losing trade b is infinite and f = p; with no winner f = -inf (no edge). None for
    no trades.
    """
    values = [float(r) for r in results if math.isfinite(r)]
    if not values:
        return None
    wins = [r for r in values if r > 0]
    losses = [-r for r in values if r < 0]
    p = len(wins) / len(values)
    if not wins:
        return KellyEstimate(len(values), p, 0.0, -math.inf)
    if not losses:
        return KellyEstimate(len(values), p, math.inf, p)
    b = (sum(wins) / len(wins)) / (sum(losses) / len(losses))
    return KellyEstimate(len(values), p, b, p - (1 - p) / b)


@dataclass(frozen=True, slots=True)
class Sizing:
    lots: float  # 0.0: no trade (the reason says why)
    method: str  # the method that sized it: "fixed", "percent" or "kelly"
    risk_fraction: float  # the fraction of equity the stop risks at these lots
    risk_amount: float  # account currency lost at the stop (before costs)
    reason: str


def size_position(
    settings: RiskSettings,
    *,
    equity: float,
    stop_distance: float,
    instrument: Instrument,
    quote_to_account: float | None = None,
    tick_value: float | None = None,
    trade_results: Sequence[float] = (),
) -> Sizing:
    """Lots by `settings.sizing`, with what they risk and why.

    "fixed": `fixed_lots`, rounded down to the lot step and clamped to the instrument's lots.
    "percent": `position_size` at `risk_per_trade`. "kelly": with at least `kelly_min_trades`
    results, `kelly_fraction` x f of equity to the stop, capped at `risk_per_trade`, no trade
    when f <= 0; with fewer, percent. Raises ValueError as `position_size` does.
    """
    _positive("stop_distance", stop_distance)
    pip_value = pip_value_per_lot(instrument, quote_to_account, tick_value=tick_value)
    loss_per_lot = instrument.pips(stop_distance) * pip_value
    pips = instrument.pips(stop_distance)

    def sized(lots: float, method: str, why: str) -> Sizing:
        amount = lots * loss_per_lot
        frac = amount / equity if equity > 0 else math.inf
        if lots <= 0:
            return Sizing(0.0, method, 0.0, 0.0, why)
        return Sizing(lots, method, frac, amount, f"{why}: {lots:g} lots {instrument.symbol}")

    if settings.sizing == "fixed":
        lots = clamp_lots(settings.fixed_lots, instrument)
        if lots <= 0:
            return sized(
                0.0,
                "fixed",
                f"fixed {settings.fixed_lots:g} lots is below the "
                f"minimum lot {instrument.min_lot:g} of {instrument.symbol}",
            )
        return sized(lots, "fixed", f"fixed {settings.fixed_lots:g} lots over {pips:.1f} pips")
    fraction, method, why = settings.risk_per_trade, "percent", ""
    if settings.sizing == "kelly":
        est = kelly_estimate(trade_results)
        trades = est.trades if est else 0
        if est is None or trades < settings.kelly_min_trades:
            why = f"kelly after {settings.kelly_min_trades} trades ({trades} so far), meanwhile "
        else:
            scaled = settings.kelly_fraction * est.kelly
            figures = f"p {est.win_rate:.2f}, b {est.payoff:.2f}, f {est.kelly:.3f} over {trades}"
            if scaled <= 0:
                return sized(0.0, "kelly", f"kelly: no edge ({figures} trades)")
            fraction, method = min(scaled, settings.risk_per_trade), "kelly"
            why = f"kelly {settings.kelly_fraction:g} x f ({figures}), "
    money = risk_money(equity, fraction)
    lots = clamp_lots(money / loss_per_lot, instrument) if money > 0 else 0.0
    what = f"{why}risk {fraction:.4%} = {money:.2f} over {pips:.1f} pips"
    if lots <= 0:
        return sized(0.0, method, f"{what}: below the minimum lot {instrument.min_lot:g}")
    return sized(lots, method, what)


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
    asked_lots: float | None = None,
) -> RiskDecision:
    """Pre-trade checks in a fixed order; the first that fails gives the reason.

    Halted, at max positions, equity not positive, no conversion rate yet, bad stop distance,
    size rounding to 0. Otherwise approved with the lots from `position_size`, capped at
    `max_lots` (what the free margin carries), refused when that is below the minimum lot.
    With `asked_lots` (a signal that carries its size) the stop is not checked: the size is
    those lots rounded down to the lot step, refused below the minimum or above the maximum
    lot, and capped by `max_lots` alike.
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
    if asked_lots is not None:
        sized = _asked(asked_lots, instrument)
        if not sized.approved:
            return sized
        lots, reason = sized.lots, sized.reason
    else:
        if not (math.isfinite(stop_distance) and stop_distance > 0):
            return _refuse(
                f"stop distance {stop_distance!r} is not a finite positive price distance"
            )
        money = risk_money(equity, risk_fraction)
        lots = position_size(equity, risk_fraction, stop_distance, instrument, quote_to_account)
        pips = instrument.pips(stop_distance)
        if lots <= 0:
            return _refuse(
                f"size rounds to 0: risking {money:.2f} over {pips:.1f} pips on "
                f"{instrument.symbol} is below the minimum lot {instrument.min_lot:g}"
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


def _asked(lots: float, instrument: Instrument) -> RiskDecision:
    """The lots a signal asked for, rounded down to the lot step, or why they cannot go."""
    if not (math.isfinite(lots) and lots > 0):
        return _refuse(f"the signal's size {lots!r} lots is not a finite positive size")
    if lots > instrument.max_lot:
        return _refuse(
            f"the signal asks {lots:g} lots {instrument.symbol}, above the maximum lot "
            f"{instrument.max_lot:g}"
        )
    rounded = instrument.round_lots(lots)
    if rounded < instrument.min_lot:
        return _refuse(
            f"size rounds to 0: the signal's {lots:g} lots {instrument.symbol} is below the "
            f"minimum lot {instrument.min_lot:g}"
        )
    return RiskDecision(True, rounded, f"the signal's size: {rounded:g} lots {instrument.symbol}")
