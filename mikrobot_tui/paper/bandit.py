"""Thompson sampling: how an experiment's risk budget is shared among its variants.

Each variant's per-trade returns (the experiment's metric) get a Normal model with unknown mean
and variance and its conjugate Normal-Inverse-Gamma prior. The prior is weak and scale-free: it
is centred on the mean of every trade of the experiment, pooled, worth one trade (kappa0 = 1),
with a0 = 2 and b0 = the pooled sample variance, so its expected variance is that of the pooled
trades (no trade yet or no spread: b0 = 1). With a variant's n trades, mean xbar and sum of
squared deviations SS, its posterior is

    kappa_n = kappa0 + n                  mu_n = (kappa0 mu0 + n xbar) / kappa_n
    a_n     = a0 + n/2                    b_n  = b0 + SS/2 + kappa0 n (xbar - mu0)^2 / (2 kappa_n)

and one draw is sigma^2 = b_n / Gamma(a_n, 1), mu = mu_n + sqrt(sigma^2 / kappa_n) Z. Over
DRAWS (10,000) joint draws, P_i is the fraction in which variant i has the highest mu (Thompson
sampling's probability matching, computed rather than sampled once per trade). P_i goes to
whole hundredths by largest remainder (so a change of allocation is a change of at least a
hundredth, not Monte Carlo noise), and the share is

    share_i = FLOOR / N + (1 - FLOOR) P_i

so no variant ever gets less than FLOOR (10%) of an equal share and the shares sum to 1. The
orchestrator multiplies that variant's risk per trade by share_i x N (equal shares are 1x),
never above the account's risk per trade (engine/decisions.py).
Until every variant has WARM_UP (10) trades the shares stay equal: two or three trades say
little, and a posterior that leans on them would swing the budget on noise.

Deterministic: the generator is `numpy.random.default_rng(seed)` with the seed taken from the
SHA-256 of the experiment's name and its total number of trades (`seed_for`), drawing for each
variant in order its DRAWS gammas then its DRAWS normals. The same trades give the same shares
in a replay, after a restart, or in a notebook.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

__all__ = [
    "DRAWS",
    "FLOOR",
    "WARM_UP",
    "equal_shares",
    "p_best",
    "seed_for",
    "shares",
    "thompson_shares",
]

DRAWS = 10_000
FLOOR = 0.1  # of an equal share: each variant keeps at least 10% of 1/N
GRID = 100  # P_i in whole hundredths
WARM_UP = 10  # trades every variant needs before the shares move


def seed_for(experiment: str, trades: int) -> int:
    """The generator's seed: the first 8 bytes of SHA-256("<experiment>:<trades>")."""
    digest = hashlib.sha256(f"{experiment}:{trades}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def equal_shares(n: int) -> tuple[float, ...]:
    return tuple(1.0 / n for _ in range(n))


def p_best(
    samples: Sequence[Sequence[float]], *, seed: int, draws: int = DRAWS
) -> tuple[float, ...]:
    """Each variant's posterior probability of having the highest mean, by `draws` draws."""
    arrays = [np.asarray(s, dtype=np.float64).reshape(-1) for s in samples]
    pooled = np.concatenate(arrays) if arrays else np.empty(0)
    mu0 = float(pooled.mean()) if pooled.size else 0.0
    var0 = float(pooled.var(ddof=1)) if pooled.size >= 2 else 0.0
    kappa0, a0 = 1.0, 2.0
    b0 = var0 * (a0 - 1) if var0 > 0 else 1.0
    rng = np.random.default_rng(seed)
    mus = np.empty((len(arrays), draws))
    for i, x in enumerate(arrays):
        n = x.size
        xbar = float(x.mean()) if n else 0.0
        ss = float(((x - xbar) ** 2).sum()) if n else 0.0
        kappa = kappa0 + n
        mu_n = (kappa0 * mu0 + n * xbar) / kappa
        a_n = a0 + n / 2
        b_n = b0 + ss / 2 + kappa0 * n * (xbar - mu0) ** 2 / (2 * kappa)
        sigma2 = b_n / rng.gamma(a_n, 1.0, size=draws)
        mus[i] = mu_n + np.sqrt(sigma2 / kappa) * rng.standard_normal(draws)
    best = np.bincount(np.argmax(mus, axis=0), minlength=len(arrays))
    return tuple(float(b) / draws for b in best)


def shares(probabilities: Sequence[float], *, floor: float = FLOOR) -> tuple[float, ...]:
    """FLOOR / N + (1 - FLOOR) P_i, with P_i in whole hundredths (largest remainder), to six
    decimals (the largest share takes what the rounding leaves, so they sum to 1)."""
    n = len(probabilities)
    p = np.asarray(probabilities, dtype=np.float64) * GRID
    units = np.floor(p).astype(int)
    short = GRID - int(units.sum())
    order = sorted(range(n), key=lambda i: (-(p[i] - units[i]), i))  # ties: the first variant
    for i in order[:short]:
        units[i] += 1
    out = [round(floor / n + (1 - floor) * u / GRID, 6) for u in units.tolist()]
    top = out.index(max(out))  # what six decimals lose (a third's) goes to the largest share
    out[top] = round(out[top] + 1.0 - sum(out), 6)
    return tuple(out)


def thompson_shares(
    experiment: str,
    samples: Sequence[Sequence[float]],
    *,
    draws: int = DRAWS,
    floor: float = FLOOR,
    warm_up: int = WARM_UP,
) -> tuple[float, ...]:
    """The variants' shares of the risk budget, given each one's per-trade returns so far.

    Equal shares until every variant has `warm_up` trades.
    """
    if not samples or min(len(s) for s in samples) < max(1, warm_up):
        return equal_shares(len(samples))
    seed = seed_for(experiment, sum(len(s) for s in samples))
    return shares(p_best(samples, seed=seed, draws=draws), floor=floor)
