"""Peeking: the always-valid p-value against Welch's p read after every trade.

Seeded A/A simulations (both variants draw from the same distribution, so every "significant"
verdict is a false positive), vectorised: 400 experiments of 1,000 trades each, the trades
going to A or B at random, looked at after every trade once each variant has 100 (the
default min_trades), alpha = 0.05. Recorded on the seeds below:

    returns                         sequential (mSPRT) FPR    naive repeated Welch FPR
    R multiples (-1 or +2, noise)   0.0300                     0.2600
    Student t, 3 degrees of freedom 0.0275                     0.2550

The naive test's threshold here is Welch's two-sided critical value at 100 degrees of freedom
(every look has at least that many, and the critical value falls with df), so the naive rate
is if anything understated.
"""

from __future__ import annotations

import numpy as np
import pytest

from mikrobot_tui.paper.ab import msprt_path, t_two_sided_p

EXPERIMENTS, TRADES, MIN_TRADES, ALPHA = 400, 1_000, 100, 0.05


def t_critical(df: float, alpha: float) -> float:
    """|t| at which Welch's two-sided p is alpha, by bisection on t_two_sided_p."""
    lo, hi = 0.0, 50.0
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_two_sided_p(mid, df) > alpha else (lo, mid)
    return (lo + hi) / 2


def naive_peeking_rejects(x: np.ndarray, is_b: np.ndarray) -> np.ndarray:
    """Whether Welch's test said p < alpha at any look with min_trades in each variant."""
    sides = []
    for mask in (~is_b, is_b):
        n = np.cumsum(mask, axis=1)
        s1 = np.cumsum(np.where(mask, x, 0.0), axis=1)
        s2 = np.cumsum(np.where(mask, x * x, 0.0), axis=1)
        m = s1 / np.maximum(n, 1)
        var = (s2 - n * m * m) / np.maximum(n - 1, 1)
        sides.append((n, m, var))
    (na, ma, va), (nb, mb, vb) = sides
    looks = (na >= MIN_TRADES) & (nb >= MIN_TRADES)
    se = np.sqrt(np.where(looks, va / np.maximum(na, 1) + vb / np.maximum(nb, 1), 1.0))
    t = np.abs(ma - mb) / se
    return (looks & (t > t_critical(MIN_TRADES, ALPHA))).any(axis=1)


def a_a(kind: str, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    is_b = rng.random((EXPERIMENTS, TRADES)) < 0.5
    if kind == "r":  # a 2R target hit 35% of the time, else the 1R stop, with cost noise
        x = np.where(rng.random(is_b.shape) < 0.35, 2.0, -1.0) + rng.normal(0, 0.1, is_b.shape)
    else:
        x = rng.standard_t(3, is_b.shape)
    sequential = float((msprt_path(x, is_b)[:, -1] < ALPHA).mean())
    naive = float(naive_peeking_rejects(x, is_b).mean())
    return sequential, naive


@pytest.mark.parametrize(("kind", "seed"), [("r", 20170), ("t3", 7)])
def test_always_valid_p_keeps_its_false_positive_rate_under_peeking(kind: str, seed: int) -> None:
    sequential, naive = a_a(kind, seed)
    print(f"{kind}: sequential FPR {sequential:.4f}, naive peeking FPR {naive:.4f}")
    assert sequential <= ALPHA
    assert naive > ALPHA * 2  # peeking at Welch's p finds "differences" that are not there
    # the running minimum is monotone, so "under alpha at any look" is "under alpha at the end"


def test_the_sequential_test_still_finds_a_real_difference() -> None:
    rng = np.random.default_rng(1)
    is_b = rng.random((200, TRADES)) < 0.5
    x = rng.normal(0.0, 1.0, is_b.shape) + 0.25 * is_b  # B better by a quarter of a sd
    power = float((msprt_path(x, is_b)[:, -1] < ALPHA).mean())
    assert power > 0.5
