"""The WebSocket manager's rules in isolation: backoff, attempt window, pacing, sequence gate."""

from __future__ import annotations

import pytest

from mikrobot_tui.data.feeds.binance_parse import BinanceDialect
from mikrobot_tui.data.ws import REPLY, SHUTDOWN
from mikrobot_tui.data.ws_limits import AttemptLimiter, Backoff, Pacer, SequenceGate


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_backoff_is_full_jitter_doubling_to_the_cap_and_resets() -> None:
    top = Backoff(0.5, 30.0, rand=lambda: 1.0)
    assert [top.next() for _ in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    top.reset()
    assert top.next() == 0.5
    low = Backoff(0.5, 30.0, rand=lambda: 0.0)
    assert all(low.next() == 0.0 for _ in range(5))  # full jitter reaches zero
    half = Backoff(0.5, 30.0, rand=lambda: 0.5)
    assert [half.next() for _ in range(3)] == [0.25, 0.5, 1.0]
    for _ in range(2000):  # never overflows however long it fails
        top.next()
    assert top.ceiling() == 30.0


def test_attempt_limiter_allows_300_in_any_5_minutes() -> None:
    clock = FakeClock()
    limiter = AttemptLimiter(300, 300.0, clock)
    for _ in range(300):
        assert limiter.wait_s() == 0
        limiter.record()
        clock.now += 0.1
    assert limiter.wait_s() == pytest.approx(300 - 30.0)  # the first one ages out then
    clock.now += 270.0
    assert limiter.wait_s() == 0
    assert len(limiter) == 299


def test_pacer_spaces_control_messages() -> None:
    clock = FakeClock()
    pacer = Pacer(4.0, clock)
    waits = [pacer.reserve() for _ in range(5)]
    assert waits == pytest.approx([0, 0.25, 0.5, 0.75, 1.0])  # never five in one second
    clock.now += 10
    assert pacer.reserve() == 0


def test_sequence_gate_drops_what_was_delivered_and_survives_a_reset() -> None:
    gate = SequenceGate(reset_after_ns=1_000, reset_frames=3)
    assert [gate.admit("a", s, 0) for s in (1, 2, 2, 3, 1, 5)] == [1, 1, 0, 1, 0, 1]
    assert gate.admit("b", 1, 0)  # streams are independent
    assert gate.refused == 2
    # a stream whose numbering restarted is refused only for a while, then followed again
    assert not gate.admit("a", 1, 10)
    assert not gate.admit("a", 2, 500)
    assert gate.admit("a", 3, 2_000) and gate.resets == 1
    assert gate.admit("a", 4, 2_001) and not gate.admit("a", 4, 2_002)


def test_binance_dialect_addresses_subscriptions_and_control_frames() -> None:
    d = BinanceDialect()
    url, rest = d.url("wss://stream.binance.com:9443/", ["btcusdt@bookTicker", "btcusdt@trade"])
    assert url == "wss://stream.binance.com:9443/stream?streams=btcusdt@bookTicker/btcusdt@trade"
    assert rest == []
    many = [f"s{i}usdt@depth20@100ms" for i in range(400)]
    url, rest = d.url("ws://127.0.0.1:1/stream", many)
    assert url.startswith("ws://127.0.0.1:1/stream?streams=s0usdt@") and "/stream/stream" not in url
    assert len(url) < 2100 and rest and len(rest) < 400 and url.endswith(many[-len(rest) - 1])
    assert '"SUBSCRIBE"' in d.subscribe(rest[:2], 7) and '"id": 7' in d.subscribe(rest[:2], 7)
    assert d.control('{"stream":"btcusdt@trade","data":{}}') is None
    assert d.control('{"result":null,"id":3}') == d.control('{"result": null, "id": 3}')
    reply = d.control('{"result":null,"id":3}')
    assert reply is not None and reply.kind == REPLY and reply.request_id == 3 and not reply.error
    refused = d.control('{"code":2,"msg":"Invalid request","id":4}')
    assert refused is not None and refused.request_id == 4 and "Invalid request" in refused.error
    shutdown = d.control('{"event":{"e":"serverShutdown","E":1}}')
    assert shutdown is not None and shutdown.kind == SHUTDOWN
    assert d.control("not json") is None and d.control("[1,2]") is None
    ping = d.control('{"ping":123}')
    assert ping is not None and ping.answer == '{"pong": 123}'


async def test_the_manager_backs_off_with_jitter_and_keeps_to_the_attempt_window() -> None:
    """Refused handshakes: waits of base x 2^n (the random draw pinned at its top), and a pause
    once the attempt window is full; clock, sleep and randomness are the test's."""
    import asyncio

    from fake_binance import FakeStreams, until

    from mikrobot_tui.data.feeds.binance_parse import BinanceParser, stream_names
    from mikrobot_tui.data.ws import WsManager, WsSettings

    clock = FakeClock()
    sleeps: list[float] = []

    async def sleep(seconds: float, wake: asyncio.Event) -> None:
        sleeps.append(seconds)
        clock.now += seconds
        await asyncio.sleep(0)

    with FakeStreams() as streams:
        streams.refuse = 4
        parser = BinanceParser(["BTCUSDT"], ["bookTicker"])
        manager = WsManager(
            "binance",
            "binance",
            BinanceDialect(),
            [stream_names("BTCUSDT", ["bookTicker"])],
            WsSettings((streams.url,)),
            parser,
            clock=clock,
            sleep=sleep,
            rand=lambda: 1.0,
            attempts=AttemptLimiter(3, 300.0, clock),
        )
        stop = asyncio.Event()
        task = asyncio.create_task(manager.run(stop))
        assert await until(lambda: streams.open_connections() == 1)
        stop.set()
        await asyncio.wait_for(task, 5)
    assert sleeps == pytest.approx([0.5, 1.0, 2.0, 296.5, 4.0])
    assert streams.handshakes == 5 and len(manager.take_failures()) == 4
    assert manager.health()[0].state == "STOPPED"
