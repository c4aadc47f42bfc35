"""The Binance feed against a real WebSocket server on 127.0.0.1 speaking Binance's protocol."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fake_binance import FakeStreams, symbol_names, until

from mikrobot_tui.data.feeds.binance import BinanceFeed
from mikrobot_tui.data.feeds.health import LIVE
from mikrobot_tui.data.ws import WsSettings

ALL = ["bookTicker", "trade", "depth", "kline"]
FAST = dict(
    backoff_base_s=0.05,
    backoff_cap_s=0.2,
    open_timeout_s=2.0,
    close_timeout_s=0.5,
    ready_timeout_s=3.0,
    overlap_s=0.05,
    stable_after_s=1.0,
    stale_after_s=5.0,
)


def make_feed(
    urls: list[str], symbols: list[str], streams: list[str] = ALL, **ws: Any
) -> BinanceFeed:
    return BinanceFeed(symbols, {}, streams, WsSettings(tuple(urls), **{**FAST, **ws}))


class Running:
    """The feed's batches consumed on the test's loop, as the engine's runner does."""

    def __init__(self, feed: BinanceFeed) -> None:
        self.feed = feed
        self.stop = asyncio.Event()
        self.batches: list[np.ndarray] = []

    async def __aenter__(self) -> Running:
        self.task = asyncio.create_task(self._consume())
        return self

    async def _consume(self) -> None:
        async for batch in self.feed.batches(self.stop):
            self.batches.append(batch)

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 10)

    def count(self) -> int:
        return sum(len(b) for b in self.batches)

    def bids(self, sym: int) -> list[float]:
        q = np.concatenate(self.batches) if self.batches else np.zeros(0)
        return q["bid"][q["sym"] == sym].tolist() if len(q) else []


@pytest.fixture
def streams() -> Iterator[FakeStreams]:
    with FakeStreams() as server:
        yield server


def subscribed(server: FakeStreams, n: int, connections: int = 1) -> bool:
    subs = server.subscribed()
    return len(subs) == connections and sum(len(s) for s in subs) == n


async def rounds(server: FakeStreams, symbols: list[str], first: int, last: int) -> None:
    """Quotes first..last-1 for every symbol: bid = 1000 + step, so a test can check each."""
    for step in range(first, last):
        for s in symbols:
            await server.book(s, 1000 + step, 1000.5 + step)


async def steady(
    server: FakeStreams, symbols: list[str], n: int, per_s: float, first: int = 0
) -> None:
    for step in range(first, first + n):
        for s in symbols:
            await server.book(s, 1000 + step, 1000.5 + step)
        await asyncio.sleep(1 / per_s)


async def test_many_symbols_flow_in_order(streams: FakeStreams) -> None:
    symbols = symbol_names(60)  # 240 streams: too many for the address, the rest subscribed
    feed = make_feed([streams.url], symbols)
    async with Running(feed) as run:
        assert await until(lambda: subscribed(streams, 240))

        async def script() -> None:
            await rounds(streams, symbols, 0, 10)
            for s in symbols:
                await streams.trade(s, 50.0, 0.5, maker=s.endswith("1USDT"))
                await streams.depth(s, 100.0)
                await streams.kline(s, 1_700_000_040_000, 10.0, 11.0, closed=False)
                await streams.kline(s, 1_700_000_040_000, 10.0, 12.0, closed=True)

        await streams.acall(script())
        assert await until(lambda: run.count() == 600 and len(feed.depth) == 60)
        assert await until(lambda: len(feed.klines) == 60)
    assert any('"SUBSCRIBE"' in m for m in streams.received)
    for sym in range(60):
        assert run.bids(sym) == [1000.0 + i for i in range(10)]
    quotes = np.concatenate(run.batches)
    assert (quotes["ts_event"] == quotes["ts_recv"]).all()  # bookTicker has no time of its own
    assert np.isnan(quotes["last"]).all()
    trades = feed.take_trades()
    assert len(trades) == 60 and (trades["price"] == 50.0).all()
    assert (trades["ts_event"] < trades["ts_recv"]).all()  # trade time from Binance
    assert trades["side"][1] == -1 and trades["side"][0] == 1  # S1USDT: the buyer was maker
    book = feed.depth["S7USDT"]
    assert book.bids.shape == (20, 2) and book.bids[0, 0] < book.asks[0, 0]
    assert feed.books().keys() == feed.depth.keys() and feed.books()["S7USDT"] is book
    k = feed.klines["S3USDT"]
    assert (k.open, k.close, k.ts_open) == (10.0, 12.0, 1_700_000_040_000 * 1_000_000)
    assert feed.take_rejects() == []
    (health,) = feed.health()
    assert health.venue == "binance" and health.reconnects == 0
    assert health.latency_ms_p50 is not None and health.latency_ms_p50 >= 0


