"""What the WebSocket manager (data/ws.py) and a venue agree on.

A venue's `Dialect` says where to connect for a set of streams, how to subscribe the rest by
message, and which frames are not market data (`Control`: a reply to a subscribe, a notice
that the server is going away, an application-level ping to answer). `WsSettings` holds the
manager's figures: endpoints in fail-over order, staleness, rotation, backoff, the venue's
limits, how much is buffered.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

REPLY, SHUTDOWN, PING = "reply", "shutdown", "ping"
Sink = Callable[[str, int], "int | None"]  # (frame, wall receive ns) -> latency ns or None
Sleep = Callable[[float, asyncio.Event], Awaitable[None]]  # (seconds, wake early on) -> None
Connect = Callable[[str], Awaitable[Any]]


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
    overlap_s: float = 0.25  # both connections up, the first still delivering, before the switch
    max_held: int = 200_000  # frames of the successor held back during an overlap
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
