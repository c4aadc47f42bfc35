"""A/B statistics between strategy variants' per-trade returns.

Three numbers per comparison, each with its method named where it is shown.

Welch's t-test (`welch_t`), what `scipy.stats.ttest_ind(..., equal_var=False)` computes, never
Student's pooled-variance test that is scipy's default: two strategy variants rarely have the
same spread of returns, and the pooled test then gives wrong p-values. With sample means m,
sample variances s^2 (ddof = 1) and trade counts n:

    t  = (m_a - m_b) / sqrt(s_a^2/n_a + s_b^2/n_b)
    df = (s_a^2/n_a + s_b^2/n_b)^2 / ((s_a^2/n_a)^2/(n_a-1) + (s_b^2/n_b)^2/(n_b-1))
    p  = P(|T_df| >= |t|) = I_x(df/2, 1/2),  x = df / (df + t^2)

two-sided, through the regularized incomplete beta function, written out here (a continued
fraction) so the engine does not import scipy (about a second and 80 MB at start-up); it agrees
with scipy to about 1e-10 relative. Its p-value is valid for ONE look at a fixed sample size:
read after every trade, it finds a "significant" difference between identical variants far
more often than alpha (tests/test_ab_sequential.py measures how often).

The percentile bootstrap (`percentile_bootstrap`) of the difference in means, variant minus
control: with a generator `numpy.random.default_rng(seed)`, draw `resamples` (2,000) index
rows for the control, `rng.integers(0, n_c, size=(resamples, n_c))`, then as many for the
variant, `rng.integers(0, n_v, size=(resamples, n_v))` (the same stream drawn in chunks of
rows, to bound memory); each row's mean of the variant minus that of the control is one
resampled difference, and the interval is `numpy.percentile(differences, [100 a/2,
100 (1 - a/2)])` (linear interpolation) for a level of 1 - a. A variant's own mean has the same
interval from its own resampled means. The method, the seed and the number of resamples go
with every interval.

The always-valid p-value (`msprt`): a mixture sequential probability ratio test (Johari,
Koomen, Pekelis and Walsh, "Peeking at A/B tests", KDD 2017; "Always valid inference", 2015/
2021), which stays valid however often it is looked at. The two variants' trades are merged in
the order they closed; after the k-th close, once each variant has at least MSPRT_BURN_IN
trades, with theta = m_v - m_c, its plug-in variance V = s_c^2/n_c + s_v^2/n_v and a normal
mixture theta ~ N(0, tau^2) over the alternative,

    Lambda_k = sqrt(V / (V + tau^2)) * exp(tau^2 * theta^2 / (2 V (V + tau^2)))
    p_k      = min(p_{k-1}, 1 / Lambda_k),  p_0 = 1

(computed in logs). tau^2 = MSPRT_TAU^2 x (s_c^2 + s_v^2)/2: the mixture puts its weight on
differences of about a quarter of a trade's standard deviation, the size a strategy variant
plausibly makes; the variances are plug-in estimates, as in the paper's unknown-variance
case, hence the burn-in before the first look.

Verdicts, N >= 2 variants: the first variant is the control and every other is compared with
it (pairwise against the control, not best against the rest: the control is what runs
today, and the question is whether a variant beats it). With N - 1 comparisons each is judged
at alpha / (N - 1) (Bonferroni) and its bootstrap interval has level 1 - alpha / (N - 1).
`collecting` while the control or the variant has fewer than min_trades; then the always-
valid p-value decides (the cockpit is watched continuously, so the fixed-sample Welch p is
shown but never decides): under the adjusted alpha, "<account> better" for whichever has the
higher mean, else `inconclusive`. The control's own row says `control`.

Per-trade returns are whatever the caller measures per closed trade (R multiples or P&L as a
fraction of equity at entry); all variants must use the same measure. Win rate counts a
trade as a win only when its return is > 0: a break-even trade is not a win. Standard
deviations are sample (ddof = 1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ABResult",
    "Comparison",
    "Interval",
    "VariantResult",
    "VariantStats",
    "always_valid_p",
    "analyse",
    "bootstrap_diff_ci",
    "bootstrap_mean_ci",
    "compare",
    "compare_sequential",
    "msprt_path",
    "variant_stats",
    "verdict",
]

WELCH = "welch_t"
BOOTSTRAP = "percentile_bootstrap"
MSPRT = "msprt"
# enough for 95% percentile intervals (Efron and Tibshirani: 1,000 to 2,000); 10,000 held the
# engine's loop 0.35 s at every close once each variant had 1,000 trades
RESAMPLES = 2_000
BOOTSTRAP_SEED = 7
MSPRT_TAU = 0.25  # the mixture's standard deviation, in trade standard deviations
MSPRT_BURN_IN = 10  # trades each variant needs before the first look
_CHUNK_CELLS = 2_000_000  # index cells drawn at once (16 MB), whatever the sample size

COLLECTING, INCONCLUSIVE, CONTROL = "collecting", "inconclusive", "control"


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


@dataclass(frozen=True, slots=True)
class Interval:
    low: float
    high: float
    level: float  # 0.95 for a 95% interval
    method: str  # "percentile_bootstrap"
    seed: int
    resamples: int


@dataclass(frozen=True, slots=True)
class Comparison:
    """One variant against the control: the three numbers and the verdict they give."""

    control: VariantStats
    variant: VariantStats
    diff: float | None  # mean variant - mean control
    diff_ci: Interval | None  # None with fewer than 2 trades in either
    welch_p: float | None
    always_valid_p: float | None  # None before MSPRT_BURN_IN trades each
    alpha: float  # the level each comparison is judged at (Bonferroni-adjusted)
    verdict: str  # collecting, inconclusive or "<name> better"
    reason: str  # the numbers behind the verdict, in words


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
    va, vb = float(a.var(ddof=1)) / a.size, float(b.var(ddof=1)) / b.size
    se2 = va + vb
    t = (float(a.mean()) - float(b.mean())) / math.sqrt(se2)
    df = se2 * se2 / (va * va / (a.size - 1) + vb * vb / (b.size - 1))
    if math.isnan(df):  # both squared variances underflow; scipy says 1 too
        df = 1.0
    p = t_two_sided_p(t, df) if math.isfinite(t) else math.nan
    if not (math.isfinite(t) and math.isfinite(p)):
        return without(f"the t-test is undefined for these returns (t={t}, p={p})")
    return ABResult(a=sa, b=sb, t_stat=t, p_value=p, test=WELCH, reason=None, df=df)


# ---------------------------------------------------------------- percentile bootstrap


def _resampled_means(rng: np.random.Generator, x: np.ndarray, resamples: int) -> np.ndarray:
    """Means of `resamples` rows of rng.integers(0, n, size=(resamples, n)), drawn in chunks
    of rows (the same stream as one draw: the generator fills row after row)."""
    n = x.size
    rows = max(1, _CHUNK_CELLS // n)
    out = np.empty(resamples)
    for start in range(0, resamples, rows):
        stop = min(resamples, start + rows)
        out[start:stop] = x[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    return out


def _interval(values: np.ndarray, level: float, seed: int, resamples: int) -> Interval:
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return Interval(float(low), float(high), level, BOOTSTRAP, seed, resamples)


def bootstrap_diff_ci(
    control: Sequence[float],
    variant: Sequence[float],
    *,
    level: float = 0.95,
    seed: int = BOOTSTRAP_SEED,
    resamples: int = RESAMPLES,
) -> Interval | None:
    """Percentile bootstrap interval of mean(variant) - mean(control); None with fewer than 2
    trades in either. The control's resamples are drawn first, then the variant's."""
    c, v = _returns(control, "control"), _returns(variant, "variant")
    if c.size < 2 or v.size < 2:
        return None
    rng = np.random.default_rng(seed)
    mc = _resampled_means(rng, c, resamples)
    mv = _resampled_means(rng, v, resamples)
    return _interval(mv - mc, level, seed, resamples)


def bootstrap_mean_ci(
    values: Sequence[float],
    *,
    level: float = 0.95,
    seed: int = BOOTSTRAP_SEED,
    resamples: int = RESAMPLES,
) -> Interval | None:
    """Percentile bootstrap interval of one variant's mean; None with fewer than 2 trades."""
    x = _returns(values, "values")
    if x.size < 2:
        return None
    rng = np.random.default_rng(seed)
    return _interval(_resampled_means(rng, x, resamples), level, seed, resamples)


