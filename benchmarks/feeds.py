"""Live feed figures: the Binance parser, one connection's throughput, recovery, latency.

    python -m benchmarks.feeds [--quick]

1. parse and normalize one frame (JSON, checks, the sequence gate, the row, its share of the
   TICK_DTYPE array): bookTicker and trade, target under 5 us;
2. frames per second one WebSocket connection sustains on loopback into the engine (a server
   process writes pre-built frames as fast as the socket takes them; the engine runs the
   corridor on what arrives, conflating when it falls behind), target 50,000;
3. time from the server coming back after a 2 s outage to quotes flowing again (the real
   backoff: base 0.5 s, cap 30 s, full jitter), target under 2 s;
4. tick arrival to decision with 50 symbols at 10,000 quotes a second in total (a server
   process paces them): the time from a quote's receipt to the end of the corridor's work on
   its batch, p99 target under 1 ms; a quote conflated away counts as a miss.
Each figure is the median of several runs; the runs are printed too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

SYMBOLS = [f"S{i}USDT" for i in range(50)]
_SEP = (",", ":")


def book_frames(n: int, symbols: list[str] = SYMBOLS) -> list[str]:
    out = []
    for i in range(n):
        s = symbols[i % len(symbols)]
        mid = 100.0 + (i // len(symbols)) % 50 * 0.01
        data = {"u": 1_000_000 + i, "s": s, "b": f"{mid:.8f}", "B": "1.25000000",
                "a": f"{mid + 0.01:.8f}", "A": "3.50000000"}  # fmt: skip
        out.append(json.dumps({"stream": f"{s.lower()}@bookTicker", "data": data}, separators=_SEP))
    return out


def trade_frames(n: int, symbols: list[str] = SYMBOLS) -> list[str]:
    now = int(time.time() * 1000)
    out = []
    for i in range(n):
        s = symbols[i % len(symbols)]
        data = {"e": "trade", "E": now + i, "s": s, "t": 5_000_000 + i, "p": "100.01000000",
                "q": "0.01200000", "T": now + i - 1, "m": bool(i % 2), "M": True}  # fmt: skip
        out.append(json.dumps({"stream": f"{s.lower()}@trade", "data": data}, separators=_SEP))
    return out


def spot(symbols: list[str]) -> dict[str, Any]:
    from mikrobot_tui.domain.instruments import AssetClass, Instrument

    return {
        s: Instrument(s, AssetClass.CRYPTO, s[:-4], "USDT", 0.01, 0.01, 1, 1e-5, 1e-5, 0, 10, 5)
        for s in symbols
    }


# ---------------------------------------------------------------- 1. parse per frame


def parse_us(frames: list[str], kinds: list[str]) -> float:
    from mikrobot_tui.data.feeds.binance_parse import BinanceParser

    parser = BinanceParser(SYMBOLS, kinds)
    recv = time.time_ns()
    t0 = time.perf_counter_ns()
    for k in range(0, len(frames), 500):
        for raw in frames[k : k + 500]:
            parser(raw, recv)
        parser.take_quotes()
        parser.take_trades()
    elapsed = time.perf_counter_ns() - t0
    assert parser.rejects.total == 0
    return elapsed / len(frames) / 1000


def bench_parse(runs: int) -> None:
    from mikrobot_tui.data.feeds.binance_parse import fast_loads

    books, trades = book_frames(100_000), trade_frames(100_000)
    b = [parse_us(books, ["bookTicker"]) for _ in range(runs)]
    t = [parse_us(trades, ["trade"]) for _ in range(runs)]
    t0 = time.perf_counter_ns()
    for raw in books:
        json.loads(raw)
    loads = (time.perf_counter_ns() - t0) / len(books) / 1000
    print("1. parse and normalize per frame (target under 5 us)")
    print(f"   bookTicker median {statistics.median(b):5.2f} us   runs {fmt(b)}")
    print(f"   trade      median {statistics.median(t):5.2f} us   runs {fmt(t)}")
    t0 = time.perf_counter_ns()
    for raw in books:
        fast_loads(raw)
    fast = (time.perf_counter_ns() - t0) / len(books) / 1000
    print(f"   (bookTicker frame: orjson.loads alone {fast:.2f} us, json.loads {loads:.2f} us)")


def fmt(values: list[float]) -> str:
    return " ".join(f"{v:,.2f}" for v in values)


# ---------------------------------------------------------------- a server in its own process


def _encode(text: str) -> bytes:
    data = text.encode()
    n = len(data)
    head = bytes([0x81, n]) if n < 126 else bytes([0x81, 126]) + n.to_bytes(2, "big")
    return head + data


def _serve(port_out: Any, mode: str, frames_n: int, rate: float, seconds: float) -> None:
    """A combined-stream server: `blast` writes frames_n pre-built frames as fast as the
    socket takes them; `paced` sends `rate` frames a second for `seconds`."""
    from websockets.asyncio.server import serve

    frames = [_encode(f) for f in book_frames(frames_n)]

    async def handler(ws: Any) -> None:
        transport = ws.transport
        if mode == "blast":
            for k in range(0, len(frames), 2000):
                transport.write(b"".join(frames[k : k + 2000]))
                while transport.get_write_buffer_size() > 4 << 20:
                    await asyncio.sleep(0.0005)
        else:
            start, sent = time.monotonic(), 0
            while (elapsed := time.monotonic() - start) < seconds and not transport.is_closing():
                due = min(int(elapsed * rate), len(frames)) - sent
                if due > 0:
                    transport.write(b"".join(frames[sent : sent + due]))
                    sent += due
                await asyncio.sleep(0.0005)
        await ws.wait_closed()

    async def main() -> None:
        async with serve(handler, "127.0.0.1", 0, compression=None) as server:
            port_out.put(server.sockets[0].getsockname()[1])
            await asyncio.sleep(3600)

    asyncio.run(main())


def server_process(mode: str, frames_n: int, rate: float = 0, seconds: float = 0) -> tuple:
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    proc = ctx.Process(target=_serve, args=(q, mode, frames_n, rate, seconds), daemon=True)
    proc.start()
    return proc, q.get(timeout=30)


def engine_on(url: str, tmp: str, symbols: list[str]) -> tuple[Any, Any]:
    from mikrobot_tui.config import Settings
    from mikrobot_tui.data.feeds.binance import BinanceFeed
    from mikrobot_tui.data.ws import WsSettings
    from mikrobot_tui.engine import Engine

    feed = BinanceFeed(symbols, spot(symbols), ["bookTicker"], WsSettings((url,)))
    settings = Settings(engine={"db": str(Path(tmp) / "f.db"), "store_ticks": False})
    engine = Engine(settings, feed=feed, db_path=Path(tmp) / "f.db")
    return engine, feed


# ---------------------------------------------------------------- 2. frames per second


async def _throughput(url: str, frames_n: int) -> tuple[float, int, int]:
    from mikrobot_tui.engine.runner import Runner

    with tempfile.TemporaryDirectory() as tmp:
        engine, feed = engine_on(url, tmp, SYMBOLS)
        runner = Runner(engine)
        link = feed.ws.slots[0]
        parser, seen, first = feed.parser, [0], [0.0]

        def counting(raw: str, recv: int) -> int | None:
            if not seen[0]:
                first[0] = time.perf_counter()
            seen[0] += 1
            return parser(raw, recv)

        link.sink = counting
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run(stop))
        deadline = time.monotonic() + 120
        while seen[0] < frames_n and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        rate = seen[0] / (time.perf_counter() - first[0])
        stop.set()
        await task
        into = engine.corridor.counts.ticks_in
        conflated = runner.queue.dropped + parser.conflated
        engine.close()
    return rate, into, conflated


def bench_throughput(runs: int, frames_n: int) -> None:
    rates = []
    for _ in range(runs):
        proc, port = server_process("blast", frames_n)
        try:
            rate, into, conflated = asyncio.run(_throughput(f"ws://127.0.0.1:{port}", frames_n))
        finally:
            proc.kill()
        rates.append(rate)
        last = (into, conflated)
    print("2. frames per second one connection sustains on loopback into the engine")
    print("   (target 50,000)")
    print(f"   median {statistics.median(rates):,.0f} frames/s   runs {fmt(rates)}")
    print(f"   (last run: {last[0]:,} quotes through the corridor, {last[1]:,} conflated)")


# ---------------------------------------------------------------- 3. back after an outage


async def _recovery(down_s: float) -> float:
    from fake_binance import FakeStreams

    from mikrobot_tui.data.feeds.binance import BinanceFeed
    from mikrobot_tui.data.ws import WsSettings

    with FakeStreams() as server:
        ws = WsSettings((server.url,))
        feed = BinanceFeed(["BTCUSDT"], spot(["BTCUSDT"]), ["bookTicker"], ws)
        stop = asyncio.Event()
        got: list[float] = []

        async def consume() -> None:
            async for _ in feed.batches(stop):
                got.append(time.monotonic())

        task = asyncio.create_task(consume())
        pump = asyncio.run_coroutine_threadsafe(
            server.pump(["BTCUSDT"], 200, 60, tick_s=0.005), server.loop
        )
        while not got:
            await asyncio.sleep(0.01)
        await server.acall(server._stop())
        await asyncio.sleep(down_s)
        await server.acall(server._start())
        up = time.monotonic()
        got.clear()
        while not got and time.monotonic() - up < 60:
            await asyncio.sleep(0.002)
        back = got[0] - up
        pump.cancel()
        stop.set()
        await task
    return back


def bench_recovery(runs: int) -> None:
    times = [asyncio.run(_recovery(2.0)) for _ in range(runs)]
    print("3. server back after a 2 s outage to quotes flowing again (target under 2 s)")
    print(f"   median {statistics.median(times):.2f} s   runs {fmt(times)}")


# ---------------------------------------------------------------- 4. arrival to decision


async def _latency(url: str, seconds: float) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Arrival-to-decision times (ns) of the quotes decided, the feed's part of them, and the
    count of every quote: received (frames into the parser), processed (through the corridor)
    and conflated (dropped by the parser or the engine's queue, and counted)."""
    from mikrobot_tui.engine.runner import Runner

    with tempfile.TemporaryDirectory() as tmp:
        engine, feed = engine_on(url, tmp, SYMBOLS)
        runner = Runner(engine)
        corridor = engine.corridor
        process, lat = corridor.process, []

        def timed(batch: np.ndarray) -> None:
            process(batch)
            lat.append(time.time_ns() - batch["ts_recv"])

        corridor.process = timed
        put, queued = runner.queue.put_nowait, []

        def timed_put(batch: np.ndarray) -> None:
            queued.append(time.time_ns() - batch["ts_recv"])
            put(batch)

        runner.queue.put_nowait = timed_put  # type: ignore[method-assign]
        link, parser, received = feed.ws.slots[0], feed.parser, [0]

        def counting(raw: str, recv: int) -> int | None:
            received[0] += 1
            return parser(raw, recv)

        link.sink = counting
        stop = asyncio.Event()
        await runner.run(stop, duration_s=seconds)
        conflated = runner.queue.dropped + feed.parser.conflated
        engine.close()
    got = np.concatenate(lat) if lat else np.zeros(0, dtype=np.int64)
    fed = np.concatenate(queued) if queued else np.zeros(0, dtype=np.int64)
    counts = {"received": received[0], "processed": len(got), "conflated": conflated}
    return got, fed, counts


