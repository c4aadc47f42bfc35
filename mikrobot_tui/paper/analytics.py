"""Performance metrics: pure functions over numpy arrays, each definition written once.

The definitions follow CONVENTIONS.md ("Performance metrics") and are listed, one line each,
in the README's "Performance report":
- returns are simple returns of the equity curve sampled at a stated frequency (the last
  equity of each period, the first period measured from the starting equity), annualized by
  that frequency's periods per year (252 trading days, 365 calendar days for crypto; x 24 for
  hourly);
- standard deviations are sample ones (ddof = 1); Sharpe's risk-free rate is 0 unless given
  (an annual rate, divided evenly over the periods);
- Sortino's downside deviation is over all periods: sqrt(mean(min(r, 0)^2)), as empyrical and
  quantstats;
- CAGR is over calendar time (days / 365.25);
- a trade's result is its net P&L (gross P&L less entry and exit commission); a win is above
  zero, a loss below, a break-even (zero to the cent) is neither;
- SQN = sqrt(N) x mean(R) / std(R), sample std, N not capped.

A metric that is not a number (an infinite ratio, too few periods) is `Undefined(reason)`,
which the report writes as JSON null with the reason beside it, never as a number.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

NS_PER_SECOND = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_SECOND
TRADING_DAYS = 252
CALENDAR_DAYS = 365
DAYS_PER_YEAR = 365.25  # CAGR's calendar year
FREQUENCIES = ("D", "H")
CENT = 1e-8  # money is booked to the cent: a |net P&L| below this is a break-even


@dataclass(frozen=True, slots=True)
class Undefined:
    """A metric that is not a number, and why (JSON null plus this reason)."""

    reason: str


Value = float | int | Undefined


def periods_per_year(frequency: str, crypto: bool) -> int:
    """252 trading days a year (365 calendar days for crypto, which never closes); hourly
    periods are 24 a day."""
    if frequency not in FREQUENCIES:
        raise ValueError(f"frequency must be one of {', '.join(FREQUENCIES)}, not {frequency!r}")
    days = CALENDAR_DAYS if crypto else TRADING_DAYS
    return days if frequency == "D" else days * 24


def simple_returns(values: np.ndarray) -> np.ndarray:
    """r_i = v_i / v_{i-1} - 1 of a sampled equity curve whose first value is the start."""
    v = np.asarray(values, dtype=float)
    if v.size < 2:
        return np.zeros(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return v[1:] / v[:-1] - 1.0


def _flat(sd: float, scale: float) -> bool:
    return not sd > 1e-12 * max(1.0, abs(scale))


def _too_few(r: np.ndarray, need: int = 2) -> Undefined | None:
    if r.size < need:
        return Undefined(f"needs at least {need} periods of returns, has {r.size}")
    if not np.all(np.isfinite(r)):
        return Undefined("a period's return is not finite (equity at or below zero)")
    return None


# --- curve metrics -------------------------------------------------------------------------


def net_profit(start: float, end: float) -> Value:
    """End equity less starting equity, in the account currency."""
    return end - start


def total_return(start: float, end: float) -> Value:
    """end / start - 1, a fraction (0.05 is 5%)."""
    if not start > 0:
        return Undefined("the starting equity is not positive")
    return end / start - 1.0


def cagr(start: float, end: float, days: float) -> Value:
    """(end / start) ^ (365.25 / calendar days) - 1."""
    if not start > 0:
        return Undefined("the starting equity is not positive")
    if not days > 0:
        return Undefined("the period has no length")
    if not end > 0:
        return Undefined("equity ended at or below zero")
    try:
        value = (end / start) ** (DAYS_PER_YEAR / days) - 1.0
    except OverflowError:
        value = math.inf
    if not math.isfinite(value):
        return Undefined(f"{days:.3g} days are too short to annualize: the figure overflows")
    return value


def annualized_volatility(r: np.ndarray, ppy: int) -> Value:
    """Sample standard deviation of the period returns x sqrt(periods per year)."""
    r = np.asarray(r, dtype=float)
    return _too_few(r) or float(np.std(r, ddof=1) * math.sqrt(ppy))


def sharpe(r: np.ndarray, ppy: int, risk_free: float = 0.0) -> Value:
    """mean(r - rf / ppy) / std(r, ddof=1) x sqrt(ppy); rf an annual rate, 0 by default."""
    r = np.asarray(r, dtype=float)
    if (bad := _too_few(r)) is not None:
        return bad
    excess = r - risk_free / ppy
    sd = float(np.std(excess, ddof=1))
    if _flat(sd, float(np.mean(excess))):
        return Undefined("the returns do not vary (standard deviation 0): the ratio is undefined")
    return float(np.mean(excess) / sd * math.sqrt(ppy))


def downside_deviation(r: np.ndarray, risk_free: float = 0.0, ppy: int = 1) -> float:
    """sqrt(mean(min(r - rf / ppy, 0)^2)) over all periods (empyrical, quantstats)."""
    excess = np.asarray(r, dtype=float) - risk_free / ppy
    return float(np.sqrt(np.mean(np.minimum(excess, 0.0) ** 2))) if excess.size else 0.0


def sortino(r: np.ndarray, ppy: int, risk_free: float = 0.0) -> Value:
    """mean(r - rf / ppy) / downside deviation x sqrt(ppy)."""
    r = np.asarray(r, dtype=float)
    if (bad := _too_few(r)) is not None:
        return bad
    dd = downside_deviation(r, risk_free, ppy)
    if dd == 0.0:
        if float(np.mean(r - risk_free / ppy)) == 0.0:
            return Undefined("no period gained or lost: the ratio is undefined")
        return Undefined("no period lost (downside deviation 0): the ratio is infinite")
    return float(np.mean(r - risk_free / ppy) / dd * math.sqrt(ppy))


def calmar(cagr_value: Value, max_drawdown_fraction: float) -> Value:
    """CAGR / maximum drawdown (as a fraction)."""
    if isinstance(cagr_value, Undefined):
        return Undefined(f"CAGR is undefined: {cagr_value.reason}")
    if not max_drawdown_fraction > 0:
        return Undefined("no drawdown: the ratio is infinite")
    return cagr_value / max_drawdown_fraction


def drawdown(equity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Below the running peak at each point: (amount in money, fraction of the peak)."""
    e = np.asarray(equity, dtype=float)
    if e.size == 0:
        return np.zeros(0), np.zeros(0)
    peak = np.maximum.accumulate(e)
    amount = peak - e
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = np.where(peak > 0, amount / peak, 0.0)
    return amount, fraction


