"""How each connection of a feed is doing, in the figures an operator checks first.

Every feed reports one `FeedHealth` per connection (a WebSocket, an MT5 terminal, the simulated
market): its state, how often it reconnected, how old its last message is, messages per second,
feed latency (receive time minus the venue's event time) at the median and the 99th percentile,
and how many quotes were conflated away under overload. `HealthMeter` keeps those figures for
one connection with bounded memory; the read side stores them in the `feeds` table and the
cockpit and `mikrobot status --json` show them.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

CONNECTING, LIVE, STALE, DOWN, STOPPED = "CONNECTING", "LIVE", "STALE", "DOWN", "STOPPED"
_LATENCIES = 1024  # the newest latency samples kept for the percentiles
_RATE_WINDOW_S = 10.0


@dataclass(frozen=True, slots=True)
class FeedHealth:
    name: str  # the connection, e.g. "binance#1"
    venue: str  # binance, mt5, sim or replay
    state: str  # CONNECTING, LIVE, STALE, DOWN or STOPPED
    reconnects: int
    last_message_ts: int | None  # wall clock, ns; None before the first message
    msgs_per_s: float
    latency_ms_p50: float | None
    latency_ms_p99: float | None
    conflated: int
    detail: str = ""  # the last problem in words (a refused handshake, an IPC error)


class HealthMeter:
    """The figures of one connection, updated by whoever drives it."""

    def __init__(self, name: str, venue: str, wall: Callable[[], int] = time.time_ns) -> None:
        self.name, self.venue = name, venue
        self.state = CONNECTING
        self.reconnects = 0
        self.conflated = 0
        self.detail = ""
        self.last_message_ts: int | None = None
        self._wall = wall
        self._latency_ms: deque[float] = deque(maxlen=_LATENCIES)
        self._arrivals: deque[tuple[int, int]] = deque()  # (wall second, messages in it)

    def message(self, n: int = 1, latency_ns: int | None = None, now_ns: int | None = None) -> None:
        """`n` messages arrived now; `latency_ns` is one of them's receive minus event time."""
        now = self._wall() if now_ns is None else now_ns
        self.last_message_ts = now
        second = now // 1_000_000_000
        if self._arrivals and self._arrivals[-1][0] == second:
            self._arrivals[-1] = (second, self._arrivals[-1][1] + n)
        else:
            self._arrivals.append((second, n))
            while self._arrivals and self._arrivals[0][0] < second - _RATE_WINDOW_S:
                self._arrivals.popleft()
        if latency_ns is not None:
            self._latency_ms.append(latency_ns / 1e6)

    def latencies(self, values_ns: np.ndarray) -> None:
        """Several latency samples at once (a batch of ticks)."""
        self._latency_ms.extend((values_ns[-_LATENCIES:] / 1e6).tolist())

    def snapshot(self, now_ns: int | None = None) -> FeedHealth:
        now = self._wall() if now_ns is None else now_ns
        second = now // 1_000_000_000
        recent = sum(n for s, n in self._arrivals if s >= second - _RATE_WINDOW_S)
        p50 = p99 = None
        if self._latency_ms:
            p50, p99 = (float(x) for x in np.percentile(list(self._latency_ms), [50, 99]))
        return FeedHealth(
            self.name,
            self.venue,
            self.state,
            self.reconnects,
            self.last_message_ts,
            recent / _RATE_WINDOW_S,
            p50,
            p99,
            self.conflated,
            self.detail,
        )
