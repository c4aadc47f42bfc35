"""One logical connection of the WebSocket manager (data/ws.py): its whole life.

`Link.run` connects (through the endpoints in turn, after the attempt limiter allows it, with
full-jitter backoff after a failure), subscribes, and watches: a connection that closed or
went silent is a failure (recorded for the breaker) and is replaced; one that reached its age
or got a `serverShutdown` notice hands over to a successor with an overlap (`_handover`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any

from mikrobot_tui.data.feeds.health import CONNECTING, DOWN, LIVE, STALE, STOPPED, HealthMeter
from mikrobot_tui.data.ws_limits import Backoff, Pacer
from mikrobot_tui.data.ws_protocol import REPLY, SHUTDOWN, Control, describe, wait_or_wake


class _Conn:
    """One open WebSocket and what the supervisor watches on it."""

    def __init__(
        self,
        ws: Any,
        endpoint: str,
        now: float,
        rotate_after_s: float,
        pacer: Pacer,
        held: deque[tuple[str, int]] | None,
    ) -> None:
        self.ws, self.endpoint = ws, endpoint
        self.held = held  # a successor's frames, held back until the switch; None: delivering
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


class Link:
    """One logical connection: its streams and health, and the WebSocket serving it now.

    It connects, subscribes, reads, watches for staleness, the rotation time and a shutdown
    notice, hands over to a successor, and reconnects after a failure, for ever.
    """

    def __init__(self, name: str, venue: str, streams: list[str], m: Any) -> None:
        self.name, self.streams = name, streams
        self.meter = HealthMeter(name, venue, m._wall)
        self.endpoint = 0
        self.wake = asyncio.Event()
        self.rotate_reason = ""
        self.opened = False
        self.rotations = 0
        self.s, self.dialect, self.sink = m.s, m.dialect, m.sink
        self._clock, self._wall, self._sleep, self._rand = m._clock, m._wall, m._sleep, m._rand
        self._connect, self.attempts = m._connect, m.attempts
        self._failures, self._ids = m._failures, m._ids

    async def run(self, stop: asyncio.Event) -> None:
        """Keep this connection up until `stop` is set."""
        backoff = Backoff(self.s.backoff_base_s, self.s.backoff_cap_s, self._rand)
        conn: _Conn | None = None
        try:
            while not stop.is_set():
                try:
                    if conn is None:
                        conn = await self._open(stop, backoff, planned=False)
                        continue
                    why = await self._watch(conn, stop, backoff)
                    if why is None:
                        break
                    if why.startswith(("rotate", "serverShutdown")):
                        conn = await self._handover(conn, stop, backoff, why)
                        continue
                    self._failed(why, STALE if why.startswith("stale") else DOWN)
                    await self._close(conn)
                    conn = None
                    await self._pause(backoff.next(), stop)
                except (asyncio.CancelledError, KeyboardInterrupt):
                    raise
                except Exception as exc:  # a bug here must not end the feed: count it, go on
                    self._failed(f"manager error: {describe(exc)}", DOWN)
                    if conn is not None:
                        await self._close(conn)
                        conn = None
                    await self._pause(backoff.next(), stop)
        finally:
            if conn is not None:
                await self._close(conn)
            self.meter.state = STOPPED

    async def _open(self, stop: asyncio.Event, backoff: Backoff, planned: bool) -> _Conn | None:
        """Connect and subscribe, retrying through the endpoints; None once stopped."""
        s, endpoints = self.s, self.s.endpoints
        while not stop.is_set():
            wait = self.attempts.wait_s()
            if wait > 0:
                self.meter.detail = (
                    f"waiting {wait:.0f} s: at most {s.attempts_per_window} connection "
                    f"attempts per {s.attempt_window_s:.0f} s"
                )
                await self._pause(wait, stop)
                continue
            endpoint = endpoints[self.endpoint % len(endpoints)]
            url, rest = self.dialect.url(endpoint, self.streams)
            self.attempts.record()
            if not planned:
                self.meter.state = CONNECTING
            conn = None
            try:
                ws = await asyncio.wait_for(self._connect(url), s.open_timeout_s)
                held = deque(maxlen=s.max_held) if planned else None
                pacer = Pacer(s.control_per_s, self._clock)
                conn = _Conn(ws, endpoint, self._clock(), s.rotate_after_s, pacer, held)
                conn.reader = asyncio.create_task(self._read(conn), name=f"ws-read-{self.name}")
                await self._subscribe(conn, rest)
            except asyncio.CancelledError:
                if conn is not None:
                    await self._close(conn)
                raise
            except Exception as exc:
                if conn is not None:
                    await self._close(conn)
                self._failed(f"{endpoint}: {describe(exc)}", None if planned else DOWN)
                self.endpoint = (self.endpoint + 1) % len(endpoints)  # fail over to the next
                await self._pause(backoff.next(), stop)
                continue
            if self.opened and not planned:
                self.meter.reconnects += 1
            self.opened = True
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

    async def _read(self, conn: _Conn) -> None:
        sink, control, meter = self.sink, self.dialect.control, self.meter
        clock, wall = self._clock, self._wall
        try:
            async for raw in conn.ws:
                if not isinstance(raw, str):
                    raw = bytes(raw).decode("utf-8", "replace")
                conn.last_frame = clock()
                recv = wall()
                ctl = control(raw)
                if ctl is not None:
                    self._on_control(conn, ctl)
                    continue
                if conn.held is not None:  # a successor: held back until the switch
                    if len(conn.held) == conn.held.maxlen:
                        meter.conflated += 1
                    conn.held.append((raw, recv))
                    if not conn.delivered:
                        conn.delivered = True
                        self._check_ready(conn)
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
                    self._check_ready(conn)
            code = getattr(conn.ws, "close_code", None)
            conn.error = f"closed by the server (code {code})"
        except asyncio.CancelledError:
            conn.error = conn.error or "closed"
            raise
        except Exception as exc:
            conn.error = describe(exc)
        finally:
            self.wake.set()

    def _on_control(self, conn: _Conn, ctl: Control) -> None:
        if ctl.kind == REPLY:
            if ctl.request_id is not None:
                conn.pending.discard(ctl.request_id)
            if ctl.error:
                self._failed(f"request refused: {ctl.error}", None)
            self._check_ready(conn)
        elif ctl.kind == SHUTDOWN:
            conn.shutdown = True
            self.wake.set()
        if ctl.answer is not None:
            task = asyncio.ensure_future(self._send(conn, ctl.answer))
            task.add_done_callback(lambda t: t.cancelled() or t.exception())

    def _check_ready(self, conn: _Conn) -> None:
        if conn.delivered and not conn.pending and not conn.ready.is_set():
            conn.ready.set()
            self.wake.set()

    async def _watch(self, conn: _Conn, stop: asyncio.Event, backoff: Backoff) -> str | None:
        """Wait until the connection needs something: the reason, or None once stopped."""
        s = self.s
        while not stop.is_set():
            self.wake.clear()
            if conn.reader is None or conn.reader.done():
                return f"connection lost: {conn.error}"
            now = self._clock()
            if now >= conn.retry_at:
                if conn.shutdown:
                    return "serverShutdown: the server is going away"
                if self.rotate_reason:
                    why, self.rotate_reason = self.rotate_reason, ""
                    return f"rotate: {why}"
                if now >= conn.rotate_at:
                    return f"rotate: {s.rotate_after_s:g} s old, before the venue's cut"
            silent = now - conn.last_frame
            if silent >= s.stale_after_s:
                return f"stale: no message for {silent:.1f} s"
            if conn.delivered and now - conn.opened_at >= s.stable_after_s:
                backoff.reset()
            timeout = min(s.stale_after_s - silent, max(conn.rotate_at - now, 0.05), 1.0)
            await wait_or_wake(timeout, self.wake)
        return None

    async def _handover(
        self, old: _Conn, stop: asyncio.Event, backoff: Backoff, why: str
    ) -> _Conn | None:
        """A second connection subscribes; the first closes once the second delivers."""
        self.meter.detail = f"planned reconnect ({why})"
        new = await self._open(stop, backoff, planned=True)
        if new is None:
            return old
        deadline = self._clock() + self.s.ready_timeout_s
        while not (new.ready.is_set() or stop.is_set()) and new.reader and not new.reader.done():
            left = deadline - self._clock()
            if left <= 0:
                break
            self.wake.clear()
            await wait_or_wake(min(left, 0.5), self.wake)
        if new.ready.is_set():
            if old.reader is not None and not old.reader.done() and not stop.is_set():
                self.wake.clear()  # the first hands over what was on its way
                await wait_or_wake(self.s.overlap_s, self.wake)
            await self._close(old)
            self._release(new)
            self.rotations += 1
            self.meter.state = LIVE
            self.meter.detail = f"rotated {self.rotations}x, last: {why}"
            return new
        await self._close(new)
        if stop.is_set():
            return old
        self._failed(f"planned reconnect failed: {new.error or 'no data in time'}", None)
        if old.reader is None or old.reader.done():
            self.meter.state = DOWN
            return None
        old.retry_at = self._clock() + backoff.next()
        return old

    def _release(self, conn: _Conn) -> None:
        """The successor takes over: what it held goes to the sink first, in order (no await
        in between, so its reader cannot slip a newer frame in ahead of them)."""
        held, conn.held = conn.held, None
        for raw, recv in held or ():
            try:
                latency = self.sink(raw, recv)
            except Exception as exc:
                latency = None
                self.meter.detail = f"frame handler failed: {describe(exc)}"
            self.meter.message(1, latency, recv)

    async def _close(self, conn: _Conn) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.ws.close(), self.s.close_timeout_s)
        if conn.reader is not None:
            conn.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await conn.reader

    async def _pause(self, seconds: float, stop: asyncio.Event) -> None:
        if stop.is_set() or seconds <= 0:
            return
        self.wake.clear()
        await self._sleep(seconds, self.wake)

    def _failed(self, reason: str, state: str | None) -> None:
        self._failures.append((self._wall(), f"{self.name}: {reason}"))
        self.meter.detail = reason
        if state is not None:
            self.meter.state = state
