"""What keeps the WebSocket manager (data/ws.py) polite to the venue and its stream clean.

- `Backoff`: exponential backoff with full jitter (a random wait in [0, min(cap, base x 2^n)]),
  reset once a connection has been stable for a while.
- `AttemptLimiter`: at most `limit` connection attempts in any `window_s` (Binance: 300 per 5
  minutes per IP), a sliding window of the attempts' times.
- `Pacer`: at most `rate` control messages per second on one connection (Binance counts pings,
  pongs and subscriptions against 5 incoming messages per second).
- `SequenceGate`: a frame whose per-stream sequence number is not above the highest one seen
  is a frame delivered already, by the other connection of an overlap: it is dropped.

Every one is bounded (a deque of at most `limit` times, one entry per stream) and takes its
clock and random source as parameters, so tests drive them without waiting.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable, Hashable

Clock = Callable[[], float]  # monotonic seconds


class Backoff:
    """Full-jitter exponential backoff: the n-th wait is uniform in [0, min(cap, base x 2^n)]."""

    def __init__(
        self, base_s: float = 0.5, cap_s: float = 30.0, rand: Callable[[], float] = random.random
    ) -> None:
        if base_s <= 0 or cap_s < base_s:
            raise ValueError("backoff needs 0 < base <= cap")
        self.base_s, self.cap_s = base_s, cap_s
        self.attempt = 0
        self._rand = rand

    def ceiling(self) -> float:
        """The longest the next wait can be."""
        return min(self.cap_s, self.base_s * 2 ** min(self.attempt, 60))

    def next(self) -> float:
        wait = self._rand() * self.ceiling()
        self.attempt += 1
        return wait

    def reset(self) -> None:
        self.attempt = 0


class AttemptLimiter:
    """At most `limit` attempts in any window of `window_s` seconds (shared by connections)."""

    def __init__(self, limit: int = 300, window_s: float = 300.0, clock: Clock = time.monotonic):
        if limit < 1 or window_s <= 0:
            raise ValueError("an attempt limiter needs limit >= 1 and window_s > 0")
        self.limit, self.window_s = limit, window_s
        self._times: deque[float] = deque(maxlen=limit)
        self._clock = clock

    def wait_s(self) -> float:
        """How long to wait before the next attempt is allowed (0: now)."""
        if len(self._times) < self.limit:
            return 0.0
        return max(0.0, self._times[0] + self.window_s - self._clock())

    def record(self) -> None:
        self._times.append(self._clock())

    def __len__(self) -> int:
        now = self._clock()
        return sum(1 for t in self._times if t > now - self.window_s)


class Pacer:
    """Spaces control messages at least 1 / `rate` seconds apart (the first goes at once)."""

    def __init__(self, rate: float, clock: Clock = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("a pacer needs a positive rate")
        self.gap_s = 1.0 / rate
        self._next = float("-inf")
        self._clock = clock

    def reserve(self) -> float:
        """Book the next slot; how long to wait before sending in it."""
        now = self._clock()
        at = max(now, self._next)
        self._next = at + self.gap_s
        return at - now


class SequenceGate:
    """Per stream, only frames with a sequence number above the highest seen pass.

    Two connections of a planned overlap deliver the same frames; the second may lag behind
    the first. A stream whose frames keep being refused for `reset_after` (at least
    `reset_frames` of them in a row over `reset_after_ns`) has restarted its numbering (a venue
    that reset after maintenance): its next frame is taken as the new start, so a stream is
    never silenced for good. One entry per stream: bounded by the streams subscribed.
    """

    __slots__ = ("_high", "_refused", "refused", "reset_after_ns", "reset_frames", "resets")

    def __init__(self, reset_after_ns: int = 10_000_000_000, reset_frames: int = 50) -> None:
        self._high: dict[Hashable, int] = {}
        self._refused: dict[Hashable, tuple[int, int]] = {}  # key -> (count, first refusal)
        self.reset_after_ns = reset_after_ns
        self.reset_frames = reset_frames
        self.refused = 0  # frames dropped as already delivered
        self.resets = 0

    def admit(self, key: Hashable, seq: int, now_ns: int) -> bool:
        high = self._high.get(key)
        if high is None or seq > high:
            self._high[key] = seq
            if self._refused:
                self._refused.pop(key, None)
            return True
        count, first = self._refused.get(key, (0, now_ns))
        if count + 1 >= self.reset_frames and now_ns - first >= self.reset_after_ns:
            self._refused.pop(key, None)
            self._high[key] = seq
            self.resets += 1
            return True
        self._refused[key] = (count + 1, first)
        self.refused += 1
        return False

    def high(self, key: Hashable) -> int | None:
        return self._high.get(key)
