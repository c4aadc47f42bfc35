"""Volatility: true range, ATR and Bollinger bands, as arrays and streaming."""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from mikrobot_tui.trading.indicators._core import (
    Series,
    Streaming,
    check_finite,
    check_period,
    finite_array,
    hlc,
    true_range_of,
    wilder_step,
    window_sums,
)


def true_range(high: Series, low: Series, close: Series) -> np.ndarray:
    """True range per bar; NaN at index 0, which has no previous close (TA-Lib's TRANGE)."""
    h, lo, c = hlc(high, low, close)
    out = np.full(h.shape[0], np.nan)
    if h.shape[0] > 1:
        prev = c[:-1]
        out[1:] = np.maximum.reduce([h[1:] - lo[1:], np.abs(h[1:] - prev), np.abs(lo[1:] - prev)])
    return out


def atr(high: Series, low: Series, close: Series, n: int = 14) -> np.ndarray:
    """ATR(n), TA-Lib style: NaN for indices < n; ATR[n] = mean(TR[1..n]); Wilder after."""
    n = check_period(n)
    h, lo, c = hlc(high, low, close)
    size = h.shape[0]
    out = np.full(size, np.nan)
    if size < n + 1:
        return out
    hl, ll, cl = h.tolist(), lo.tolist(), c.tolist()
    total = 0.0
    for i in range(1, n + 1):
        total += true_range_of(hl[i], ll[i], cl[i - 1])
    prev = total / n
    out[n] = prev
    for i in range(n + 1, size):
        prev = wilder_step(prev, true_range_of(hl[i], ll[i], cl[i - 1]), n)
        out[i] = prev
    return out


def _check_k(k: float) -> float:
    k = check_finite(k, "k")
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k!r}")
    return k


def bollinger(
    close: Series, n: int = 20, k: float = 2.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bollinger bands (upper, middle, lower): middle = SMA(n), bands at k population standard
    deviations (divided by n, as TA-Lib's BBANDS; pandas' sample std is wider); NaN for
    indices < n - 1. The deviation is taken around the mean (two passes), not from running
    sums of squares, so it stays exact at any price level."""
    n = check_period(n)
    k = _check_k(k)
    x = finite_array(close, "close")
    size = x.shape[0]
    upper, middle, lower = (np.full(size, np.nan) for _ in range(3))
    if size < n:
        return upper, middle, lower
    m = size - n + 1
    mean = window_sums(x, n) / n
    squares = np.zeros(m)
    for j in range(n):
        d = x[j : j + m] - mean
        squares += d * d
    width = k * np.sqrt(squares / n)
    middle[n - 1 :] = mean
    upper[n - 1 :] = mean + width
    lower[n - 1 :] = mean - width
    return upper, middle, lower


class StreamingATR(Streaming):
    """ATR(n) one bar at a time; `update` returns None for the first n bars (indices 0..n-1)."""

    __slots__ = ("_count", "_prev_close", "_sum", "n", "value")

    def __init__(self, n: int = 14) -> None:
        self.n = check_period(n)
        self._count = 0
        self._sum = 0.0
        self._prev_close: float | None = None
        self.value: float | None = None

    @property
    def count(self) -> int:
        """How many bars have been fed."""
        return self._count

    def update(self, high: float, low: float, close: float) -> float | None:
        high = check_finite(high, "high")
        low = check_finite(low, "low")
        close = check_finite(close, "close")
        prev_close = self._prev_close
        self._prev_close = close
        self._count += 1
        if prev_close is None:  # the first bar: no true range (TA-Lib skips it)
            return None
        tr = true_range_of(high, low, prev_close)
        if self.value is not None:
            self.value = wilder_step(self.value, tr, self.n)
        else:
            self._sum += tr
            if self._count == self.n + 1:
                self.value = self._sum / self.n
        return self.value


class StreamingBollinger(Streaming):
    """Bollinger(n, k) one close at a time: `update` returns (upper, middle, lower), or None
    for the first n - 1 closes. A ring buffer of the last n closes, summed in the array form's
    order (two passes of n additions per bar: constant in the length of the series)."""

    __slots__ = ("_buf", "_count", "k", "n", "value")

    def __init__(self, n: int = 20, k: float = 2.0) -> None:
        self.n = check_period(n)
        self.k = _check_k(k)
        self._buf: deque[float] = deque(maxlen=self.n)
        self._count = 0
        self.value: tuple[float, float, float] | None = None

    def update(self, close: float) -> tuple[float, float, float] | None:
        x = check_finite(close, "close")
        buf = self._buf
        buf.append(x)
        self._count += 1
        if len(buf) < self.n:
            return None
        total = 0.0
        for v in buf:
            total += v
        mean = total / self.n
        squares = 0.0
        for v in buf:
            d = v - mean
            squares += d * d
        width = self.k * math.sqrt(squares / self.n)
        self.value = (mean + width, mean, mean - width)
        return self.value
