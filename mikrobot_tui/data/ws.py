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
  delivers, and the first is closed only once the second is subscribed and delivering. Both
  hand their frames to the sink meanwhile: the sink drops what it has seen with a
  `SequenceGate` (ws_limits.py), so there is neither a gap nor a duplicate;
- records every failure (a refused handshake, a dropped or stale connection) for the feed's
  circuit breaker (`take_failures`).

Frames are handed to the sink as text with their wall-clock receive time, one call each; the
sink returns the frame's latency (receive minus event time) when it has one, for the health
figures. Clock, wall clock, sleep, random source and connect are parameters for tests. Every
loop ends when the stop event is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from mikrobot_tui.data.feeds.health import (
    CONNECTING,
    DOWN,
    LIVE,
    STALE,
    STOPPED,
    FeedHealth,
    HealthMeter,
)
from mikrobot_tui.data.ws_limits import AttemptLimiter, Backoff, Pacer

__all__ = ["Control", "Dialect", "WsManager", "WsSettings"]

REPLY, SHUTDOWN, PING = "reply", "shutdown", "ping"
Sink = Callable[[str, int], "int | None"]  # (frame, wall receive ns) -> latency ns or None
Sleep = Callable[[float, asyncio.Event], Awaitable[None]]  # (seconds, wake early on) -> None
Connect = Callable[[str], Awaitable[Any]]
_FAILURES = 1024  # failures kept for the breaker between two takes


@dataclass(frozen=True, slots=True)
class Control:
    """A frame that is not market data, and what the manager does with it."""

    kind: str  # REPLY (to a subscribe), SHUTDOWN (the server is going away), PING
    request_id: int | None = None
    error: str = ""  # a refused request, in the venue's words
    answer: str | None = None  # text to send back (an application-level ping's pong)


class Dialect(Protocol):
    """How one venue speaks over its WebSocket."""

    subscribe_batch: int  # streams per subscribe message

    def url(self, endpoint: str, streams: Sequence[str]) -> tuple[str, list[str]]:
        """The address for these streams, and the streams it leaves to subscribe by message."""
        ...

    def subscribe(self, streams: Sequence[str], request_id: int) -> str: ...

    def control(self, raw: str) -> Control | None:
        """None for market data (handed to the sink), else what the frame asks for."""
        ...


@dataclass(frozen=True)
class WsSettings:
    endpoints: tuple[str, ...]
    stale_after_s: float = 10.0
    rotate_after_s: float = 23 * 3600.0
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0
    stable_after_s: float = 30.0
    control_per_s: float = 4.0  # Binance allows 5 a second, pongs included: one kept spare
    attempts_per_window: int = 300
    attempt_window_s: float = 300.0
    max_streams: int = 1024
    open_timeout_s: float = 10.0
    ready_timeout_s: float = 15.0  # a successor not subscribed and delivering by then is dropped
    close_timeout_s: float = 2.0
    ping_interval_s: float | None = 20.0
    max_queue: int = 1024  # frames websockets buffers before it stops reading the socket
    max_frame_bytes: int = 1 << 20

    def __post_init__(self) -> None:
        if not self.endpoints:
            raise ValueError("a WebSocket manager needs at least one endpoint")
        if self.stale_after_s <= 0 or self.rotate_after_s <= 0 or self.max_streams < 1:
            raise ValueError("stale_after_s, rotate_after_s and max_streams must be positive")


async def wait_or_wake(seconds: float, wake: asyncio.Event) -> None:
    """Sleep `seconds`, or less when `wake` is set."""
    if seconds > 0 and not wake.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), seconds)


