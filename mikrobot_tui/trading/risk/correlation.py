"""How alike two symbols move: the correlation of their recent returns."""

from __future__ import annotations

import numpy as np

MIN_CORRELATION_POINTS = 10  # fewer common returns than this: the pair is not judged


def correlation(a: np.ndarray, b: np.ndarray, window: int) -> float | None:
    """Pearson correlation of the last `window` returns both series share (aligned at the end).

    Pairs with a NaN are dropped; None with fewer than MIN_CORRELATION_POINTS left or a flat
    series (no correlation to speak of).
    """
    n = min(len(a), len(b), window)
    x = np.asarray(a[len(a) - n :], dtype=float)
    y = np.asarray(b[len(b) - n :], dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) < MIN_CORRELATION_POINTS or x.std() == 0 or y.std() == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])