# ---------------------------------------------------------------- mSPRT


def msprt_path(
    values: Sequence[float] | np.ndarray,
    is_variant: Sequence[bool] | np.ndarray,
    *,
    tau: float = MSPRT_TAU,
    burn_in: int = MSPRT_BURN_IN,
) -> np.ndarray:
    """The always-valid p-value after each trade of the merged sequence (control and variant
    trades in the order they closed); 1 until each side has `burn_in` trades.

    Vectorised over a trailing axis too: `values` and `is_variant` of shape (..., k) give p of
    shape (..., k), one sequence per leading index (the A/A simulations use that).
    """
    x = np.asarray(values, dtype=np.float64)
    v = np.asarray(is_variant, dtype=bool)
    if x.shape != v.shape:
        raise ValueError(f"values {x.shape} and is_variant {v.shape} differ in shape")
    if x.shape[-1] == 0:
        return np.ones(x.shape)
    shift = x.mean(axis=-1, keepdims=True)  # numerics only: cumulative sums of centred values
    y = x - shift
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        sides = []
        for mask in (~v, v):
            n = np.cumsum(mask, axis=-1)
            s1 = np.cumsum(np.where(mask, y, 0.0), axis=-1)
            s2 = np.cumsum(np.where(mask, y * y, 0.0), axis=-1)
            mean = s1 / n
            var = np.maximum(s2 - n * mean * mean, 0.0) / (n - 1)
            sides.append((n, mean, var))
        (nc, mc, vc), (nv, mv, vv) = sides
        theta = mv - mc
        big_v = vc / nc + vv / nv
        tau2 = tau * tau * (vc + vv) / 2
        log_lam = 0.5 * np.log(big_v / (big_v + tau2)) + tau2 * theta * theta / (
            2 * big_v * (big_v + tau2)
        )
        ready = (nc >= max(2, burn_in)) & (nv >= max(2, burn_in)) & (big_v > 0)
        p_now = np.where(ready, np.minimum(1.0, np.exp(-np.where(ready, log_lam, 0.0))), 1.0)
    return np.minimum.accumulate(np.nan_to_num(p_now, nan=1.0), axis=-1)


