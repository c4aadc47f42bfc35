"""The webhook: `POST /signal` for alerts from charting tools, signed, fresh and rate-limited.

A request carries the signal (one JSON object or a list, see data/signals/__init__.py) as
its body and two headers:

    X-Mikrobot-Timestamp: <unix seconds>
    X-Mikrobot-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" with the secret>

The secret comes from MIKROBOT_SIGNALS__WEBHOOK_SECRET only. In this order, a request is
refused: from an address not in `signals.webhook_allow` (403), not `POST /signal` (404, 405),
without a Content-Length or too large (411, 413), without a good signature (401), with a
timestamp further than `signals.webhook_max_age_s` from now (401), with a signature already
used (409: a replay), with a body that is no JSON (400) or holds no signal that can be taken
(422), or beyond `signals.webhook_per_minute` signals in the last minute (429 with
Retry-After). Otherwise it is 202: the signals are queued for the engine, which decides them
at their symbol's next tick. Every answer is JSON: {"accepted": ..., ...}.

The server runs on the engine's event loop with asyncio streams: every read has a deadline
and only a few clients are served at once, so no client can stall the loop. Checking a
request (`judge`) is synchronous and quick, and needs no socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import json
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from mikrobot_tui.clock import Clock
from mikrobot_tui.config import ConfigError, SignalsSettings
from mikrobot_tui.data.signals import ExternalSignal, Inbox, Rejection, parse_signals, raw_text
from mikrobot_tui.data.signals.ea_file import decode

SIGNATURE = "x-mikrobot-signature"
TIMESTAMP = "x-mikrobot-timestamp"
SECRET_ENV = "MIKROBOT_SIGNALS__WEBHOOK_SECRET"
MIN_SECRET = 16
MAX_BODY = 64 * 1024
MAX_HEADER = 16 * 1024
MAX_CLIENTS = 16
READ_TIMEOUT_S = 5.0
WINDOW_NS = 60 * 1_000_000_000
NS = 1_000_000_000
PHRASES = {
    202: "Accepted",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    411: "Length Required",
    413: "Content Too Large",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def secret_of(settings: SignalsSettings) -> bytes:
    """The webhook's secret; ConfigError naming the variable when it is missing or short."""
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else ""
    if not secret:
        raise ConfigError(
            f"signals.webhook: the webhook needs a secret to check signatures; set {SECRET_ENV} "
            "in the environment or .env (e.g. from `openssl rand -hex 32`), or set "
            "signals.webhook = false"
        )
    if len(secret) < MIN_SECRET:
        raise ConfigError(
            f"{SECRET_ENV}: the secret has {len(secret)} characters; use at least {MIN_SECRET} "
            "(e.g. from `openssl rand -hex 32`)"
        )
    return secret.encode()


