"""Time for every component: the wall clock live, a clock driven by the data in replay.

No component calls time.time() directly, so a replay is deterministic (invariant 1).
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ns(self) -> int: ...


class LiveClock:
    def now_ns(self) -> int:
        return time.time_ns()


class ReplayClock:
    """Advanced by the engine to each processed tick's event time; never goes backwards."""

    def __init__(self, start_ns: int = 0) -> None:
        self._now = start_ns

    def now_ns(self) -> int:
        return self._now

    def advance_to(self, ts_ns: int) -> None:
        if ts_ns > self._now:
            self._now = ts_ns


class FrozenClock:
    """A clock that stands still: snapshot tests and fixed screens."""

    def __init__(self, ts_ns: int) -> None:
        self._now = ts_ns

    def now_ns(self) -> int:
        return self._now
