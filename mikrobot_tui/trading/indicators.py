"""Indicators with TA-Lib's definitions, as array functions and as streaming classes.

We follow TA-Lib because it is the reference traders check against (see CONVENTIONS.md):

- EMA(n): alpha = 2 / (n + 1), seeded at index n - 1 with the simple mean of the first n
  values; earlier outputs are NaN. pandas `ewm(adjust=False)` and `ta` seed with the first
  value instead, so their early values differ.
- ATR(n): Wilder smoothing of the true range. The first bar has no previous close, so its true
  range is skipped: the first ATR is at index n, the mean of TR[1..n]; then
  ATR[i] = (ATR[i-1] * (n - 1) + TR[i]) / n. `ta` includes the first bar and fills the warm-up
  with 0; we fill it with NaN.

The array function and the streaming class of an indicator run the same arithmetic in the same
order, so they give bit-identical numbers: a strategy fed bar by bar agrees with a backtest that
computes the whole column at once. Inputs must be finite (the quality monitor drops bad ticks
upstream); a NaN or infinity raises ValueError rather than poisoning every later value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["StreamingATR", "StreamingEMA", "atr", "ema", "true_range"]


def _check_period(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"period must be an integer >= 1, got {n!r}")
    return int(n)


def _finite_array(values: Sequence[float] | np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be one-dimensional, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        bad = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise ValueError(f"{what}[{bad}] is {arr[bad]!r}: indicators need finite values")
    return arr


def _check_finite(value: float, what: str) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{what} is {value!r}: indicators need finite values")
    return value


def _ema_step(prev: float, x: float, k: float) -> float:
    # TA-Lib's form: prev + k * (x - prev)
    return prev + k * (x - prev)


def _wilder_step(prev: float, x: float, n: int) -> float:
    # TA-Lib's form: (prev * (n - 1) + x) / n
    return (prev * (n - 1) + x) / n


def _true_range(high: float, low: float, prev_close: float) -> float:
    return max(high - low, abs(high - prev_close), abs(low - prev_close))


def ema(values: Sequence[float] | np.ndarray, n: int) -> np.ndarray:
    """EMA(n) of `values`, TA-Lib style: NaN for indices < n - 1, SMA seed at n - 1."""
    n = _check_period(n)
    x = _finite_array(values, "values")
    out = np.full(x.shape[0], np.nan)
    if x.shape[0] < n:
        return out
    k = 2.0 / (n + 1)
    total = 0.0
    for v in x[:n].tolist():
        total += v
    prev = total / n
    out[n - 1] = prev
    tail = x[n:].tolist()
    for i, v in enumerate(tail, start=n):
        prev = _ema_step(prev, v, k)
        out[i] = prev
    return out


def true_range(
    high: Sequence[float] | np.ndarray,
    low: Sequence[float] | np.ndarray,
    close: Sequence[float] | np.ndarray,
) -> np.ndarray:
    """True range per bar; NaN at index 0, which has no previous close (TA-Lib's TRANGE)."""
    h, lo, c = _hlc(high, low, close)
    out = np.full(h.shape[0], np.nan)
    if h.shape[0] > 1:
        prev = c[:-1]
        out[1:] = np.maximum.reduce([h[1:] - lo[1:], np.abs(h[1:] - prev), np.abs(lo[1:] - prev)])
    return out


def _hlc(
    high: Sequence[float] | np.ndarray,
    low: Sequence[float] | np.ndarray,
    close: Sequence[float] | np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    h = _finite_array(high, "high")
    lo = _finite_array(low, "low")
    c = _finite_array(close, "close")
    if not (h.shape == lo.shape == c.shape):
        raise ValueError(f"high, low, close lengths differ: {h.shape}, {lo.shape}, {c.shape}")
    return h, lo, c


def atr(
    high: Sequence[float] | np.ndarray,
    low: Sequence[float] | np.ndarray,
    close: Sequence[float] | np.ndarray,
    n: int,
) -> np.ndarray:
    """ATR(n), TA-Lib style: NaN for indices < n; ATR[n] = mean(TR[1..n]); Wilder after."""
    n = _check_period(n)
    h, lo, c = _hlc(high, low, close)
    size = h.shape[0]
    out = np.full(size, np.nan)
    if size < n + 1:
        return out
    hl, ll, cl = h.tolist(), lo.tolist(), c.tolist()
    total = 0.0
    for i in range(1, n + 1):
        total += _true_range(hl[i], ll[i], cl[i - 1])
    prev = total / n
    out[n] = prev
    for i in range(n + 1, size):
        prev = _wilder_step(prev, _true_range(hl[i], ll[i], cl[i - 1]), n)
        out[i] = prev
    return out


class StreamingEMA:
    """EMA(n) one value at a time; `update` returns None until n values have been seen."""

    __slots__ = ("_count", "_k", "_sum", "n", "value")

    def __init__(self, n: int) -> None:
        self.n = _check_period(n)
        self._k = 2.0 / (self.n + 1)
        self._count = 0
        self._sum = 0.0
        self.value: float | None = None

    @property
    def ready(self) -> bool:
        return self.value is not None

    @property
    def count(self) -> int:
        """How many values have been fed."""
        return self._count

    def update(self, x: float) -> float | None:
        x = _check_finite(x, "value")
        self._count += 1
        if self.value is not None:
            self.value = _ema_step(self.value, x, self._k)
        else:
            self._sum += x
            if self._count == self.n:
                self.value = self._sum / self.n
        return self.value


class StreamingATR:
    """ATR(n) one bar at a time; `update` returns None for the first n bars (indices 0..n-1)."""

    __slots__ = ("_count", "_prev_close", "_sum", "n", "value")

    def __init__(self, n: int) -> None:
        self.n = _check_period(n)
        self._count = 0
        self._sum = 0.0
        self._prev_close: float | None = None
        self.value: float | None = None

    @property
    def ready(self) -> bool:
        return self.value is not None

    @property
    def count(self) -> int:
        """How many bars have been fed."""
        return self._count

    def update(self, high: float, low: float, close: float) -> float | None:
        high = _check_finite(high, "high")
        low = _check_finite(low, "low")
        close = _check_finite(close, "close")
        prev_close = self._prev_close
        self._prev_close = close
        self._count += 1
        if prev_close is None:  # the first bar: no true range (TA-Lib skips it)
            return None
        tr = _true_range(high, low, prev_close)
        if self.value is not None:
            self.value = _wilder_step(self.value, tr, self.n)
        else:
            self._sum += tr
            if self._count == self.n + 1:
                self.value = self._sum / self.n
        return self.value
