"""The WebSocket manager: one module for every venue's streams, built on `websockets`.

python-binance's own socket manager is not used for streams: its read loop dies with more than
100 unread messages, it gives up after a few reconnects and it never reconnects a stream that
went silent. This manager:

- splits the streams over connections of at most `max_streams` each (Binance: 1024), keeping
  a bundle (one symbol's streams) on one connection; one `HealthMeter` per connection;
- connects through the venue's `Dialect` (the address, the subscribe messages, which frames
  are not market data) and subscribes again after every reconnect, pacing control messages
  (Binance counts pings, pongs and subscriptions against 5 incoming messages per second);
- reconnects for ever, with exponential backoff and full jitter (base 0.5 s, cap 30 s, reset
  once a connection has been stable for `stable_after_s`), failing over through the endpoints
  in order, and never more than 300 connection attempts in 5 minutes;
- answers pings (websockets answers protocol pings with the payload, as Binance asks; a
  dialect can answer application-level ones) and pings the server itself to notice a dead TCP
  connection;
- reconnects a connection silent for `stale_after_s`;
- meets the venue's cut (Binance closes every connection at 24 h) and a `serverShutdown`
  notice with a planned overlap: a second connection subscribes while the first still
  delivers, and the first is closed only once the second is subscribed and delivering (and a
  short grace, `overlap_s`, has let the first hand over what was already on its way). The
  second's frames are held back meanwhile, then handed on in order; the sink drops those it
  has seen with a `SequenceGate` (ws_limits.py), so there is neither a gap nor a duplicate;
- records every failure (a refused handshake, a dropped or stale connection) for the feed's
  circuit breaker (`take_failures`).

Frames are handed to the sink as text with their wall-clock receive time, one call each; the
sink returns the frame's latency (receive minus event time) when it has one, for the health
figures. Clock, wall clock, sleep, random source and connect are parameters for tests. Every
loop ends when the stop event is set.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from mikrobot_tui.data.feeds.health import (
    FeedHealth,
)
from mikrobot_tui.data.ws_limits import AttemptLimiter
from mikrobot_tui.data.ws_link import Link
from mikrobot_tui.data.ws_protocol import (
    PING,
    REPLY,
    SHUTDOWN,
    Connect,
    Control,
    Dialect,
    Sink,
    Sleep,
    WsSettings,
    wait_or_wake,
)

__all__ = ["PING", "REPLY", "SHUTDOWN", "Control", "Dialect", "WsManager", "WsSettings"]
_FAILURES = 1024  # failures kept for the breaker between two takes


class WsManager:
    def __init__(
        self,
        name: str,
        venue: str,
        dialect: Dialect,
        bundles: Sequence[Sequence[str]],
        settings: WsSettings,
        sink: Sink,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], int] = time.time_ns,
        sleep: Sleep = wait_or_wake,
        rand: Callable[[], float] = random.random,
        connect: Connect | None = None,
        attempts: AttemptLimiter | None = None,
    ) -> None:
        self.dialect, self.s, self.sink = dialect, settings, sink
        self._clock, self._wall, self._sleep, self._rand = clock, wall, sleep, rand
        self._connect = connect or self._default_connect
        if attempts is None:  # (a limiter with no attempt yet has length 0: not `or`)
            s = settings
            attempts = AttemptLimiter(s.attempts_per_window, s.attempt_window_s, clock)
        self.attempts = attempts
        self._failures: deque[tuple[int, str]] = deque(maxlen=_FAILURES)
        self._ids = itertools.count(1)
        self.slots: list[Link] = []
        self.slot_of_bundle: list[int] = []  # bundle index -> slot index
        group: list[str] = []
        for bundle in bundles:
            if len(bundle) > settings.max_streams:
                raise ValueError(f"a bundle of {len(bundle)} streams exceeds max_streams")
            if len(group) + len(bundle) > settings.max_streams:
                self._add_slot(name, venue, group)
                group = []
            group.extend(bundle)
            self.slot_of_bundle.append(len(self.slots))
        if group:
            self._add_slot(name, venue, group)

    def _add_slot(self, name: str, venue: str, streams: list[str]) -> None:
        self.slots.append(Link(f"{name}#{len(self.slots) + 1}", venue, streams, self))

    async def _default_connect(self, url: str) -> Any:
        from websockets.asyncio.client import connect

        s = self.s
        return await connect(
            url,
            open_timeout=s.open_timeout_s,
            ping_interval=s.ping_interval_s,
            ping_timeout=s.ping_interval_s,
            close_timeout=s.close_timeout_s,
            max_queue=s.max_queue,
            max_size=s.max_frame_bytes,
            compression=None,
        )

    # ---------------------------------------------------------------- what the feed asks

    def health(self) -> list[FeedHealth]:
        return [slot.meter.snapshot() for slot in self.slots]

    def take_failures(self) -> list[tuple[int, str]]:
        """(wall ns, reason) of every failure since the last call, oldest first."""
        out = list(self._failures)
        self._failures.clear()
        return out

    def rotate(self, slot: int = 0, reason: str = "requested") -> None:
        """Start a planned overlap reconnect of one connection now."""
        self.slots[slot].rotate_reason = reason
        self.slots[slot].wake.set()

    def conflated(self, slot: int, n: int) -> None:
        self.slots[slot].meter.conflated += n

    async def run(self, stop: asyncio.Event) -> None:
        """Keep every connection up until `stop` is set."""

        async def wake_on_stop() -> None:
            await stop.wait()
            for slot in self.slots:
                slot.wake.set()

        watcher = asyncio.create_task(wake_on_stop())
        tasks = [asyncio.create_task(slot.run(stop), name=f"ws-{slot.name}") for slot in self.slots]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in (watcher, *tasks):
                task.cancel()
            await asyncio.gather(watcher, *tasks, return_exceptions=True)