def max_drawdown_duration(ts: np.ndarray, equity: np.ndarray) -> float:
    """Longest time in seconds from a peak until equity is back at it (to the last point when
    it never is): 0 without a drawdown."""
    e = np.asarray(equity, dtype=float)
    t = np.asarray(ts, dtype=np.int64)
    if e.size < 2:
        return 0.0
    under = e < np.maximum.accumulate(e)
    edges = np.diff(np.concatenate(([0], under.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)  # [start, end)
    longest = 0
    for s, x in zip(starts, ends, strict=True):
        back = t[x] if x < t.size else t[-1]  # the first point at the peak again, or the end
        longest = max(longest, int(back - t[s - 1]))  # s >= 1: the first point is a peak
    return longest / NS_PER_SECOND


def exposure(opened: np.ndarray, closed: np.ndarray, start: int, end: int) -> Value:
    """Share of [start, end] with at least one position open: the union of [opened, closed)
    clipped to the period, over the period's calendar length."""
    if not end > start:
        return Undefined("the period has no length")
    lo = np.clip(np.asarray(opened, dtype=np.int64), start, end)
    hi = np.clip(np.asarray(closed, dtype=np.int64), start, end)
    order = np.argsort(lo, kind="stable")
    covered, reach = 0, start
    for a, b in zip(lo[order], hi[order], strict=True):
        a = max(int(a), reach)
        if b > a:
            covered += int(b) - a
            reach = int(b)
    return covered / (end - start)


# --- trade metrics -------------------------------------------------------------------------


def outcomes(net: np.ndarray) -> np.ndarray:
    """+1 a win, -1 a loss, 0 a break-even (|net| below a cent's rounding noise)."""
    n = np.asarray(net, dtype=float)
    return np.where(n > CENT, 1, np.where(n < -CENT, -1, 0))


def win_rate(net: np.ndarray) -> Value:
    """Winners / all closed trades; a break-even is not a win."""
    o = outcomes(net)
    return Undefined("no closed trade") if o.size == 0 else float(np.mean(o == 1))


def avg_win(net: np.ndarray) -> Value:
    """Mean net P&L of the winners."""
    n = np.asarray(net, dtype=float)
    w = n[outcomes(n) == 1]
    return Undefined("no winning trade") if w.size == 0 else float(np.mean(w))


def avg_loss(net: np.ndarray) -> Value:
    """Mean net P&L of the losers (a negative amount)."""
    n = np.asarray(net, dtype=float)
    lo = n[outcomes(n) == -1]
    return Undefined("no losing trade") if lo.size == 0 else float(np.mean(lo))


def payoff_ratio(net: np.ndarray) -> Value:
    """Average win / |average loss|."""
    w, lo = avg_win(net), avg_loss(net)
    if isinstance(w, Undefined):
        return Undefined(f"{w.reason}: no average win")
    if isinstance(lo, Undefined):
        return Undefined(f"{lo.reason}: the ratio is infinite")
    return w / -lo


def profit_factor(net: np.ndarray) -> Value:
    """Sum of the winners' net P&L / |sum of the losers'|."""
    n = np.asarray(net, dtype=float)
    o = outcomes(n)
    if o.size == 0:
        return Undefined("no closed trade")
    gross_win, gross_loss = float(n[o == 1].sum()), float(-n[o == -1].sum())
    if gross_loss == 0.0:
        if gross_win == 0.0:
            return Undefined("only break-even trades: the ratio is undefined")
        return Undefined("no losing trade: the ratio is infinite")
    return gross_win / gross_loss


def expectancy(net: np.ndarray) -> Value:
    """Mean net P&L per closed trade, in the account currency."""
    n = np.asarray(net, dtype=float)
    return Undefined("no closed trade") if n.size == 0 else float(np.mean(n))


def sqn(r_multiples: np.ndarray) -> Value:
    """sqrt(N) x mean(R) / std(R) over the trades with an R (a stop set), sample std, N not
    capped."""
    r = np.asarray(r_multiples, dtype=float)
    r = r[np.isfinite(r)]
    if r.size < 2:
        return Undefined(f"needs at least 2 trades with an R multiple (a stop), has {r.size}")
    sd = float(np.std(r, ddof=1))
    if _flat(sd, float(np.mean(r))):
        return Undefined("every trade has the same R (standard deviation 0)")
    return float(math.sqrt(r.size) * np.mean(r) / sd)


def max_consecutive(net: np.ndarray, outcome: int) -> int:
    """Longest run of wins (outcome 1) or losses (-1) in closing order; a break-even ends
    either run."""
    best = run = 0
    for o in outcomes(net):
        run = run + 1 if o == outcome else 0
        best = max(best, run)
    return best


def avg_holding_s(opened: np.ndarray, closed: np.ndarray) -> Value:
    """Mean time from opening to closing, in seconds."""
    o = np.asarray(opened, dtype=np.int64)
    if o.size == 0:
        return Undefined("no closed trade")
    return float(np.mean(np.asarray(closed, dtype=np.int64) - o)) / NS_PER_SECOND


TRADE_METRICS: dict[str, Callable[[np.ndarray], Value]] = {
    "win_rate": win_rate,
    "avg_win": avg_win,
    "avg_loss": avg_loss,
    "payoff_ratio": payoff_ratio,
    "profit_factor": profit_factor,
    "expectancy": expectancy,
}
