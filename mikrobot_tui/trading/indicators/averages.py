"""Moving averages: SMA, EMA and MACD, as arrays and streaming."""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from mikrobot_tui.trading.indicators._core import (
    Series,
    Streaming,
    check_finite,
    check_period,
    ema_step,
    finite_array,
    window_sums,
)


def sma(x: Series, n: int) -> np.ndarray:
    """SMA(n): the mean of the last n values; NaN for indices < n - 1."""
    n = check_period(n)
    arr = finite_array(x, "values")
    out = np.full(arr.shape[0], np.nan)
    if arr.shape[0] >= n:
        out[n - 1 :] = window_sums(arr, n) / n
    return out


def ema(x: Series, n: int) -> np.ndarray:
    """EMA(n) of `x`, TA-Lib style: NaN for indices < n - 1, SMA seed at n - 1."""
    n = check_period(n)
    arr = finite_array(x, "values")
    out = np.full(arr.shape[0], np.nan)
    if arr.shape[0] < n:
        return out
    k = 2.0 / (n + 1)
    total = 0.0
    for v in arr[:n].tolist():
        total += v
    prev = total / n
    out[n - 1] = prev
    for i, v in enumerate(arr[n:].tolist(), start=n):
        prev = ema_step(prev, v, k)
        out[i] = prev
    return out


def _macd_periods(fast: int, slow: int, signal: int) -> tuple[int, int, int]:
    fast = check_period(fast, "fast period")
    slow = check_period(slow, "slow period")
    signal = check_period(signal, "signal period")
    if fast >= slow:
        raise ValueError(f"the fast period must be shorter than the slow one: {fast} >= {slow}")
    return fast, slow, signal


def macd(
    close: Series, fast: int = 12, slow: int = 26, signal: int = 9
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TA-Lib's MACD: (macd, signal, hist), all NaN for indices < slow + signal - 2 (33).

    Both EMAs start at index slow - 1: the slow one seeded with the mean of x[0..slow-1], the
    fast one with the mean of x[slow-fast..slow-1] (not at index fast - 1 as a separate EMA(12)
    would be, so early values differ from EMA(12) - EMA(26)). The signal is the EMA(signal) of
    the MACD line, seeded with the mean of its first `signal` values; hist = macd - signal.
    """
    fast, slow, signal = _macd_periods(fast, slow, signal)
    x = finite_array(close, "close")
    size = x.shape[0]
    line = np.full(size, np.nan)
    nan = np.full(size, np.nan)
    if size < slow + signal - 1:
        return nan, nan.copy(), nan.copy()
    kf, ks = 2.0 / (fast + 1), 2.0 / (slow + 1)
    xs = x.tolist()
    slow_sum = fast_sum = 0.0
    for i in range(slow):
        slow_sum += xs[i]
        if i >= slow - fast:
            fast_sum += xs[i]
    f, s = fast_sum / fast, slow_sum / slow
    line[slow - 1] = f - s
    for i in range(slow, size):
        f = ema_step(f, xs[i], kf)
        s = ema_step(s, xs[i], ks)
        line[i] = f - s
    sig = np.full(size, np.nan)
    sig[slow - 1 :] = ema(line[slow - 1 :], signal)
    first = slow + signal - 2
    line[:first] = np.nan
    return line, sig, line - sig


class StreamingSMA(Streaming):
    """SMA(n) one value at a time; `update` returns None until n values have been seen.

    A ring buffer of the last n values and a running sum, re-added exactly (math.fsum) every n
    values so rounding cannot accumulate over a long run.
    """

    __slots__ = ("_buf", "_count", "_sum", "n", "value")

    def __init__(self, n: int) -> None:
        self.n = check_period(n)
        self._buf: deque[float] = deque(maxlen=self.n)
        self._sum = 0.0
        self._count = 0
        self.value: float | None = None

    def update(self, x: float) -> float | None:
        x = check_finite(x, "value")
        buf = self._buf
        full = len(buf) == self.n
        old = buf[0] if full else 0.0
        buf.append(x)
        self._count += 1
        if self._count % self.n == 0:
            self._sum = math.fsum(buf)
        else:
            self._sum += x - old
        if full or self._count == self.n:
            self.value = self._sum / self.n
        return self.value


class StreamingEMA(Streaming):
    """EMA(n) one value at a time; `update` returns None until n values have been seen."""

    __slots__ = ("_count", "_k", "_sum", "n", "value")

    def __init__(self, n: int) -> None:
        self.n = check_period(n)
        self._k = 2.0 / (self.n + 1)
        self._count = 0
        self._sum = 0.0
        self.value: float | None = None

    def update(self, x: float) -> float | None:
        x = check_finite(x, "value")
        self._count += 1
        if self.value is not None:
            self.value = ema_step(self.value, x, self._k)
        else:
            self._sum += x
            if self._count == self.n:
                self.value = self._sum / self.n
        return self.value


class StreamingMACD(Streaming):
    """TA-Lib's MACD one close at a time: `update` returns (macd, signal, hist), or None for
    the first slow + signal - 2 closes, exactly as the array form."""

    __slots__ = (
        "_count",
        "_fast",
        "_fast_sum",
        "_kf",
        "_ks",
        "_signal",
        "_slow",
        "_slow_sum",
        "fast",
        "signal",
        "slow",
        "value",
    )

    def __init__(self, fast: int = 12, slow: int = 26, signal: int = 9) -> None:
        self.fast, self.slow, self.signal = _macd_periods(fast, slow, signal)
        self._kf, self._ks = 2.0 / (self.fast + 1), 2.0 / (self.slow + 1)
        self._count = 0
        self._fast_sum = self._slow_sum = 0.0
        self._fast: float | None = None
        self._slow: float | None = None
        self._signal = StreamingEMA(self.signal)
        self.value: tuple[float, float, float] | None = None

    def update(self, close: float) -> tuple[float, float, float] | None:
        x = check_finite(close, "close")
        self._count += 1
        if self._slow is None or self._fast is None:
            self._slow_sum += x
            if self._count > self.slow - self.fast:
                self._fast_sum += x
            if self._count < self.slow:
                return None
            self._fast, self._slow = self._fast_sum / self.fast, self._slow_sum / self.slow
        else:
            self._fast = ema_step(self._fast, x, self._kf)
            self._slow = ema_step(self._slow, x, self._ks)
        line = self._fast - self._slow
        sig = self._signal.update(line)
        if sig is not None:
            self.value = (line, sig, line - sig)
        return self.value
