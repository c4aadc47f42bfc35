"""A/B comparison: Welch's t-test, checked against the formula written out."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from scipy import stats

from mikrobot_tui.paper.ab import ABResult, VariantStats, compare, t_two_sided_p, variant_stats

# A: few trades, wide spread; B: more trades, tight spread. Unequal sizes and variances are
# where Welch and Student's pooled test disagree.
A = [0.031, -0.012, 0.045, 0.008, -0.020, 0.052]
B = [0.004, 0.006, 0.003, 0.007, 0.005, 0.002, 0.006, 0.004, 0.005, 0.003, 0.004, 0.006]


def welch_by_hand(a: list[float], b: list[float]) -> tuple[float, float, float]:
    na, nb = len(a), len(b)
    ma, mb = sum(a) / na, sum(b) / nb
    va = sum((x - ma) ** 2 for x in a) / (na - 1)
    vb = sum((x - mb) ** 2 for x in b) / (nb - 1)
    se2 = va / na + vb / nb
    t = (ma - mb) / math.sqrt(se2)
    df = se2**2 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1))
    p = 2 * stats.t.sf(abs(t), df)
    return t, df, p


def student_pooled_by_hand(a: list[float], b: list[float]) -> float:
    na, nb = len(a), len(b)
    ma, mb = sum(a) / na, sum(b) / nb
    ss = sum((x - ma) ** 2 for x in a) + sum((x - mb) ** 2 for x in b)
    sp2 = ss / (na + nb - 2)
    t = (ma - mb) / math.sqrt(sp2 * (1 / na + 1 / nb))
    return 2 * stats.t.sf(abs(t), na + nb - 2)


def test_compare_is_welch_against_the_formula() -> None:
    t, df, p = welch_by_hand(A, B)
    result = compare(A, B)
    assert result.test == "welch_t"
    assert result.reason is None
    assert result.t_stat == pytest.approx(t, rel=1e-12)
    assert result.df == pytest.approx(df, rel=1e-12)
    assert result.p_value == pytest.approx(p, rel=1e-9)
    # Welch's df is well below Student's na + nb - 2 = 16 here
    assert df < 6


def test_compare_is_not_students_pooled_test() -> None:
    _, _, welch_p = welch_by_hand(A, B)
    pooled_p = student_pooled_by_hand(A, B)
    assert abs(welch_p - pooled_p) > 0.01  # the two tests really disagree on this data
    p = compare(A, B).p_value
    assert p is not None
    assert abs(p - pooled_p) > 0.01
    assert p == pytest.approx(welch_p, rel=1e-9)


def test_swapping_variants_flips_t_and_keeps_p() -> None:
    ab, ba = compare(A, B), compare(B, A)
    assert ab.t_stat == pytest.approx(-ba.t_stat)  # type: ignore[operator]
    assert ab.p_value == pytest.approx(ba.p_value)
    assert ab.a == ba.b


def test_variant_stats_known_answer() -> None:
    s = variant_stats([0.02, -0.01, 0.0, 0.03])
    assert s.trades == 4
    assert s.wins == 2  # the break-even trade is not a win
    assert s.win_rate == 0.5
    assert s.mean_return == pytest.approx(0.01)
    # sample std: deviations 0.01, -0.02, -0.01, 0.02 -> sum of squares 0.001 / 3
    assert s.std_return == pytest.approx(math.sqrt(0.001 / 3))
    assert s.std_return == pytest.approx(statistics.stdev([0.02, -0.01, 0.0, 0.03]))


def test_variant_stats_with_few_trades() -> None:
    assert variant_stats([]) == VariantStats(0, 0, None, None, None)
    assert variant_stats([0.0]) == VariantStats(1, 0, 0.0, 0.0, None)
    assert variant_stats([0.5]) == VariantStats(1, 1, 1.0, 0.5, None)


def test_no_p_value_with_fewer_than_two_trades() -> None:
    result = compare([0.01], B)
    assert isinstance(result, ABResult)
    assert result.t_stat is None and result.p_value is None
    assert result.reason is not None
    assert result.reason.startswith("need at least 2 trades per variant")
    assert result.a.trades == 1 and result.b.trades == len(B)
    assert compare([], []).reason.startswith("need at least 2 trades")  # type: ignore[union-attr]


def test_no_p_value_with_zero_variance_in_both() -> None:
    # np.std([0.1] * 3, ddof=1) is 1.7e-17 in floating point: still zero variance
    result = compare([0.1, 0.1, 0.1], [0.02, 0.02])
    assert result.a.std_return == 0.0
    assert result.p_value is None and result.t_stat is None
    assert result.reason is not None and result.reason.startswith("zero variance in both")


def test_zero_variance_in_one_variant_still_tests() -> None:
    flat = [0.0] * 5  # five break-even trades
    t, df, p = welch_by_hand(A, flat)
    result = compare(A, flat)
    assert result.reason is None
    assert result.t_stat == pytest.approx(t)
    assert result.df == pytest.approx(df)  # all the variance comes from A: df = na - 1
    assert result.df == pytest.approx(len(A) - 1)
    assert result.p_value == pytest.approx(p)


def test_non_finite_returns_are_refused() -> None:
    with pytest.raises(ValueError, match=r"returns_b\[1\]"):
        compare(A, [0.1, math.nan, 0.2])
    with pytest.raises(ValueError, match="finite"):
        variant_stats([math.inf])


@pytest.mark.parametrize("t", [0.0, 1e-6, 0.3, 1.0, 2.5, 12.0, 1e3])
def test_students_t_p_value_in_closed_form(t: float) -> None:
    # df = 1 is the Cauchy distribution, df = 2 has a closed form too
    assert t_two_sided_p(t, 1.0) == pytest.approx(1 - 2 / math.pi * math.atan(t), rel=1e-13)
    assert t_two_sided_p(t, 2.0) == pytest.approx(1 - t / math.sqrt(2 + t * t), rel=1e-12)
    assert t_two_sided_p(-t, 2.0) == t_two_sided_p(t, 2.0)


@pytest.mark.parametrize("df", [0.7, 3.3, 9.0, 41.5, 250.0, 4000.0])
@pytest.mark.parametrize("t", [0.05, 0.9, 1.96, 4.0, 9.0, 40.0])
def test_students_t_p_value_agrees_with_scipy(t: float, df: float) -> None:
    assert t_two_sided_p(t, df) == pytest.approx(2 * stats.t.sf(t, df), rel=1e-10)


def test_compare_matches_scipys_welch_test_on_random_samples() -> None:
    from scipy import stats

    rng = np.random.default_rng(4)
    for _ in range(200):
        a = rng.normal(rng.normal(0, 1), rng.uniform(0.1, 3), rng.integers(2, 60))
        b = rng.normal(rng.normal(0, 1), rng.uniform(0.1, 3), rng.integers(2, 60))
        ref = stats.ttest_ind(a, b, equal_var=False)
        got = compare(a.tolist(), b.tolist())
        assert got.t_stat == pytest.approx(ref.statistic, rel=1e-12)
        assert got.df == pytest.approx(ref.df, rel=1e-12)
        assert got.p_value == pytest.approx(ref.pvalue, rel=1e-8, abs=1e-300)


# ---------------------------------------------------------------- bootstrap, mSPRT, verdicts

from mikrobot_tui.paper.ab import (  # noqa: E402
    always_valid_p,
    bootstrap_diff_ci,
    bootstrap_mean_ci,
    compare_sequential,
    msprt_path,
)


def test_bootstrap_interval_is_the_percentile_bootstrap_with_its_seed() -> None:
    # the same computation written out in one draw: the control's index rows, then the variant's
    rng = np.random.default_rng(11)
    a, b = np.array(A), np.array(B)
    ma = a[rng.integers(0, a.size, size=(2_000, a.size))].mean(axis=1)
    mb = b[rng.integers(0, b.size, size=(2_000, b.size))].mean(axis=1)
    low, high = np.percentile(mb - ma, [2.5, 97.5])
    ci = bootstrap_diff_ci(A, B, seed=11)
    assert ci is not None
    assert (ci.low, ci.high) == (pytest.approx(low, abs=1e-15), pytest.approx(high, abs=1e-15))
    assert (ci.method, ci.seed, ci.resamples) == ("percentile_bootstrap", 11, 2_000)
    assert ci.level == 0.95
    assert bootstrap_diff_ci(A, B, seed=12) != ci  # the seed matters, and is reported
    assert bootstrap_diff_ci([0.1], B) is None


def test_bootstrap_drawn_in_chunks_is_the_one_draw() -> None:
    # 3,000 trades: 2,000 rows of 3,000 indices are drawn 666 rows at a time
    x = np.random.default_rng(2).normal(0.1, 1.0, 3_000)
    rng = np.random.default_rng(5)
    means = np.array([x[rng.integers(0, x.size, size=(1, x.size))].mean() for _ in range(2_000)])
    ci = bootstrap_mean_ci(x, seed=5, level=0.9)
    assert ci is not None
    assert ci.low == pytest.approx(np.percentile(means, 5), abs=1e-15)
    assert ci.high == pytest.approx(np.percentile(means, 95), abs=1e-15)


def msprt_by_hand(values, is_variant, tau=0.25, burn_in=10):
    """Johari et al.'s normal-mixture likelihood ratio after each trade, in a plain loop."""
    c, v, p, path = [], [], 1.0, []
    for x, side in zip(values, is_variant, strict=True):
        (v if side else c).append(x)
        if len(c) >= burn_in and len(v) >= burn_in:
            sc, sv = statistics.variance(c), statistics.variance(v)
            big_v = sc / len(c) + sv / len(v)
            tau2 = tau**2 * (sc + sv) / 2
            theta = statistics.fmean(v) - statistics.fmean(c)
            lam = math.sqrt(big_v / (big_v + tau2)) * math.exp(
                tau2 * theta**2 / (2 * big_v * (big_v + tau2))
            )
            p = min(p, 1 / lam)
        path.append(p)
    return path


