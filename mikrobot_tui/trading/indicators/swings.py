"""Swing highs and lows: fractals of a configured width, reported where they are confirmed.

A bar p is a swing high of width w when its high is strictly above the highs of the w bars
before it and at least as high as the highs of the w bars after it (a swing low: its low
strictly below the w before, at most the w after). Of a run of equal highs only the first bar
counts, once: a double top is one swing, not none (strict on both sides) and not two (loose on
both sides). Width 2 is Bill Williams' fractal.

A swing is only known w bars after its pivot, when the last of the bars after it has closed:
the outputs carry the pivot's price at bar p + w (the bar that confirms it) and NaN elsewhere,
so a backtest never sees a swing before a live strategy could. The first 2 * w bars can
confirm nothing.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from mikrobot_tui.trading.indicators._core import Series, check_finite, check_period, finite_array


def swings(high: Series, low: Series, width: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(swing_high, swing_low): the pivot's high (low) at the bar confirming it, NaN elsewhere."""
    w = check_period(width, "width")
    h = finite_array(high, "high")
    lo = finite_array(low, "low")
    if h.shape != lo.shape:
        raise ValueError(f"high, low lengths differ: {h.shape}, {lo.shape}")
    size = h.shape[0]
    swing_high, swing_low = np.full(size, np.nan), np.full(size, np.nan)
    m = size - 2 * w  # bars with w bars on each side
    if m <= 0:
        return swing_high, swing_low
    hc, lc = h[w : w + m], lo[w : w + m]
    is_high = np.ones(m, dtype=bool)
    is_low = np.ones(m, dtype=bool)
    for j in range(1, w + 1):
        is_high &= (hc > h[w - j : w - j + m]) & (hc >= h[w + j : w + j + m])
        is_low &= (lc < lo[w - j : w - j + m]) & (lc <= lo[w + j : w + j + m])
    swing_high[2 * w :] = np.where(is_high, hc, np.nan)
    swing_low[2 * w :] = np.where(is_low, lc, np.nan)
    return swing_high, swing_low


class StreamingSwings:
    """Swings one bar at a time: `update` returns (swing_high, swing_low), each the price of a
    swing this bar confirms or None. `last_high` and `last_low` keep the latest confirmed ones
    and `last_high_index` / `last_low_index` their pivot bars (0-based counts of bars fed)."""

    __slots__ = (
        "_count",
        "_highs",
        "_lows",
        "last_high",
        "last_high_index",
        "last_low",
        "last_low_index",
        "width",
    )

    def __init__(self, width: int = 2) -> None:
        self.width = check_period(width, "width")
        self._highs: deque[float] = deque(maxlen=2 * self.width + 1)
        self._lows: deque[float] = deque(maxlen=2 * self.width + 1)
        self._count = 0
        self.last_high: float | None = None
        self.last_low: float | None = None
        self.last_high_index: int | None = None
        self.last_low_index: int | None = None

    @property
    def count(self) -> int:
        return self._count

    def update(self, high: float, low: float) -> tuple[float | None, float | None]:
        hi = check_finite(high, "high")
        lo = check_finite(low, "low")
        highs, lows = self._highs, self._lows
        highs.append(hi)
        lows.append(lo)
        self._count += 1
        if len(highs) < highs.maxlen:  # type: ignore[operator]
            return None, None
        w = self.width
        hc, lc = highs[w], lows[w]
        is_high = is_low = True
        for j in range(1, w + 1):
            is_high = is_high and hc > highs[w - j] and hc >= highs[w + j]
            is_low = is_low and lc < lows[w - j] and lc <= lows[w + j]
        pivot = self._count - 1 - w
        if is_high:
            self.last_high, self.last_high_index = hc, pivot
        if is_low:
            self.last_low, self.last_low_index = lc, pivot
        return (hc if is_high else None), (lc if is_low else None)