async def test_streams_are_split_over_connections(streams: FakeStreams) -> None:
    symbols = symbol_names(5)
    feed = make_feed([streams.url], symbols, max_streams=8)  # 2 symbols per connection
    async with Running(feed) as run:
        assert await until(lambda: subscribed(streams, 20, connections=3))
        assert all(len(s) <= 8 for s in streams.subscribed())
        await streams.acall(rounds(streams, symbols, 0, 5))
        assert await until(lambda: run.count() == 25)
    assert [h.name for h in feed.health()] == ["binance#1", "binance#2", "binance#3"]
    for sym in range(5):
        assert run.bids(sym) == [1000.0 + i for i in range(5)]


async def test_a_dropped_connection_reconnects_and_resubscribes(streams: FakeStreams) -> None:
    symbols = ["BTCUSDT", "ETHUSDT"]
    feed = make_feed([streams.url], symbols)
    async with Running(feed) as run:
        assert await until(lambda: subscribed(streams, 8))
        await streams.acall(rounds(streams, symbols, 0, 50))
        assert await until(lambda: run.count() == 100)
        await streams.acall(streams.drop())
        assert await until(lambda: streams.handshakes == 2 and subscribed(streams, 8))
        await streams.acall(rounds(streams, symbols, 50, 100))
        assert await until(lambda: run.count() == 200)
        assert await until(lambda: feed.health()[0].state == LIVE)
    for sym in range(2):  # nothing corrupt, nothing twice, nothing missing
        assert run.bids(sym) == [1000.0 + i for i in range(100)]
    (health,) = feed.health()
    assert health.reconnects == 1
    failures = feed.take_failures()
    assert len(failures) == 1 and "connection lost" in failures[0][1]


async def test_a_stalled_stream_is_reconnected(streams: FakeStreams) -> None:
    feed = make_feed([streams.url], ["BTCUSDT"], stale_after_s=0.4)
    async with Running(feed) as run:
        assert await until(lambda: subscribed(streams, 4))
        await streams.acall(rounds(streams, ["BTCUSDT"], 0, 5))
        assert await until(lambda: run.count() == 5)
        # the server keeps the connection open and says nothing
        assert await until(lambda: streams.handshakes >= 2, timeout=5)
        assert await until(lambda: subscribed(streams, 4))
        await streams.acall(rounds(streams, ["BTCUSDT"], 5, 10))
        assert await until(lambda: run.count() == 10)
    assert run.bids(0) == [1000.0 + i for i in range(10)]
    reasons = [r for _, r in feed.take_failures()]
    assert reasons and "stale: no message for" in reasons[0]
    assert feed.health()[0].reconnects >= 1


GARBAGE = [
    "not json at all",
    "[1, 2, 3]",
    '{"stream": "xyzusdt@bookTicker", "data": {"u": 1, "s": "XYZUSDT", "b": "1", "a": "2"}}',
    '{"stream": "btcusdt@bookTicker", "data": {"u": "7", "s": "BTCUSDT", "b": "1", "a": "2"}}',
    '{"stream": "btcusdt@bookTicker", "data": {"u": 8, "s": "BTCUSDT", "b": 1.5, "a": "2"}}',
    '{"stream": "btcusdt@bookTicker", "data": {"u": 9, "s": "BTCUSDT", "b": "abc", "a": "2"}}',
    '{"stream": "btcusdt@bookTicker", "data": {"u": 10, "s": "BTCUSDT", "b": "3", "a": "2"}}',
    '{"stream": "btcusdt@bookTicker", "data": {"u": 11, "s": "BTCUSDT", "b": "-1", "a": "2"}}',
    '{"stream": "btcusdt@bookTicker", "data": {"u": 12, "s": "BTCUSDT", "b": "NaN", "a": "2"}}',
    '{"stream": "btcusdt@bookTicker", "data": {"u": 13, "s": "BTCUSDT", "b": "1", "a": "inf"}}',
    '{"stream": "btcusdt@bookTicker", "data": {"u": 14, "s": "BTCUSDT", "b": "1"}}',
    '{"stream": "btcusdt@bookTicker", "data": {"u": 15, "s": "ETHUSDT", "b": "1", "a": "2"}}',
    '{"stream": "btcusdt@bookTicker", "data": [1, 2]}',
    '{"stream": "btcusdt@trade", "data": {"e": "trade", "E": 1, "s": "BTCUSDT", "t": 1,'
    ' "p": "1", "q": "1", "T": 1, "m": "yes"}}',
    '{"stream": "btcusdt@depth20@100ms", "data": {"lastUpdateId": 1,'
    ' "bids": [["2", "1"]], "asks": [["1", "1"]]}}',
    '{"stream": "btcusdt@depth20@100ms", "data": {"lastUpdateId": 2, "bids": [["x", "1"]],'
    ' "asks": []}}',
]