def describe(exc: BaseException) -> str:
    """An exception in a line an operator can read (a refused handshake says its status)."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if status is not None:
        return f"handshake refused: HTTP {status}"
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if type(exc).__name__ not in text else text


class _Conn:
    """One open WebSocket and what the supervisor watches on it."""

    def __init__(self, ws: Any, endpoint: str, now: float, rotate_after_s: float, pacer: Pacer):
        self.ws, self.endpoint = ws, endpoint
        self.opened_at = self.last_frame = now
        self.rotate_at = now + rotate_after_s
        self.retry_at = 0.0  # a failed planned reconnect is tried again from then
        self.pacer = pacer
        self.pending: set[int] = set()  # subscribe requests not answered yet
        self.delivered = False  # at least one market-data frame
        self.ready = asyncio.Event()  # subscribed and delivering
        self.shutdown = False
        self.error = ""
        self.reader: asyncio.Task[None] | None = None


class _Slot:
    """One logical connection: its streams, its health, and whatever WebSocket serves it now."""

    def __init__(self, name: str, venue: str, streams: list[str], wall: Callable[[], int]):
        self.name, self.streams = name, streams
        self.meter = HealthMeter(name, venue, wall)
        self.endpoint = 0
        self.wake = asyncio.Event()
        self.rotate_reason = ""
        self.opened = False
        self.rotations = 0


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
        self.attempts = attempts or AttemptLimiter(
            settings.attempts_per_window, settings.attempt_window_s, clock
        )
        self.slots: list[_Slot] = []
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
        self._failures: deque[tuple[int, str]] = deque(maxlen=_FAILURES)
        self._ids = itertools.count(1)

    def _add_slot(self, name: str, venue: str, streams: list[str]) -> None:
        self.slots.append(_Slot(f"{name}#{len(self.slots) + 1}", venue, streams, self._wall))

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
        tasks = [
            asyncio.create_task(self._supervise(slot, stop), name=f"ws-{slot.name}")
            for slot in self.slots
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in (watcher, *tasks):
                task.cancel()
            await asyncio.gather(watcher, *tasks, return_exceptions=True)

    # ---------------------------------------------------------------- one connection's life

    async def _supervise(self, slot: _Slot, stop: asyncio.Event) -> None:
        backoff = Backoff(self.s.backoff_base_s, self.s.backoff_cap_s, self._rand)
        conn: _Conn | None = None
        try:
            while not stop.is_set():
                try:
                    if conn is None:
                        conn = await self._open(slot, stop, backoff, planned=False)
                        continue
                    why = await self._watch(slot, conn, stop, backoff)
                    if why is None:
                        break
                    if why.startswith(("rotate", "serverShutdown")):
                        conn = await self._handover(slot, conn, stop, backoff, why)
                        continue
                    self._failed(slot, why, STALE if why.startswith("stale") else DOWN)
                    await self._close(conn)
                    conn = None
                    await self._pause(slot, backoff.next(), stop)
                except (asyncio.CancelledError, KeyboardInterrupt):
                    raise
                except Exception as exc:  # a bug here must not end the feed: count it, go on
                    self._failed(slot, f"manager error: {describe(exc)}", DOWN)
                    if conn is not None:
                        await self._close(conn)
                        conn = None
                    await self._pause(slot, backoff.next(), stop)
        finally:
            if conn is not None:
                await self._close(conn)
            slot.meter.state = STOPPED

    async def _open(
        self, slot: _Slot, stop: asyncio.Event, backoff: Backoff, planned: bool
    ) -> _Conn | None:
        """Connect and subscribe, retrying through the endpoints; None once stopped."""
        s, endpoints = self.s, self.s.endpoints
        while not stop.is_set():
            wait = self.attempts.wait_s()
            if wait > 0:
                slot.meter.detail = (
                    f"waiting {wait:.0f} s: at most {s.attempts_per_window} connection "
                    f"attempts per {s.attempt_window_s:.0f} s"
                )
                await self._pause(slot, wait, stop)
                continue
            endpoint = endpoints[slot.endpoint % len(endpoints)]
            url, rest = self.dialect.url(endpoint, slot.streams)
            self.attempts.record()
            if not planned:
                slot.meter.state = CONNECTING
            conn = None
            try:
                ws = await asyncio.wait_for(self._connect(url), s.open_timeout_s)
                conn = _Conn(ws, endpoint, self._clock(), s.rotate_after_s, Pacer(s.control_per_s))
                conn.reader = asyncio.create_task(
                    self._read(slot, conn), name=f"ws-read-{slot.name}"
                )
                await self._subscribe(conn, rest)
            except asyncio.CancelledError:
                if conn is not None:
                    await self._close(conn)
                raise
            except Exception as exc:
                if conn is not None:
                    await self._close(conn)
                self._failed(slot, f"{endpoint}: {describe(exc)}", None if planned else DOWN)
                slot.endpoint = (slot.endpoint + 1) % len(endpoints)  # fail over to the next
                await self._pause(slot, backoff.next(), stop)
                continue
            if slot.opened and not planned:
                slot.meter.reconnects += 1
            slot.opened = True
            return conn
        return None

    async def _subscribe(self, conn: _Conn, streams: list[str]) -> None:
        step = max(1, self.dialect.subscribe_batch)
        for i in range(0, len(streams), step):
            request_id = next(self._ids)
            conn.pending.add(request_id)
            await self._send(conn, self.dialect.subscribe(streams[i : i + step], request_id))

    async def _send(self, conn: _Conn, text: str) -> None:
        wait = conn.pacer.reserve()
        if wait > 0:
            await asyncio.sleep(wait)
        await conn.ws.send(text)

    async def _read(self, slot: _Slot, conn: _Conn) -> None:
        sink, control, meter = self.sink, self.dialect.control, slot.meter
        clock, wall = self._clock, self._wall
        try:
            async for raw in conn.ws:
                if not isinstance(raw, str):
                    raw = bytes(raw).decode("utf-8", "replace")
                conn.last_frame = clock()
                recv = wall()
                ctl = control(raw)
                if ctl is not None:
                    self._on_control(slot, conn, ctl)
                    continue
                try:
                    latency = sink(raw, recv)
                except Exception as exc:  # the sink counts bad frames itself; this is a bug
                    latency = None
                    meter.detail = f"frame handler failed: {describe(exc)}"
                meter.message(1, latency, recv)
                if not conn.delivered:
                    conn.delivered = True
                    meter.state = LIVE
                    self._check_ready(slot, conn)
            code = getattr(conn.ws, "close_code", None)
            conn.error = f"closed by the server (code {code})"
        except asyncio.CancelledError:
            conn.error = conn.error or "closed"
            raise
        except Exception as exc:
            conn.error = describe(exc)
        finally:
            slot.wake.set()

    def _on_control(self, slot: _Slot, conn: _Conn, ctl: Control) -> None:
        if ctl.kind == REPLY:
            if ctl.request_id is not None:
                conn.pending.discard(ctl.request_id)
            if ctl.error:
                self._failed(slot, f"request refused: {ctl.error}", None)
            self._check_ready(slot, conn)
        elif ctl.kind == SHUTDOWN:
            conn.shutdown = True
            slot.wake.set()
        if ctl.answer is not None:
            task = asyncio.ensure_future(self._send(conn, ctl.answer))
            task.add_done_callback(lambda t: t.cancelled() or t.exception())

    def _check_ready(self, slot: _Slot, conn: _Conn) -> None:
        if conn.delivered and not conn.pending and not conn.ready.is_set():
            conn.ready.set()
            slot.wake.set()

    async def _watch(
        self, slot: _Slot, conn: _Conn, stop: asyncio.Event, backoff: Backoff
    ) -> str | None:
        """Wait until the connection needs something: the reason, or None once stopped."""
        s = self.s
        while not stop.is_set():
            slot.wake.clear()
            if conn.reader is None or conn.reader.done():
                return f"connection lost: {conn.error}"
            now = self._clock()
            if now >= conn.retry_at:
                if conn.shutdown:
                    return "serverShutdown: the server is going away"
                if slot.rotate_reason:
                    why, slot.rotate_reason = slot.rotate_reason, ""
                    return f"rotate: {why}"
                if now >= conn.rotate_at:
                    return f"rotate: {s.rotate_after_s:g} s old, before the venue's cut"
            silent = now - conn.last_frame
            if silent >= s.stale_after_s:
                return f"stale: no message for {silent:.1f} s"
            if conn.delivered and now - conn.opened_at >= s.stable_after_s:
                backoff.reset()
            timeout = min(s.stale_after_s - silent, max(conn.rotate_at - now, 0.05), 1.0)
            await wait_or_wake(timeout, slot.wake)
        return None

    async def _handover(
        self, slot: _Slot, old: _Conn, stop: asyncio.Event, backoff: Backoff, why: str
    ) -> _Conn | None:
        """A second connection subscribes; the first closes once the second delivers."""
        slot.meter.detail = f"planned reconnect ({why})"
        new = await self._open(slot, stop, backoff, planned=True)
        if new is None:
            return old
        deadline = self._clock() + self.s.ready_timeout_s
        while not (new.ready.is_set() or stop.is_set()) and new.reader and not new.reader.done():
            left = deadline - self._clock()
            if left <= 0:
                break
            slot.wake.clear()
            await wait_or_wake(min(left, 0.5), slot.wake)
        if new.ready.is_set():
            await self._close(old)
            slot.rotations += 1
            slot.meter.state = LIVE
            slot.meter.detail = f"rotated {slot.rotations}x, last: {why}"
            return new
        await self._close(new)
        if stop.is_set():
            return old
        self._failed(slot, f"planned reconnect failed: {new.error or 'no data in time'}", None)
        if old.reader is None or old.reader.done():
            slot.meter.state = DOWN
            return None
        old.retry_at = self._clock() + backoff.next()
        return old

    async def _close(self, conn: _Conn) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.ws.close(), self.s.close_timeout_s)
        if conn.reader is not None:
            conn.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await conn.reader

    async def _pause(self, slot: _Slot, seconds: float, stop: asyncio.Event) -> None:
        if stop.is_set() or seconds <= 0:
            return
        slot.wake.clear()
        await self._sleep(seconds, slot.wake)

    def _failed(self, slot: _Slot, reason: str, state: str | None) -> None:
        self._failures.append((self._wall(), f"{slot.name}: {reason}"))
        slot.meter.detail = reason
        if state is not None:
            slot.meter.state = state
