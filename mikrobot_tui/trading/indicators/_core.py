"""What every indicator shares: input checks and TA-Lib's recursive steps."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

Series = Sequence[float] | np.ndarray


def check_period(n: int, what: str = "period", minimum: int = 1) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < minimum:
        raise ValueError(f"{what} must be an integer >= {minimum}, got {n!r}")
    return int(n)


def finite_array(values: Series, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be one-dimensional, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        bad = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise ValueError(f"{what}[{bad}] is {arr[bad]!r}: indicators need finite values")
    return arr


def check_finite(value: float, what: str) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{what} is {value!r}: indicators need finite values")
    return value


def same_length(**arrays: np.ndarray) -> None:
    shapes = {name: a.shape for name, a in arrays.items()}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise ValueError(f"{', '.join(shapes)} lengths differ: {listed}")


def hlc(high: Series, low: Series, close: Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    h = finite_array(high, "high")
    lo = finite_array(low, "low")
    c = finite_array(close, "close")
    same_length(high=h, low=lo, close=c)
    return h, lo, c


def nonnegative_volume(volume: Series) -> np.ndarray:
    v = finite_array(volume, "volume")
    if (v < 0).any():
        bad = int(np.flatnonzero(v < 0)[0])
        raise ValueError(f"volume[{bad}] is {v[bad]!r}: volume cannot be negative")
    return v


def check_volume(value: float) -> float:
    value = check_finite(value, "volume")
    if value < 0:
        raise ValueError(f"volume is {value!r}: volume cannot be negative")
    return value


def ema_step(prev: float, x: float, k: float) -> float:
    # TA-Lib's form: ((x - prev) * k) + prev
    return prev + k * (x - prev)


def wilder_step(prev: float, x: float, n: int) -> float:
    # TA-Lib's form: (prev * (n - 1) + x) / n
    return (prev * (n - 1) + x) / n


def true_range_of(high: float, low: float, prev_close: float) -> float:
    return max(high - low, abs(high - prev_close), abs(low - prev_close))


def window_sums(x: np.ndarray, n: int) -> np.ndarray:
    """Sums of every full window of n values (len(x) - n + 1 of them), each added oldest first,
    one vector add per position in the window: memory of one output, no cumsum drift."""
    m = x.shape[0] - n + 1
    total = np.zeros(m)
    for j in range(n):
        total += x[j : j + m]
    return total


class Streaming:
    """What every streaming indicator answers besides its `update`: whether it has a value
    yet and how many inputs it has seen. Subclasses keep `value` and `_count` in their own
    `__slots__`."""

    __slots__ = ()
    value: object
    _count: int

    @property
    def ready(self) -> bool:
        return self.value is not None

    @property
    def count(self) -> int:
        """How many values have been fed."""
        return self._count
