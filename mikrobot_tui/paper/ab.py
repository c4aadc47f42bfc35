"""A/B statistics between two variants' per-trade returns.

The test is Welch's unequal-variance t-test (`scipy.stats.ttest_ind(..., equal_var=False)`),
never Student's pooled-variance test that is scipy's default: two strategy variants rarely have
the same spread of returns, and the pooled test then gives wrong p-values. Two-sided.

Per-trade returns are whatever the caller measures per closed trade (R multiples or P&L as a
fraction of equity at entry); both variants must use the same measure. Win rate counts a
trade as a win only when its return is > 0: a break-even trade is not a win. Standard
deviations are sample (ddof = 1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = ["ABResult", "VariantStats", "compare", "variant_stats"]

WELCH = "welch_t"


@dataclass(frozen=True, slots=True)
class VariantStats:
    trades: int
    wins: int  # trades with a return > 0 (break-even is not a win)
    win_rate: float | None  # None with no trades
    mean_return: float | None  # None with no trades
    std_return: float | None  # sample std (ddof = 1); None with fewer than 2 trades


@dataclass(frozen=True, slots=True)
class ABResult:
    a: VariantStats
    b: VariantStats
    t_stat: float | None  # (mean a - mean b) / standard error; positive when A did better
    p_value: float | None  # two-sided
    test: str  # "welch_t"
    reason: str | None  # why there is no p-value; None when there is one
    df: float | None = None  # Welch-Satterthwaite degrees of freedom


def _returns(values: Sequence[float], what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if not np.isfinite(arr).all():
        bad = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise ValueError(f"{what}[{bad}] is {arr[bad]!r}: returns must be finite")
    return arr


def _stats(arr: np.ndarray) -> VariantStats:
    n = int(arr.size)
    identical = n >= 2 and arr.min() == arr.max()  # exactly 0, not float noise from the mean
    wins = int(np.count_nonzero(arr > 0))
    return VariantStats(
        trades=n,
        wins=wins,
        win_rate=wins / n if n else None,
        mean_return=float(arr.mean()) if n else None,
        std_return=(0.0 if identical else float(arr.std(ddof=1))) if n >= 2 else None,
    )


def variant_stats(returns: Sequence[float]) -> VariantStats:
    """Trades, wins, win rate, mean and sample std of one variant's per-trade returns."""
    return _stats(_returns(returns, "returns"))


def compare(returns_a: Sequence[float], returns_b: Sequence[float]) -> ABResult:
    """Welch's t-test of mean per-trade return, A against B.

    No p-value (t_stat and p_value None, `reason` says why) with fewer than 2 trades in a
    variant or zero variance in both (every trade of each variant returned the same).
    """
    a, b = _returns(returns_a, "returns_a"), _returns(returns_b, "returns_b")
    sa, sb = _stats(a), _stats(b)

    def without(reason: str) -> ABResult:
        return ABResult(a=sa, b=sb, t_stat=None, p_value=None, test=WELCH, reason=reason)

    if a.size < 2 or b.size < 2:
        return without(f"need at least 2 trades per variant (A has {a.size}, B has {b.size})")
    if a.min() == a.max() and b.min() == b.max():
        return without("zero variance in both: every trade of each variant returned the same")
    res = stats.ttest_ind(a, b, equal_var=False)
    t, p, df = float(res.statistic), float(res.pvalue), float(res.df)
    if not (math.isfinite(t) and math.isfinite(p)):
        return without(f"the t-test is undefined for these returns (t={t}, p={p})")
    return ABResult(a=sa, b=sb, t_stat=t, p_value=p, test=WELCH, reason=None, df=df)
