"""Momentum: Wilder's RSI, as an array and streaming."""

from __future__ import annotations

import numpy as np

from mikrobot_tui.trading.indicators._core import (
    Series,
    Streaming,
    check_finite,
    check_period,
    finite_array,
    wilder_step,
)

FLAT_RSI = 50.0
"""RSI where the average gain and loss are both zero (a flat market). TA-Lib returns 0, which
reads as deeply oversold and would make a reversion strategy buy a dead market; we return the
neutral 50. TA-Lib also calls any gain + loss under 1e-8 zero, which misreads coins priced in
millionths; we test for exactly zero."""


def _rsi_of(gain: float, loss: float) -> float:
    total = gain + loss
    return 100.0 * (gain / total) if total != 0.0 else FLAT_RSI


def rsi(close: Series, n: int = 14) -> np.ndarray:
    """RSI(n), TA-Lib's: NaN for indices < n; at index n the simple means of the first n gains
    and losses (changes 1..n); Wilder smoothing after, avg = (avg * (n - 1) + x) / n;
    RSI = 100 * avg_gain / (avg_gain + avg_loss). A strictly rising series gives 100, a flat
    window FLAT_RSI (50; TA-Lib gives 0)."""
    n = check_period(n)
    x = finite_array(close, "close")
    size = x.shape[0]
    out = np.full(size, np.nan)
    if size < n + 1:
        return out
    xs = x.tolist()
    gain = loss = 0.0
    for i in range(1, n + 1):
        d = xs[i] - xs[i - 1]
        if d < 0:
            loss -= d
        else:
            gain += d
    gain, loss = gain / n, loss / n
    out[n] = _rsi_of(gain, loss)
    for i in range(n + 1, size):
        d = xs[i] - xs[i - 1]
        gain = wilder_step(gain, d if d > 0 else 0.0, n)
        loss = wilder_step(loss, -d if d < 0 else 0.0, n)
        out[i] = _rsi_of(gain, loss)
    return out


class StreamingRSI(Streaming):
    """RSI(n) one close at a time; `update` returns None for the first n closes."""

    __slots__ = ("_count", "_gain", "_loss", "_prev", "n", "value")

    def __init__(self, n: int = 14) -> None:
        self.n = check_period(n)
        self._count = 0
        self._gain = self._loss = 0.0
        self._prev: float | None = None
        self.value: float | None = None

    def update(self, close: float) -> float | None:
        x = check_finite(close, "close")
        prev, self._prev = self._prev, x
        self._count += 1
        if prev is None:
            return None
        d = x - prev
        n = self.n
        if self.value is not None:
            self._gain = wilder_step(self._gain, d if d > 0 else 0.0, n)
            self._loss = wilder_step(self._loss, -d if d < 0 else 0.0, n)
        else:
            if d < 0:
                self._loss -= d
            else:
                self._gain += d
            if self._count < n + 1:
                return None
            self._gain, self._loss = self._gain / n, self._loss / n
        self.value = _rsi_of(self._gain, self._loss)
        return self.value
