"""The webhook on a real socket on 127.0.0.1: signatures, timestamps, replays, the allowlist
and the rate, each answered with its status and a JSON body that says why."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import http.client
import json
import time
from typing import Any

import pytest

from mikrobot_tui.clock import LiveClock
from mikrobot_tui.config import ConfigError, SignalsSettings
from mikrobot_tui.data.signals import ExternalSignal, Inbox, Rejection
from mikrobot_tui.data.signals.sources import check
from mikrobot_tui.data.signals.webhook import RateWindow, Webhook, signature

SECRET = "0123456789abcdef0123456789abcdef"
BODY = json.dumps({"id": "tv-1", "symbol": "BTCUSDT", "side": "buy", "sl_distance": 150}).encode()


def sign(body: bytes, ts: int | None = None, secret: str = SECRET) -> dict[str, str]:
    stamp = str(int(time.time()) if ts is None else ts)
    mac = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"X-Mikrobot-Timestamp": stamp, "X-Mikrobot-Signature": f"sha256={mac}"}


def post(
    port: int, body: bytes, headers: dict[str, str], method: str = "POST", path: str = "/signal"
) -> tuple[int, dict[str, Any], dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        return r.status, json.loads(r.read()), dict(r.getheaders())
    finally:
        conn.close()


class Served:
    def __init__(self, hook: Webhook, inbox: Inbox) -> None:
        self.hook, self.inbox = hook, inbox

    async def post(self, body: bytes, headers: dict[str, str], **kw: str):
        return await asyncio.to_thread(post, self.hook.port, body, headers, **kw)


@pytest.fixture
async def served():
    hooks: list[Webhook] = []

    async def serve(**settings: Any) -> Served:
        s = SignalsSettings(webhook=True, webhook_port=0, webhook_secret=SECRET, **settings)
        inbox = Inbox()
        hook = Webhook(s, inbox, LiveClock())
        await hook.start()
        hooks.append(hook)
        return Served(hook, inbox)

    yield serve
    for hook in hooks:
        await hook.close()


async def test_a_signed_fresh_request_is_accepted_and_queued(served) -> None:
    s = await served()
    status, body, headers = await s.post(BODY, sign(BODY))
    assert status == 202, body
    assert body == {"accepted": True, "queued": 1, "ids": ["tv-1"], "rejected": []}
    assert headers["Content-Type"] == "application/json"
    (signal,) = s.inbox.take()
    assert isinstance(signal, ExternalSignal)
    assert (signal.source, signal.symbol, signal.signal_id) == (
        "webhook:127.0.0.1",
        "BTCUSDT",
        "tv-1",
    )


async def test_a_bad_signature_is_refused_and_kept_as_a_reject_not_as_a_signal(served) -> None:
    s = await served()
    headers = sign(BODY, secret="another secret, sixteen+ chars")
    status, body, _ = await s.post(BODY, headers)
    assert (status, body["accepted"]) == (401, False)
    assert body["error"].startswith("bad signature")
    tampered = BODY.replace(b"buy", b"sell")
    status, _, _ = await s.post(tampered, sign(BODY))  # signed another body
    assert status == 401
    refusals = s.inbox.take()
    assert all(isinstance(r, Rejection) and not r.malformed for r in refusals)
    assert "HTTP 401: bad signature" in refusals[0].reason


@pytest.mark.parametrize("missing", ["X-Mikrobot-Signature", "X-Mikrobot-Timestamp"])
async def test_a_missing_header_is_refused(served, missing: str) -> None:
    s = await served()
    headers = sign(BODY)
    del headers[missing]
    status, body, _ = await s.post(BODY, headers)
    assert status == 401 and body["error"] == f"no {missing} header"


async def test_a_replayed_request_is_refused(served) -> None:
    s = await served()
    headers = sign(BODY)
    assert (await s.post(BODY, headers))[0] == 202
    status, body, _ = await s.post(BODY, headers)
    assert status == 409 and body["error"].startswith("replayed")
    assert sum(isinstance(x, ExternalSignal) for x in s.inbox.take()) == 1


@pytest.mark.parametrize("offset", [-31, 31, -3600])
async def test_a_stale_or_future_timestamp_is_refused(served, offset: int) -> None:
    s = await served(webhook_max_age_s=30)
    status, body, _ = await s.post(BODY, sign(BODY, int(time.time()) + offset))
    assert status == 401
    assert "at most 30 s either way" in body["error"]
    assert ("ahead" if offset > 0 else "old") in body["error"]


async def test_an_address_outside_the_allowlist_is_refused(served) -> None:
    s = await served(webhook_allow=["10.0.0.0/8", "::1"])
    status, body, _ = await s.post(BODY, sign(BODY))
    assert status == 403 and body["error"] == "address 127.0.0.1 is not allowed"
    assert not any(isinstance(x, ExternalSignal) for x in s.inbox.take())


async def test_beyond_the_rate_is_429_with_retry_after(served) -> None:
    s = await served(webhook_per_minute=3)
    for i in range(3):
        body = json.dumps({"symbol": "BTCUSDT", "side": "buy", "sl_distance": 100 + i}).encode()
        assert (await s.post(body, sign(body)))[0] == 202
    body = json.dumps({"symbol": "BTCUSDT", "side": "sell", "sl_distance": 100}).encode()
    status, answer, headers = await s.post(body, sign(body))
    assert status == 429 and "more than 3 signals a minute" in answer["error"]
    assert 1 <= int(headers["Retry-After"]) <= 60
    assert sum(isinstance(x, ExternalSignal) for x in s.inbox.take()) == 3
    # a refused request was not used up: the same one is taken once there is room again
    s.hook._rate = RateWindow(3)
    assert (await s.post(body, sign(body)))[0] == 202


async def test_bodies_that_are_not_signals_say_why(served) -> None:
    s = await served()
    status, body, _ = await s.post(b"{not json", sign(b"{not json"))
    assert status == 400 and body["error"].startswith("the body is not JSON")
    bad = json.dumps({"symbol": "BTCUSDT", "side": "hold", "sl": 1}).encode()
    status, body, _ = await s.post(bad, sign(bad))
    assert status == 422 and "side must be" in body["error"]
    assert body["rejected"][0]["index"] == 0
    mixed = json.dumps([{"symbol": "BTCUSDT", "side": "buy", "sl": 1}, {"side": "x"}]).encode()
    status, body, _ = await s.post(mixed, sign(mixed))
    assert status == 202 and body["queued"] == 1 and len(body["rejected"]) == 1
    kinds = [(type(x).__name__, getattr(x, "malformed", None)) for x in s.inbox.take()]
    assert kinds == [
        ("Rejection", True),
        ("Rejection", True),
        ("ExternalSignal", None),
        ("Rejection", True),
    ]


async def test_wrong_paths_methods_and_lengths(served) -> None:
    s = await served()
    assert (await s.post(BODY, sign(BODY), path="/other"))[0] == 404
    status, _, headers = await s.post(b"", {}, method="GET")
    assert status == 405 and headers["Allow"] == "POST"
    big = b"[" + b" " * (64 * 1024) + b"]"
    assert (await s.post(big, sign(big)))[0] == 413


async def test_a_silent_client_does_not_hold_up_the_next(served) -> None:
    s = await served()
    _reader, writer = await asyncio.open_connection("127.0.0.1", s.hook.port)
    writer.write(b"POST /signal HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")  # and then nothing
    await writer.drain()
    t0 = time.monotonic()
    status, _, _ = await s.post(BODY, sign(BODY))
    assert status == 202 and time.monotonic() - t0 < 2
    writer.close()


def test_the_webhook_will_not_start_without_its_secret() -> None:
    with pytest.raises(ConfigError, match="MIKROBOT_SIGNALS__WEBHOOK_SECRET"):
        check(SignalsSettings(webhook=True))
    with pytest.raises(ConfigError, match="at least 16"):
        check(SignalsSettings(webhook=True, webhook_secret="short"))
    with pytest.raises(ConfigError, match=r"signals\.webhook_allow: 'nowhere'"):
        check(SignalsSettings(webhook=True, webhook_secret=SECRET, webhook_allow=["nowhere"]))
    check(SignalsSettings(webhook=False))  # no webhook, no secret needed


async def test_a_port_already_taken_is_a_configuration_error(served) -> None:
    s = await served()
    taken = SignalsSettings(webhook=True, webhook_port=s.hook.port, webhook_secret=SECRET)
    with pytest.raises(ConfigError, match=r"signals\.webhook_port: cannot listen"):
        await Webhook(taken, Inbox(), LiveClock()).start()


def test_the_signature_is_the_hmac_of_timestamp_dot_body() -> None:
    expected = hmac.new(b"k" * 16, b"1700000000.{}", hashlib.sha256).hexdigest()
    assert signature(b"k" * 16, "1700000000", b"{}") == expected


def test_the_rate_window_says_when_there_is_room_again() -> None:
    w = RateWindow(3)
    s = 1_000_000_000
    assert w.retry_after(0, 3) is None
    w.add(0, 2)
    w.add(10 * s, 1)
    assert w.retry_after(20 * s, 1) == 40  # the first two leave the window at 60 s
    assert w.retry_after(20 * s, 3) == 50  # all three by 70 s
    assert w.retry_after(60 * s, 2) is None
    assert w.retry_after(0, 4) == 60  # never fits: a minute


class Clock:
    def __init__(self, s: int) -> None:
        self.ns = s * 1_000_000_000

    def now_ns(self) -> int:
        return self.ns

    def advance(self, s: float) -> None:
        self.ns += round(s * 1_000_000_000)


def lower(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def test_a_signature_is_remembered_while_its_timestamp_could_pass_and_then_forgotten() -> None:
    clock = Clock(1_800_000_000)
    s = SignalsSettings(webhook=True, webhook_secret=SECRET, webhook_max_age_s=30)
    hook = Webhook(s, Inbox(), clock)
    headers = lower(sign(BODY, 1_800_000_000))
    assert hook.judge("127.0.0.1", headers, BODY).status == 202
    clock.advance(29)
    assert hook.judge("127.0.0.1", headers, BODY).status == 409
    clock.advance(2)
    assert hook.judge("127.0.0.1", headers, BODY).status == 401  # stale by now
    clock.advance(30)
    fresh = lower(sign(BODY, 1_800_000_061))
    assert hook.judge("127.0.0.1", fresh, BODY).status == 202
    assert len(hook._seen) == 1  # the first is forgotten: memory stays bounded


def test_the_rate_counts_signals_in_a_sliding_minute() -> None:
    clock = Clock(1_800_000_000)
    s = SignalsSettings(webhook=True, webhook_secret=SECRET, webhook_per_minute=3)
    hook = Webhook(s, Inbox(), clock)
    two = json.dumps([json.loads(BODY), {**json.loads(BODY), "id": "tv-2"}]).encode()
    ts = 1_800_000_000
    assert hook.judge("127.0.0.1", lower(sign(two, ts)), two).status == 202
    clock.advance(20)
    answer = hook.judge("127.0.0.1", lower(sign(two, ts + 20)), two)
    assert (answer.status, answer.headers["Retry-After"]) == (429, "40")
    assert hook.judge("127.0.0.1", lower(sign(BODY, ts + 20)), BODY).status == 202
    clock.advance(40)
    assert hook.judge("127.0.0.1", lower(sign(two, ts + 60)), two).status == 202


def test_a_body_nested_beyond_reason_is_a_400_not_a_crash() -> None:
    s = SignalsSettings(webhook=True, webhook_secret=SECRET)
    hook = Webhook(s, Inbox(), LiveClock())
    deep = b"[" * 30_000 + b"]" * 30_000
    answer = hook.judge("127.0.0.1", lower(sign(deep)), deep)
    assert answer.status == 400 and "not JSON" in answer.body["error"]
