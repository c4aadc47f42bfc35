"""Synthetic setup datasets for the model tests: 49 features, NaNs, a known effect."""

from __future__ import annotations

import numpy as np

from mikrobot_tui.trading.features import FEATURE_NAMES
from mikrobot_tui.trading.models import LABELS, Dataset

START_NS = 1_767_225_600_000_000_000  # 2026-01-01 00:00 UTC
HOUR_NS = 3_600_000_000_000


def synthetic(
    n: int = 2000,
    *,
    effect: bool = True,
    seed: int = 7,
    nan_share: float = 0.1,
    rates: tuple[float, float] = (0.5, 0.7),
) -> Dataset:
    """n setups an hour apart: normal features (a share NaN), `sweep` 0 or 1, and each label
    1 with probability rates[1] when sweep == 1, rates[0] otherwise; without `effect`,
    rates[0] always."""
    rng = np.random.default_rng(seed)
    names = FEATURE_NAMES
    x = rng.normal(size=(n, len(names)))
    x[rng.random(x.shape) < nan_share] = np.nan
    sweep = (rng.random(n) < 0.5).astype(float)
    x[:, names.index("sweep")] = sweep
    rate = np.where(sweep == 1, rates[1], rates[0]) if effect else np.full(n, rates[0])
    labels = {name: (rng.random(n) < rate).astype(float) for name in LABELS}
    labels["retest_held"][rng.random(n) < 0.05] = np.nan  # outcomes not known
    return Dataset(
        features=x,
        names=names,
        labels=labels,
        ts=START_NS + np.arange(n, dtype=np.int64) * HOUR_NS,
        symbols=np.array(["EURUSD"] * n),
        sources=("synthetic.csv",),
    )