async def test_garbage_and_wrong_types_are_rejected_and_the_feed_lives_on(
    streams: FakeStreams,
) -> None:
    feed = make_feed([streams.url], ["BTCUSDT", "ETHUSDT"])
    async with Running(feed) as run:
        assert await until(lambda: subscribed(streams, 8))

        async def script() -> None:
            for text in GARBAGE:
                await streams.raw(text)
            await streams.raw("\x00\xff binary-ish")
            await rounds(streams, ["BTCUSDT"], 0, 3)

        await streams.acall(script())
        assert await until(lambda: run.count() == 3)
        (health,) = feed.health()
        assert health.state == LIVE and health.reconnects == 0
    rejects = feed.take_rejects()
    assert len(rejects) == len(GARBAGE) + 1
    reasons = [r.reason for r in rejects]
    for expected in (
        "malformed frame",
        "unknown stream",
        "wrong type: u is str",
        "wrong type: bid is float",
        "non-numeric bid",
        "crossed quote",
        "non-positive bid",
        "non-finite",
        "missing field 'a'",
        "unknown symbol 'ETHUSDT'",
        "trade: wrong type: m",
        "depth: crossed book",
        "depth: non-numeric bids",
    ):
        assert any(expected in r for r in reasons), (expected, reasons)
    assert all(r.feed == "binance" and r.raw for r in rejects)
    assert {r.raw for r in rejects} >= set(GARBAGE)
    assert run.bids(0) == [1000.0, 1001.0, 1002.0]
    assert feed.take_failures() == []


async def test_a_planned_rotation_has_no_gap_and_no_duplicate(streams: FakeStreams) -> None:
    """A short rotate_after stands for Binance's 24-hour cut."""
    symbols = ["BTCUSDT", "ETHUSDT"]
    feed = make_feed([streams.url], symbols, rotate_after_s=0.6)
    async with Running(feed) as run:
        assert await until(lambda: subscribed(streams, 8))
        await streams.acall(steady(streams, symbols, 600, per_s=200))
        assert await until(lambda: run.count() == 1200)
    link = feed.ws.slots[0]
    assert link.rotations >= 2 and streams.handshakes >= 3
    for sym in range(2):
        assert run.bids(sym) == [1000.0 + i for i in range(600)]
    assert feed.take_failures() == []  # a planned reconnect is no failure
    assert feed.health()[0].reconnects == 0
    assert feed.parser.gate.refused > 0  # both connections delivered during the overlaps


async def test_server_shutdown_notice_moves_to_a_new_connection(streams: FakeStreams) -> None:
    symbols = ["BTCUSDT"]
    feed = make_feed([streams.url], symbols)
    async with Running(feed) as run:
        assert await until(lambda: subscribed(streams, 4))

        async def script() -> None:
            await steady(streams, symbols, 50, per_s=200)
            await streams.shutdown_notice()
            await steady(streams, symbols, 250, per_s=200, first=50)

        await streams.acall(script())
        assert await until(lambda: run.count() == 300)
        assert await until(lambda: streams.open_connections() == 1)
    assert streams.handshakes == 2
    assert run.bids(0) == [1000.0 + i for i in range(300)]
    assert feed.take_failures() == [] and feed.ws.slots[0].rotations == 1


async def test_refused_handshakes_are_retried_with_backoff(streams: FakeStreams) -> None:
    streams.refuse = 3
    feed = make_feed([streams.url], ["BTCUSDT"])
    async with Running(feed) as run:
        assert await until(lambda: subscribed(streams, 4))
        await streams.acall(rounds(streams, ["BTCUSDT"], 0, 3))
        assert await until(lambda: run.count() == 3)
    assert streams.refused == 3 and streams.handshakes == 4
    failures = [r for _, r in feed.take_failures()]
    assert len(failures) == 3 and all("HTTP 503" in r for r in failures)
    assert feed.health()[0].reconnects == 0  # it never had a connection to lose


def dead_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_fails_over_to_the_next_endpoint(streams: FakeStreams) -> None:
    primary = f"ws://127.0.0.1:{dead_port()}"
    feed = make_feed([primary, streams.url], ["BTCUSDT"])
    async with Running(feed) as run:
        assert await until(lambda: subscribed(streams, 4))
        await streams.acall(rounds(streams, ["BTCUSDT"], 0, 3))
        assert await until(lambda: run.count() == 3)
    failures = [r for _, r in feed.take_failures()]
    assert failures and failures[0].startswith(f"binance#1: {primary}")


async def test_pings_are_answered_with_their_payload(streams: FakeStreams) -> None:
    feed = make_feed([streams.url], ["BTCUSDT"])
    async with Running(feed):
        assert await until(lambda: subscribed(streams, 4))

        async def ping() -> float:
            (ws,) = list(streams.subs)
            waiter = await ws.ping(b"binance-ping-42")
            return await asyncio.wait_for(waiter, 2)

        latency = await streams.acall(ping())
    assert latency >= 0
