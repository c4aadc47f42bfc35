"""The Binance feed inside the engine: rejects stored, the breaker fed, nothing lost under load,
a mixed feed, and the whole program against the loopback servers."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_binance import (
    FakeRest,
    FakeStreams,
    exchange_entry,
    spot_symbols,
    symbol_names,
    until,
)

from mikrobot_tui.config import Settings
from mikrobot_tui.data.feeds.binance import BinanceFeed
from mikrobot_tui.data.feeds.binance_rest import instrument_from
from mikrobot_tui.data.ws import WsSettings
from mikrobot_tui.engine import Engine, build_engine
from mikrobot_tui.engine.runner import Runner

MIKROBOT = [sys.executable, "-m", "mikrobot_tui.cli"]
WS = dict(backoff_base_s=0.05, backoff_cap_s=0.2, open_timeout_s=2.0, close_timeout_s=0.5)


@pytest.fixture
def streams() -> Iterator[FakeStreams]:
    with FakeStreams() as server:
        yield server


def settings_for(db: Path, store_ticks: bool = True, **extra: object) -> Settings:
    engine = {"db": str(db), "feed": "binance", "store_ticks": store_ticks}
    return Settings(engine=engine, **extra)  # type: ignore[arg-type]


def engine_on(db: Path, feed: BinanceFeed, store_ticks: bool = True, **extra: object) -> Engine:
    return Engine(settings_for(db, store_ticks, **extra), feed=feed, db_path=db)


def rows(db: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


async def run_while(runner: Runner, work: asyncio.Future | None, seconds: float) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop, duration_s=seconds))
    if work is not None:
        await work
    await task


async def test_rejected_frames_and_trades_reach_the_database(
    streams: FakeStreams, tmp_path: Path
) -> None:
    db = tmp_path / "b.db"
    feed = BinanceFeed(["BTCUSDT"], {}, ["bookTicker", "trade"], WsSettings((streams.url,), **WS))
    engine = engine_on(db, feed)
    runner = Runner(engine)

    async def script() -> None:
        assert await until(lambda: streams.open_connections() == 1)
        for i in range(20):
            await streams.acall(streams.book("BTCUSDT", 100 + i * 0.01, 100.5 + i * 0.01))
            await streams.acall(streams.trade("BTCUSDT", 100.2, 0.01))
        await streams.acall(streams.raw("garbage{"))
        await streams.acall(
            streams.raw(
                '{"stream":"btcusdt@bookTicker","data":{"u":999,"s":"BTCUSDT","b":"5","a":"4"}}'
            )
        )
        await streams.acall(streams.book("BTCUSDT", 101, 101.5))

    await run_while(runner, asyncio.ensure_future(script()), 2.0)
    engine.close()
    rejects = rows(db, "SELECT source, symbol, reason, raw FROM rejects ORDER BY id")
    assert [r[0] for r in rejects] == ["feed:binance", "feed:binance"]
    assert rejects[0][3] == "garbage{" and "malformed frame" in rejects[0][2]
    assert rejects[1][1] == "BTCUSDT" and "crossed quote" in rejects[1][2]
    assert rows(db, "SELECT COUNT(*) FROM market_trades")[0][0] == 20
    assert engine.corridor.counts.ticks_in == 21 and engine.corridor.counts.rejects == 2
    (feed_row,) = rows(db, "SELECT name, venue, state FROM feeds")
    assert feed_row[:2] == ("binance#1", "binance")


async def test_connection_failures_open_the_feed_breaker(
    streams: FakeStreams, tmp_path: Path
) -> None:
    db = tmp_path / "b.db"
    streams.refuse = 10**6  # the venue refuses every handshake
    feed = BinanceFeed(["BTCUSDT"], {}, ["bookTicker"], WsSettings((streams.url,), **WS))
    engine = engine_on(db, feed, breakers={"failure_threshold": 2})
    await run_while(Runner(engine), None, 3.5)
    engine.close()
    changes = [
        json.loads(p)
        for (p,) in rows(db, "SELECT payload FROM events WHERE kind = 'breaker_changed'")
    ]
    opened = [c for c in changes if c["new_state"] == "OPEN" and c["name"] == "feed:binance"]
    assert opened and "handshake refused: HTTP 503" in opened[0]["reason"]
    assert rows(db, "SELECT state FROM breakers WHERE name = 'feed:binance'")[0][0] == "OPEN"


@pytest.mark.slow
async def test_50_symbols_at_200_per_second_each_are_delivered_or_counted(
    streams: FakeStreams, tmp_path: Path
) -> None:
    """10 seconds of 10,000 quotes a second: each one reaches the corridor or is counted as
    conflated (by the feed or by the engine's queue); none vanishes."""
    symbols = symbol_names(50)
    spot = {n: instrument_from(exchange_entry(n, r)) for n, r in spot_symbols(symbols).items()}
    feed = BinanceFeed(symbols, spot, ["bookTicker"], WsSettings((streams.url,), **WS))
    engine = engine_on(tmp_path / "b.db", feed, store_ticks=False)
    runner = Runner(engine)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    assert await until(lambda: sum(len(s) for s in streams.subscribed()) == 50)
    sent = await streams.acall(streams.pump(symbols, per_symbol_per_s=200, seconds=10))

    def accounted() -> int:
        return engine.corridor.counts.ticks_in + runner.queue.dropped + feed.parser.conflated

    await until(lambda: accounted() >= sent, timeout=10)
    stop.set()
    await task
    engine.close()
    assert sent >= 50 * 200 * 9  # the server kept up (roughly)
    assert accounted() == sent, (engine.corridor.counts.ticks_in, runner.queue.dropped, sent)
    assert feed.parser.gate.refused == 0
    assert sum(h.conflated for h in feed.health()) == feed.parser.conflated


def test_a_mixed_feed_of_binance_and_the_simulated_market(
    streams: FakeStreams, tmp_path: Path
) -> None:
    with FakeRest(spot_symbols(["BTCUSDT", "ETHUSDT"])) as rest:
        settings = Settings(
            engine={"db": str(tmp_path / "m.db"), "feed": "mixed"},
            feeds=[
                {"venue": "binance", "symbols": ["BTCUSDT", "ETHUSDT"]},
                {"venue": "sim", "symbols": ["EURUSD", "USDJPY"]},
            ],
            binance={"stream_url": streams.url, "rest_url": rest.url, "fallback_urls": []},
            sim={"warmup_minutes": 0, "faults": False},
        )  # type: ignore[arg-type]
        engine = build_engine(settings)
    assert engine.feed.mode == "LIVE" and engine.feed.name == "binance+sim"
    assert engine.symbols == ["BTCUSDT", "ETHUSDT", "EURUSD", "USDJPY"]
    assert engine.ledger.instruments  # Binance's instruments went in beside the catalogue's

    async def main() -> None:
        async def script() -> None:
            assert await until(lambda: streams.open_connections() == 1)
            for i in range(10):
                await streams.acall(streams.book("ETHUSDT", 3000 + i, 3000.5 + i))
                await asyncio.sleep(0.05)

        await run_while(Runner(engine), asyncio.ensure_future(script()), 2.0)

    asyncio.run(main())
    engine.close()
    latest = dict(rows(tmp_path / "m.db", "SELECT symbol, bid FROM latest"))
    assert latest["ETHUSDT"] == 3009 and "EURUSD" in latest and "BTCUSDT" not in latest
    feeds = rows(tmp_path / "m.db", "SELECT name, venue FROM feeds ORDER BY name")
    assert feeds == [("binance#1", "binance"), ("sim", "sim")]
    sol = rows(tmp_path / "m.db", "SELECT min_notional FROM instruments WHERE symbol='ETHUSDT'")
    assert sol == [(5.0,)]  # from exchangeInfo, not the catalogue's 10


def cli_env(**extra: str) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("MIKROBOT_")}
    e.update(PYTHONIOENCODING="ascii", **extra)
    return e