def live_figures(rate: float = 10_000, seconds: float = 10.0) -> dict[str, float | None]:
    """One run's figures: a server process paces 50 symbols' quotes at `rate` a second in
    total for `seconds`; arrival to decision p50 and p99 (us, the first tenth warming up),
    p99 counting each conflated quote as a miss, the feed's part (arrival to the engine's
    queue) p99, every quote's fate, and this engine process's peak memory."""
    from benchmarks.common import peak_rss_mib

    proc, port = server_process("paced", int(rate * seconds) + 1000, rate, seconds)
    try:
        lat, fed, counts = asyncio.run(_latency(f"ws://127.0.0.1:{port}", seconds + 1))
    finally:
        proc.kill()
    lat, fed = lat[len(lat) // 10 :], fed[len(fed) // 10 :]  # the first tenth warms up
    missed = np.concatenate([lat, np.full(counts["conflated"], np.iinfo(np.int64).max)])

    def p(values: np.ndarray, q: float) -> float | None:
        return float(np.percentile(values, q)) / 1000 if len(values) else None

    return {
        "rate": rate,
        "p50_us": p(lat, 50),
        "p99_us": p(lat, 99),
        "p99_with_conflated_us": p(missed, 99),
        "feed_p99_us": p(fed, 99),
        **counts,
        "received_per_s": counts["received"] / seconds,
        "engine_rss_mib": peak_rss_mib(),
    }


def bench_latency(runs: int, seconds: float) -> None:
    got = [live_figures(10_000, seconds) for _ in range(runs)]

    def med(key: str) -> float:
        return statistics.median(g[key] for g in got)

    p50s, p99s, feed99 = ([g[k] for g in got] for k in ("p50_us", "p99_us", "feed_p99_us"))
    print("4. arrival to decision, 50 symbols at 10,000 quotes/s (target p99 under 1,000 us)")
    print(f"   p50 median {med('p50_us'):8.1f} us   runs {fmt(p50s)}")
    print(f"   p99 median {med('p99_us'):8.1f} us   runs {fmt(p99s)}")
    print(f"   p99 counting the conflated as misses: median {med('p99_with_conflated_us'):,.1f} us")
    print(
        f"   the feed's part (arrival to the engine's queue), p99 median "
        f"{med('feed_p99_us'):,.1f} us   runs {fmt(feed99)}"
    )
    last = got[-1]
    print(
        f"   (last run: {last['received']:,} quotes received, {last['processed']:,} decided, "
        f"{last['conflated']:,} conflated)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer and shorter runs")
    args = parser.parse_args()
    runs = 3 if args.quick else 5
    bench_parse(runs)
    bench_throughput(runs, 100_000 if args.quick else 300_000)
    bench_recovery(runs)
    bench_latency(3 if args.quick else 5, 5.0 if args.quick else 10.0)


if __name__ == "__main__":
    main()