def always_valid_p(
    values: Sequence[float] | np.ndarray,
    is_variant: Sequence[bool] | np.ndarray,
    *,
    tau: float = MSPRT_TAU,
    burn_in: int = MSPRT_BURN_IN,
) -> float | None:
    """The running minimum of min(1, 1/Lambda) at the last trade; None before the burn-in."""
    v = np.asarray(is_variant, dtype=bool)
    if min(int(v.sum()), int((~v).sum())) < max(2, burn_in):
        return None
    return float(msprt_path(values, v, tau=tau, burn_in=burn_in)[-1])


# ---------------------------------------------------------------- verdicts


def verdict(
    control_name: str,
    variant_name: str,
    diff: float | None,
    p: float | None,
    n_control: int,
    n_variant: int,
    *,
    min_trades: int,
    alpha: float,
) -> tuple[str, str]:
    """(verdict, the numbers behind it) of one variant against the control."""
    if n_control < min_trades or n_variant < min_trades:
        return COLLECTING, (
            f"{control_name} has {n_control} and {variant_name} {n_variant} trades; "
            f"{min_trades} each are needed"
        )
    if p is None or diff is None:
        return INCONCLUSIVE, "no always-valid p-value: the returns have no spread"
    if p < alpha:
        winner = variant_name if diff > 0 else control_name
        return f"{winner} better", (
            f"always-valid p {p:.3g} < {alpha:g}; mean difference {diff:+.4g}"
        )
    return INCONCLUSIVE, f"always-valid p {p:.3g} >= {alpha:g}; mean difference {diff:+.4g}"


def compare_sequential(
    control: Sequence[float],
    variant: Sequence[float],
    order: Sequence[bool],
    *,
    names: tuple[str, str] = ("A", "B"),
    min_trades: int = 100,
    alpha: float = 0.05,
    seed: int = BOOTSTRAP_SEED,
    resamples: int = RESAMPLES,
) -> Comparison:
    """The variant against the control: Welch's p, the bootstrap interval of the difference
    (level 1 - alpha), the always-valid p and the verdict.

    `order` is the merged sequence of closes, True for a variant trade: the k-th False is
    control[k], the k-th True variant[k] (each list in the order its trades closed).
    """
    c, v = _returns(control, "control"), _returns(variant, "variant")
    is_v = np.asarray(order, dtype=bool).reshape(-1)
    if int(is_v.sum()) != v.size or int((~is_v).sum()) != c.size:
        raise ValueError("order must hold one True per variant trade, one False per control's")
    merged = np.empty(is_v.size)
    merged[~is_v], merged[is_v] = c, v
    welch = compare(c, v)
    diff = float(v.mean() - c.mean()) if c.size and v.size else None
    ci = bootstrap_diff_ci(c, v, level=1 - alpha, seed=seed, resamples=resamples)
    p_av = always_valid_p(merged, is_v)
    word, why = verdict(
        names[0], names[1], diff, p_av, c.size, v.size, min_trades=min_trades, alpha=alpha
    )
    return Comparison(
        control=welch.a,
        variant=welch.b,
        diff=diff,
        diff_ci=ci,
        welch_p=welch.p_value,
        always_valid_p=p_av,
        alpha=alpha,
        verdict=word,
        reason=why,
    )