def test_msprt_against_the_formula_written_out() -> None:
    rng = np.random.default_rng(3)
    side = rng.random(300) < 0.5
    x = rng.normal(0.0, 1.0, 300) + 0.4 * side  # the variant is better by 0.4 sd
    got = msprt_path(x, side)
    assert got == pytest.approx(msprt_by_hand(x.tolist(), side.tolist()), rel=1e-9)
    assert np.all(np.diff(got) <= 0)  # a running minimum
    assert got[-1] < 0.01  # 0.4 sd over ~150 trades each is found
    assert always_valid_p(x, side) == got[-1]
    assert always_valid_p(x[:15], side[:15]) is None  # before the burn-in


def test_verdicts_collecting_inconclusive_and_better() -> None:
    rng = np.random.default_rng(8)

    def run(n: int, edge: float, min_trades: int = 100):
        side = np.arange(2 * n) % 2 == 1
        x = rng.normal(0.0, 1.0, 2 * n) + edge * side
        return compare_sequential(
            x[~side], x[side], side, names=("A", "B"), min_trades=min_trades, alpha=0.05
        )

    early = run(50, 1.0)
    assert early.verdict == "collecting" and "100 each" in early.reason
    assert run(300, 0.6).verdict == "B better"
    assert run(300, -0.6).verdict == "A better"
    flat = run(150, 0.0)
    assert flat.verdict == "inconclusive"
    assert flat.always_valid_p is not None and flat.always_valid_p >= 0.05
    assert flat.welch_p is not None and flat.diff_ci is not None
    assert flat.diff_ci.low < flat.diff < flat.diff_ci.high  # type: ignore[operator]