def run_program(
    streams: FakeStreams, rest: FakeRest, db: Path, seconds: float, until_s: float
) -> subprocess.CompletedProcess[str]:
    """`mikrobot run --headless` on the loopback servers while quotes flow; then status."""
    env = cli_env(
        MIKROBOT_ENGINE__FEED="binance",
        MIKROBOT_BINANCE__STREAM_URL=streams.url,
        MIKROBOT_BINANCE__REST_URL=rest.url,
        MIKROBOT_BINANCE__FALLBACK_URLS="[]",
    )
    proc = subprocess.Popen(
        [*MIKROBOT, "--db", str(db), "run", "--headless", "--duration", str(seconds)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    step = 0
    end = time.monotonic() + until_s
    while time.monotonic() < end and proc.poll() is None:
        if streams.open_connections():
            streams.call(streams.book("BTCUSDT", 60_000 + step % 50, 60_000.5 + step % 50))
            streams.call(streams.book("ETHUSDT", 3_000 + step % 20, 3_000.5 + step % 20))
            streams.call(streams.trade("BTCUSDT", 60_000.2, 0.01))
            step += 1
        time.sleep(0.02)
    status = subprocess.run(
        [*MIKROBOT, "--db", str(db), "status", "--json"],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=30,
    )
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert step > 50, err
    return status


def test_the_program_runs_on_binance_streams(streams: FakeStreams, tmp_path: Path) -> None:
    db = tmp_path / "e2e.db"
    with FakeRest(spot_symbols(["BTCUSDT", "ETHUSDT"])) as rest:
        status = run_program(streams, rest, db, seconds=6, until_s=5)
    doc = json.loads(status.stdout)
    assert doc["engine"]["mode"] == "LIVE" and doc["engine"]["feed"] == "binance"
    (feed,) = doc["feeds"]
    assert feed["venue"] == "binance" and feed["name"] == "binance#1"
    assert feed["state"] == "LIVE" and feed["msgs_per_s"] > 0 and feed["reconnects"] == 0
    assert feed["latency_ms_p50"] is not None  # from the trades' own time
    ticks = {q["symbol"]: q["ticks"] for q in doc["quality"]}
    assert ticks["BTCUSDT"] > 50 and ticks["ETHUSDT"] > 50
    assert rows(db, "SELECT COUNT(*) FROM market_trades")[0][0] > 50
    assert rows(db, "SELECT tick_size FROM instruments WHERE symbol='BTCUSDT'") == [(0.01,)]


@pytest.mark.slow
def test_the_program_builds_bars_from_binance_quotes(streams: FakeStreams, tmp_path: Path) -> None:
    """A bar closes at a minute boundary of the quotes' receive time: run across one."""
    to_boundary = 60 - time.time() % 60
    if to_boundary < 8:
        time.sleep(to_boundary + 1)
        to_boundary = 60 - time.time() % 60
    time.sleep(max(0.0, to_boundary - 5))  # start 5 s before a minute ends
    db = tmp_path / "bars.db"
    with FakeRest(spot_symbols(["BTCUSDT", "ETHUSDT"])) as rest:
        run_program(streams, rest, db, seconds=12, until_s=11)
    bars = rows(db, "SELECT symbol, timeframe, ticks FROM bars WHERE timeframe = 'M1'")
    assert {b[0] for b in bars} == {"BTCUSDT", "ETHUSDT"} and all(b[2] > 0 for b in bars)


async def test_a_market_order_walks_the_binance_book_the_feed_delivers(
    streams: FakeStreams, tmp_path: Path
) -> None:
    from mikrobot_tui.domain.events import EventKind
    from mikrobot_tui.domain.orders import Order, OrderIntent, Side, TimeInForce
    from mikrobot_tui.paper.portfolio import order_payload
    from mikrobot_tui.store.events import read_events

    db = tmp_path / "depth.db"
    feed = BinanceFeed(["BTCUSDT"], {}, ["bookTicker", "depth"], WsSettings((streams.url,), **WS))
    engine = engine_on(db, feed, store_ticks=False, paper={"latency_model": "fixed"})
    runner = Runner(engine)

    async def script() -> None:
        assert await until(lambda: streams.open_connections() == 1)
        await streams.acall(streams.depth("BTCUSDT", 100.50))  # asks 100.51 x 1, 100.52 x 2, ...
        await streams.acall(streams.book("BTCUSDT", 100.49, 100.51))
        assert await until(lambda: engine.quotes.quote(0) is not None)
        ts = engine.event_ts()
        order = Order("A-900001", "A", "BTCUSDT", Side.BUY, 2.5, OrderIntent.OPEN, ts, ts,
                      tif=TimeInForce.IOC)  # fmt: skip
        engine.ledger.emit(ts, EventKind.ORDER_SUBMITTED, "A", order_payload(order))
        for _ in range(5):
            await asyncio.sleep(0.1)
            await streams.acall(streams.depth("BTCUSDT", 100.50))
            await streams.acall(streams.book("BTCUSDT", 100.49, 100.51))

    await run_while(runner, asyncio.ensure_future(script()), 2.0)
    fills = [e for e in read_events(engine.conn) if e.kind is EventKind.ORDER_FILLED]
    engine.close()
    (fill,) = [f for f in fills if f.payload["order_id"] == "A-900001"]
    # 1 at 100.51 and 1.5 at 100.52: the book's volume-weighted price 100.516, on the 0.01
    # tick 100.52 (the touch plus slippage would be 100.512: 100.51)
    assert fill.payload["lots"] == 2.5
    assert fill.payload["price"] == 100.52