@dataclass(frozen=True, slots=True)
class VariantResult:
    """One variant of an experiment: its record, its mean's interval and, but for the
    control, its comparison with the control."""

    name: str
    stats: VariantStats
    mean_ci: Interval | None
    comparison: Comparison | None  # None for the control
    t_stat: float | None  # Welch's, this variant against the control
    test: str  # "welch_t", or "n/a: <why>"


def analyse(
    names: Sequence[str],
    samples: Sequence[Sequence[float]],
    closed: Sequence[Sequence[int]],
    *,
    min_trades: int = 100,
    alpha: float = 0.05,
    seed: int = BOOTSTRAP_SEED,
    resamples: int = RESAMPLES,
) -> list[VariantResult]:
    """An experiment of N >= 2 variants, the first the control: each other variant against it
    at alpha / (N - 1). `closed[i]` are the close times of `samples[i]` (each in close order);
    the control's and a variant's trades merge by close time (the control first on a tie)
    into the sequence the always-valid p-value runs over."""
    if len(names) < 2 or not len(names) == len(samples) == len(closed):
        raise ValueError("an experiment needs two or more variants, each with its trades")
    level_alpha = alpha / (len(names) - 1)
    control = _returns(samples[0], "samples[0]")
    out = []
    for i, (name, sample, ts) in enumerate(zip(names, samples, closed, strict=True)):
        x = _returns(sample, f"samples[{i}]")
        if len(ts) != x.size:
            raise ValueError(f"closed[{i}] has {len(ts)} times for {x.size} trades")
        ci = bootstrap_mean_ci(x, level=1 - level_alpha, seed=seed, resamples=resamples)
        if i == 0:
            out.append(VariantResult(name, _stats(x), ci, None, None, WELCH))
            continue
        when = np.concatenate([np.asarray(closed[0], dtype=np.int64), np.asarray(ts, np.int64)])
        side = np.concatenate([np.zeros(control.size, bool), np.ones(x.size, bool)])
        order = side[np.argsort(when, kind="stable")]
        comparison = compare_sequential(
            control,
            x,
            order,
            names=(names[0], name),
            min_trades=min_trades,
            alpha=level_alpha,
            seed=seed,
            resamples=resamples,
        )
        welch = compare(x, control)  # t > 0 when the variant did better
        test = WELCH if welch.p_value is not None else f"n/a: {welch.reason}"
        out.append(VariantResult(name, welch.a, ci, comparison, welch.t_stat, test))
    return out


# ---------------------------------------------------------------- Student's t


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with df degrees of freedom (df > 0, t finite).

    That is I_x(df / 2, 1 / 2), the regularized incomplete beta function at x = df / (df + t^2).
    """
    t2 = t * t
    x, y = df / (df + t2), t2 / (df + t2)  # y = 1 - x, without the cancellation
    return _betainc(df / 2.0, 0.5, x, y)


def _betainc(a: float, b: float, x: float, y: float) -> float:
    """The regularized incomplete beta function I_x(a, b), given y = 1 - x."""
    if x <= 0.0:
        return 0.0
    if y <= 0.0:
        return 1.0
    ln_x = math.log1p(-y) if x > 0.5 else math.log(x)
    ln_y = math.log1p(-x) if y > 0.5 else math.log(y)
    front = math.exp(a * ln_x + b * ln_y + math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_fraction(a, b, x) / a
    return 1.0 - front * _beta_fraction(b, a, y) / b


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b) (modified Lentz), converging for x < (a+1)/(a+b+2)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 100_000):
        m2 = 2 * m
        for num in (
            m * (b - m) * x / ((a + m2 - 1.0) * (a + m2)),
            -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0)),
        ):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-16:
            break
    return h
