"""The recent bars of every symbol on several timeframes, for strategies that look across them.

A strategy on M1 that wants the H1 trend asks `history.last("EURUSD", "H1", 50)` and gets
numpy arrays (ts_open, open, high, low, close, volume), oldest first, ready for the array
indicators. Each (symbol, timeframe) keeps its last `capacity` bars in a ring stored twice
over, so the last n bars are always one contiguous slice: `last` is two copies, whatever n.

Bars arrive closed, each timeframe in time order (the corridor's candles close them); a bar
at or before the newest of its (symbol, timeframe) is refused, so nothing is counted twice.
"""

from __future__ import annotations

import numpy as np

from mikrobot_tui.domain.market import H1, M15, TIMEFRAMES, Bar

__all__ = ["H1", "HISTORY_TIMEFRAMES", "M15", "BarHistory"]

HISTORY_TIMEFRAMES = TIMEFRAMES  # the history keeps whatever the corridor builds

Columns = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


class _Ring:
    __slots__ = ("count", "prices", "ts")

    def __init__(self, capacity: int) -> None:
        self.count = 0
        self.ts = np.zeros(2 * capacity, dtype=np.int64)
        # a row per bar (open, high, low, close, volume): a push is one row assignment
        self.prices = np.zeros((2 * capacity, 5))


class BarHistory:
    """The last `capacity` closed bars per (symbol, timeframe), for M1, M5, M15 and H1."""

    def __init__(self, capacity: int = 500) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity must be an integer >= 1, got {capacity!r}")
        self.capacity = capacity
        self._rings: dict[tuple[str, str], _Ring] = {}

    def push(self, bar: Bar) -> None:
        """Keep one closed bar; the oldest of its (symbol, timeframe) goes when full."""
        key = (bar.symbol, bar.timeframe)
        ring = self._rings.get(key)
        if ring is None:
            _check_timeframe(bar.timeframe)
            ring = self._rings[key] = _Ring(self.capacity)
        cap = self.capacity
        if ring.count:
            newest = int(ring.ts[(ring.count - 1) % cap])
            if bar.ts_open <= newest:
                raise ValueError(
                    f"{bar.symbol} {bar.timeframe} bar at {bar.ts_open} is not after the newest"
                    f" kept ({newest}): bars must come closed and in time order"
                )
        slot = ring.count % cap
        ring.ts[slot] = ring.ts[slot + cap] = bar.ts_open
        row = bar.open, bar.high, bar.low, bar.close, bar.volume
        ring.prices[slot] = row
        ring.prices[slot + cap] = row
        ring.count += 1

    def count(self, symbol: str, timeframe: str) -> int:
        """How many bars of (symbol, timeframe) are kept (at most `capacity`)."""
        _check_timeframe(timeframe)
        ring = self._rings.get((symbol, timeframe))
        return 0 if ring is None else min(ring.count, self.capacity)

    def last(self, symbol: str, timeframe: str, n: int) -> Columns:
        """The last n bars as (ts_open, open, high, low, close, volume), oldest first; fewer
        when fewer are kept (none yet: empty arrays). The arrays are copies: later pushes do
        not change them."""
        _check_timeframe(timeframe)
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be an integer >= 0, got {n!r}")
        ring = self._rings.get((symbol, timeframe))
        if ring is None:
            return np.zeros(0, dtype=np.int64), *(np.zeros(0) for _ in range(5))  # type: ignore[return-value]
        cap = self.capacity
        n = min(n, ring.count, cap)
        end = ring.count % cap + cap
        ts = ring.ts[end - n : end].copy()
        o, h, lo, c, v = ring.prices[end - n : end].T.copy()
        return ts, o, h, lo, c, v


def _check_timeframe(timeframe: str) -> None:
    if timeframe not in HISTORY_TIMEFRAMES:
        raise ValueError(
            f"timeframe must be one of {', '.join(HISTORY_TIMEFRAMES)}, got {timeframe!r}"
        )