def allowlist(settings: SignalsSettings) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """`signals.webhook_allow` as networks (an address is a network of one)."""
    nets = []
    for entry in settings.webhook_allow:
        try:
            nets.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ConfigError(
                f"signals.webhook_allow: {entry!r} is not an address or a network "
                '(e.g. "127.0.0.1" or "10.0.0.0/8")'
            ) from None
    if not nets:
        raise ConfigError("signals.webhook_allow: empty, so no client could post; list one")
    return nets


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """The hex HMAC-SHA256 of "<timestamp>.<body>": what a sender puts after "sha256="."""
    return hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class RateWindow:
    """Counts in the last minute; `retry_after` says how long until `n` more fit."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._marks: deque[tuple[int, int]] = deque()  # (ns, count), oldest first
        self._total = 0

    def _expire(self, now: int) -> None:
        while self._marks and self._marks[0][0] <= now - WINDOW_NS:
            self._total -= self._marks.popleft()[1]

    def retry_after(self, now: int, n: int) -> int | None:
        """None when `n` more fit now, else the seconds to wait (at least 1)."""
        self._expire(now)
        if self._total + n <= self.per_minute:
            return None
        if n > self.per_minute:
            return 60
        free, total = now, self._total
        for ts, count in self._marks:
            total -= count
            free = ts + WINDOW_NS
            if total + n <= self.per_minute:
                break
        return max(1, math.ceil((free - now) / NS))

    def add(self, now: int, n: int) -> None:
        self._marks.append((now, n))
        self._total += n


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> bytes:
        body = json.dumps(self.body, sort_keys=True).encode()
        lines = [
            f"HTTP/1.1 {self.status} {PHRASES.get(self.status, 'Error')}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
            "Connection: close",
            *(f"{k}: {v}" for k, v in self.headers.items()),
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _no(status: int, error: str, **more: Any) -> Answer:
    return Answer(status, {"accepted": False, "error": error, **more})


class Webhook:
    """The HTTP endpoint; `run(stop)` serves until stop, `judge` checks one request."""

    name = "webhook"

    def __init__(self, settings: SignalsSettings, inbox: Inbox, clock: Clock) -> None:
        self._secret = secret_of(settings)
        self._allow = allowlist(settings)
        self.host = settings.webhook_host
        self.port = settings.webhook_port  # the bound port once started (0 picks one)
        self.max_age_s = settings.webhook_max_age_s
        self._inbox = inbox
        self._clock = clock
        self._rate = RateWindow(settings.webhook_per_minute)
        self._door = RateWindow(settings.webhook_per_minute)  # refusals kept in `rejects`
        # signatures used, and (when they may be forgotten, signature) in the order they came
        self._seen: set[str] = set()
        self._forget_at: deque[tuple[int, str]] = deque()
        self._server: asyncio.Server | None = None
        self._clients = 0
        self.answers: dict[int, int] = {}  # status -> how many

    # ------------------------------------------------------------------ serving

    async def start(self) -> None:
        """Listen (`port` is the bound one then); ConfigError when the address cannot be had."""
        try:
            self._server = await asyncio.start_server(
                self._client, self.host, self.port, limit=MAX_HEADER
            )
        except OSError as exc:
            raise ConfigError(
                f"signals.webhook_port: cannot listen on {self.host}:{self.port} "
                f"({exc.strerror or exc}); choose another port or stop what holds it"
            ) from None
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), timeout=2)
            self._server = None

    async def run(self, stop: asyncio.Event) -> None:
        if self._server is None:
            await self.start()
        try:
            await stop.wait()
        finally:
            await self.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        ip = str(peer[0]) if peer else "unknown"
        self._clients += 1
        try:
            if self._clients > MAX_CLIENTS:
                answer = _no(503, "busy: too many clients at once; try again")
                answer.headers["Retry-After"] = "1"
            else:
                try:
                    answer = await asyncio.wait_for(self._request(reader, ip), READ_TIMEOUT_S)
                except TimeoutError:
                    answer = _no(408, f"the request took longer than {READ_TIMEOUT_S:g} s")
                except asyncio.LimitOverrunError:
                    answer = _no(431, f"headers longer than {MAX_HEADER} bytes")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return  # the client went away
                except Exception as exc:  # a bug must not leave the client without an answer
                    answer = _no(500, f"the request could not be handled: {exc!r}")
            self.answers[answer.status] = self.answers.get(answer.status, 0) + 1
            writer.write(answer.encode())
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.drain(), READ_TIMEOUT_S)
        finally:
            self._clients -= 1
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1)

    async def _request(self, reader: asyncio.StreamReader, ip: str) -> Answer:
        line = (await reader.readuntil(b"\r\n")).decode("latin-1").split()
        headers: dict[str, str] = {}
        while len(headers) <= 100:
            raw = await reader.readuntil(b"\r\n")
            if raw == b"\r\n":
                break
            name, _, value = raw.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        else:
            return _no(431, "more than 100 headers")
        length = headers.get("content-length", "")
        body = b""
        if length.isdigit() and int(length) <= MAX_BODY and "transfer-encoding" not in headers:
            body = await reader.readexactly(int(length))  # read even when refused: a reset
            # connection would lose the answer
        if not self.allowed(ip):
            return self._door_refusal(ip, _no(403, f"address {ip} is not allowed"), b"")
        if len(line) != 3 or not line[2].startswith("HTTP/"):
            return _no(400, "not an HTTP request")
        method, target = line[0], line[1].split("?", 1)[0]
        if target != "/signal":
            return _no(404, f"no {target} here; POST signals to /signal")
        if method != "POST":
            return Answer(405, {"accepted": False, "error": "use POST"}, {"Allow": "POST"})
        if "transfer-encoding" in headers:
            return _no(411, "send the body with a Content-Length, not chunked")
        if not length.isdigit():
            return _no(411, "a Content-Length header is needed")
        if int(length) > MAX_BODY:
            return _no(413, f"the body is {int(length):,} bytes; at most {MAX_BODY:,}")
        return self.judge(ip, headers, body)

    # ------------------------------------------------------------------ checking

    def allowed(self, ip: str) -> bool:
        try:
            address = ipaddress.ip_address(ip.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in net for net in self._allow)

    def judge(self, ip: str, headers: dict[str, str], body: bytes) -> Answer:
        """Check one request (headers by lower-case name) and queue its signals."""
        now = self._clock.now_ns()
        given = headers.get(SIGNATURE, "").strip()
        stamp = headers.get(TIMESTAMP, "").strip()
        if not given:
            return self._door_refusal(ip, _no(401, "no X-Mikrobot-Signature header"), body)
        if not stamp:
            return self._door_refusal(ip, _no(401, "no X-Mikrobot-Timestamp header"), body)
        expected = signature(self._secret, stamp, body)
        given = given.removeprefix("sha256=").strip().lower()
        if not hmac.compare_digest(given.encode(), expected.encode()):
            why = "bad signature: HMAC-SHA256 of '<timestamp>.<body>' with the secret, in hex"
            return self._door_refusal(ip, _no(401, why), body)
        try:
            sent = int(stamp)
        except ValueError:
            why = "X-Mikrobot-Timestamp must be unix seconds"
            return self._door_refusal(ip, _no(401, why), body)
        age = now / NS - sent
        if abs(age) > self.max_age_s:
            why = (
                f"timestamp {sent} is {abs(age):.0f} s {'old' if age > 0 else 'ahead'}; at most "
                f"{self.max_age_s:g} s either way (is the sender's clock right?)"
            )
            return self._door_refusal(ip, _no(401, why), body)
        self._forget(now)
        if expected in self._seen:
            why = "replayed: this signature was used already; sign each request anew"
            return self._door_refusal(ip, _no(409, why), body)
        source = f"webhook:{ip}"
        not_json = False
        try:
            value = json.loads(decode(body))
        except (ValueError, RecursionError) as exc:
            not_json = True
            items: list[ExternalSignal | Rejection] = [
                Rejection(source, f"the body is not JSON: {exc}", raw_text(decode(body)), now)
            ]
        else:
            items = parse_signals(value, source=source, received_ns=now)
        n = max(1, len(items))
        wait = self._rate.retry_after(now, n)
        if wait is not None:
            limit = self._rate.per_minute
            answer = _no(429, f"more than {limit} signals a minute; retry in {wait} s")
            answer.headers["Retry-After"] = str(wait)
            return answer
        self._rate.add(now, n)
        self._seen.add(expected)  # a timestamp within max_age either way: 2 x max_age is enough
        self._forget_at.append((now + round(2 * self.max_age_s * NS), expected))
        for item in items:
            self._inbox.put(item)
        queued = [s for s in items if isinstance(s, ExternalSignal)]
        rejected = [
            {"index": i, "reason": r.reason}
            for i, r in enumerate(items)
            if isinstance(r, Rejection)
        ]
        if not items:
            return _no(422, "no signal in the body (an empty list)")
        if not queued:
            status = 400 if not_json else 422
            return _no(status, rejected[0]["reason"], rejected=rejected)
        return Answer(
            202,
            {
                "accepted": True,
                "queued": len(queued),
                "ids": [s.signal_id for s in queued],
                "rejected": rejected,
            },
        )

    def _forget(self, now: int) -> None:
        while self._forget_at and self._forget_at[0][0] <= now:
            self._seen.discard(self._forget_at.popleft()[1])

    def _door_refusal(self, ip: str, answer: Answer, body: bytes) -> Answer:
        """Refused before its content counts: answered, and kept in `rejects` up to the rate
        (the source's breaker counts malformed signals, not strangers)."""
        now = self._clock.now_ns()
        if self._door.retry_after(now, 1) is None:
            self._door.add(now, 1)
            raw = raw_text(body.decode("utf-8", errors="replace")) if body else ""
            reason = f"HTTP {answer.status}: {answer.body['error']}"
            self._inbox.put(Rejection(f"webhook:{ip}", reason, raw, now, malformed=False))
        return answer
