"""A Binance look-alike on 127.0.0.1 for the tests: combined WebSocket streams and REST.

`FakeStreams` speaks Binance's combined-stream protocol (`/stream?streams=a/b`, SUBSCRIBE
messages answered `{"result": null, "id": n}`, frames `{"stream": ..., "data": ...}`) on its
own thread and event loop, so a test drives it from anywhere: publish quotes, trades, depth and
klines (each stream numbered on, as Binance's are, whichever connection carries it), drop every
connection, stall, send garbage, announce `serverShutdown`, refuse handshakes, pump a load for
a while. Every loop it runs stops by itself (a count or a duration). `FakeRest` serves
`/api/v3/exchangeInfo` with the used-weight header, and can answer 429 with Retry-After or 418;
and `/api/v3/klines` (1m) from the klines a test adds, honouring startTime, endTime and limit
(at most 1000), each answer adding its weight (2) to the used weight, and can fail every klines
request after the first N (`fail_klines_after`).
"""

from __future__ import annotations

import asyncio
import http
import json
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Coroutine, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from websockets.asyncio.server import ServerConnection, serve

_SEP = (",", ":")


class FakeStreams:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._server: Any = None
        self.port = 0
        self.refuse = 0  # the next N handshakes are refused with HTTP 503
        self.refused = 0
        self.handshakes = 0
        self.subs: dict[ServerConnection, set[str]] = {}
        self.seq: Counter[str] = Counter()  # the venue's sequence per stream
        self.sent: Counter[str] = Counter()  # frames published per stream (not per connection)
        self.received: list[str] = []  # control messages clients sent

    # ---------------------------------------------------------------- running it

    def __enter__(self) -> FakeStreams:
        self._thread.start()
        self.call(self._start())
        return self

    def __exit__(self, *exc: object) -> None:
        self.call(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float = 60.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def acall(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """`call` for a test running on its own event loop."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    async def _start(self) -> None:
        self._server = await serve(
            self._handle, "127.0.0.1", self.port, process_request=self._check, compression=None
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        await self.drop()
        self._server.close()
        await self._server.wait_closed()

    def _check(self, conn: ServerConnection, request: Any) -> Any:
        self.handshakes += 1
        if self.refuse > 0:
            self.refuse -= 1
            self.refused += 1
            return conn.respond(http.HTTPStatus.SERVICE_UNAVAILABLE, "maintenance\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        query = parse_qs(urlparse(ws.request.path).query)
        names = query.get("streams", [""])[0]
        self.subs[ws] = {n for n in names.split("/") if n}
        try:
            async for message in ws:
                self.received.append(str(message))
                try:
                    req = json.loads(message)
                except ValueError:
                    continue
                if req.get("method") == "SUBSCRIBE":
                    self.subs[ws].update(req.get("params", []))
                    await ws.send(json.dumps({"result": None, "id": req.get("id")}))
        except Exception:
            pass
        finally:
            self.subs.pop(ws, None)

    # ---------------------------------------------------------------- what tests do

    def open_connections(self) -> int:
        return len(self.subs)

    def subscribed(self) -> list[set[str]]:
        return [set(s) for s in self.subs.values()]

    async def publish(self, stream: str, data: Any) -> int:
        """One frame to every connection carrying `stream`; how many got it."""
        text = json.dumps({"stream": stream, "data": data}, separators=_SEP)
        self.sent[stream] += 1
        return await self.raw(text, stream)

    async def raw(self, text: str, stream: str | None = None) -> int:
        """Text as it is to every connection (carrying `stream`, when given)."""
        n = 0
        for ws, subs in list(self.subs.items()):
            if stream is None or stream in subs:
                try:
                    await ws.send(text)
                    n += 1
                except Exception:
                    pass
        return n

    async def book(self, symbol: str, bid: float, ask: float) -> int:
        stream = f"{symbol.lower()}@bookTicker"
        self.seq[stream] += 1
        data = {"u": self.seq[stream], "s": symbol, "b": f"{bid:.8f}", "B": "1.00000000",
                "a": f"{ask:.8f}", "A": "2.00000000"}  # fmt: skip
        return await self.publish(stream, data)

    async def trade(self, symbol: str, price: float, qty: float, maker: bool = False) -> int:
        stream = f"{symbol.lower()}@trade"
        self.seq[stream] += 1
        now = int(time.time() * 1000)
        data = {"e": "trade", "E": now, "s": symbol, "t": self.seq[stream], "p": f"{price:.8f}",
                "q": f"{qty:.8f}", "T": now - 1, "m": maker, "M": True}  # fmt: skip
        return await self.publish(stream, data)

    async def depth(self, symbol: str, mid: float, levels: int = 20) -> int:
        stream = f"{symbol.lower()}@depth20@100ms"
        self.seq[stream] += 1
        bids = [[f"{mid - 0.01 * (i + 1):.2f}", f"{1 + i:.3f}"] for i in range(levels)]
        asks = [[f"{mid + 0.01 * (i + 1):.2f}", f"{1 + i:.3f}"] for i in range(levels)]
        data = {"lastUpdateId": self.seq[stream], "bids": bids, "asks": asks}
        return await self.publish(stream, data)

    async def kline(self, symbol: str, start_ms: int, o: float, c: float, closed: bool) -> int:
        stream = f"{symbol.lower()}@kline_1m"
        k = {"t": start_ms, "T": start_ms + 59_999, "s": symbol, "i": "1m", "f": 1, "L": 2,
             "o": f"{o}", "c": f"{c}", "h": f"{max(o, c) + 1}", "l": f"{min(o, c) - 1}",
             "v": "12.5", "n": 42, "x": closed, "q": "1", "V": "1", "Q": "1", "B": "0"}  # fmt: skip
        data = {"e": "kline", "E": start_ms + 59_999, "s": symbol, "k": k}
        return await self.publish(stream, data)

    async def drop(self) -> None:
        """Cut every connection at once, as a network failure would (no close handshake)."""
        for ws in list(self.subs):
            ws.transport.abort()
        await asyncio.sleep(0)

    async def shutdown_notice(self) -> int:
        return await self.raw(
            json.dumps({"event": {"e": "serverShutdown", "E": int(time.time() * 1000)}})
        )

    async def pump(
        self, symbols: Iterable[str], per_symbol_per_s: float, seconds: float, tick_s: float = 0.01
    ) -> int:
        """bookTicker frames for `seconds` at a steady rate; the number of frames published."""
        symbols = list(symbols)
        price = {s: 100.0 + i for i, s in enumerate(symbols)}
        start = time.monotonic()
        owed = 0.0
        total = 0
        step = 0
        while (elapsed := time.monotonic() - start) < seconds:
            owed = per_symbol_per_s * elapsed - total / max(len(symbols), 1)
            for _ in range(int(owed)):
                step += 1
                for s in symbols:
                    p = price[s] + (step % 7) * 0.01
                    await self.book(s, p, p + 0.02)
                    total += 1
            await asyncio.sleep(tick_s)
        return total


class FakeRest:
    """`GET /api/v3/exchangeInfo` on 127.0.0.1 (a thread of its own)."""

    def __init__(self, symbols: dict[str, tuple[str, str, str, str, str, str]]) -> None:
        # symbol -> (base, quote, tickSize, stepSize, minQty, minNotional)
        self.symbols = symbols
        self.throttle: list[tuple[int, str]] = []  # answers to give first: (status, Retry-After)
        self.requests: list[str] = []
        self.used_weight = 20
        self.klines: dict[str, list[list[Any]]] = {}  # symbol -> 1m klines, oldest first
        self.klines_answered = 0  # klines requests answered with klines
        self.fail_klines_after: int | None = None  # then every klines request gets a 502
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                owner.requests.append(self.path)
                status, body, headers = owner.answer(self.path)
                raw = json.dumps(body).encode()
                self.send_response(status)
                for k, v in {**headers, "Content-Type": "application/json"}.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FakeRest:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, path: str) -> tuple[int, Any, dict[str, str]]:
        weight = {"X-MBX-USED-WEIGHT-1M": str(self.used_weight)}
        if self.throttle:
            status, retry = self.throttle.pop(0)
            body = {"code": -1003, "msg": "Too much request weight used"}
            return status, body, {**weight, "Retry-After": retry}
        url = urlparse(path)
        if url.path == "/api/v3/klines":
            return self.answer_klines(parse_qs(url.query), weight)
        if url.path != "/api/v3/exchangeInfo":
            return 404, {"code": -1, "msg": "not here"}, weight
        wanted = parse_qs(url.query).get("symbols")
        names = json.loads(wanted[0]) if wanted else list(self.symbols)
        if any(n not in self.symbols for n in names):
            return 400, {"code": -1121, "msg": "Invalid symbol."}, weight
        return 200, {"timezone": "UTC", "symbols": [self.entry(n) for n in names]}, weight

    def entry(self, name: str) -> dict[str, Any]:
        return exchange_entry(name, self.symbols[name])

    def answer_klines(
        self, query: dict[str, list[str]], weight: dict[str, str]
    ) -> tuple[int, Any, dict[str, str]]:
        if self.fail_klines_after is not None and self.klines_answered >= self.fail_klines_after:
            return 502, {"code": -1, "msg": "Bad gateway"}, weight
        name = query.get("symbol", [""])[0]
        if name not in self.symbols or query.get("interval") != ["1m"]:
            return 400, {"code": -1121, "msg": "Invalid symbol."}, weight
        limit = min(int(query.get("limit", ["500"])[0]), 1000)
        lo = int(query.get("startTime", ["0"])[0])
        hi = int(query.get("endTime", [str(2**62)])[0])
        rows = [k for k in self.klines.get(name, []) if lo <= k[0] <= hi][:limit]
        self.used_weight += 2
        self.klines_answered += 1
        return 200, rows, {"X-MBX-USED-WEIGHT-1M": str(self.used_weight)}

    def add_klines(self, name: str, start_ms: int, n: int, price: float = 100.0) -> None:
        """n consecutive 1m klines from start_ms (prices walking up by 0.01, 3 trades each)."""
        rows = self.klines.setdefault(name, [])
        for i in range(n):
            t = start_ms + i * 60_000
            o = round(price + 0.01 * ((t // 60_000) % 997), 2)
            c = round(o + 0.01, 2)
            h, lo = f"{c + 0.02:.2f}", f"{o - 0.02:.2f}"
            quote = f"{1.5 * c:.8f}"
            rows.append(
                [t, f"{o:.2f}", h, lo, f"{c:.2f}", "1.5", t + 59_999, quote, 3, "0.7", "70", "0"]
            )
        rows.sort(key=lambda k: k[0])


def exchange_entry(name: str, row: tuple[str, str, str, str, str, str]) -> dict[str, Any]:
    """One exchangeInfo symbol, with the filters Binance gives."""
    base, quote, tick, step, min_qty, notional = row
    return {
        "symbol": name,
        "status": "TRADING",
        "baseAsset": base,
        "quoteAsset": quote,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": "1e6", "tickSize": tick},
            {"filterType": "LOT_SIZE", "minQty": min_qty, "maxQty": "9000", "stepSize": step},
            {"filterType": "NOTIONAL", "minNotional": notional, "applyMinToMarket": True},
        ],
    }


def spot_symbols(names: Iterable[str]) -> dict[str, tuple[str, str, str, str, str, str]]:
    """exchangeInfo rows for USDT pairs named like BTCUSDT (tick 0.01, step 0.00001, 5 USDT)."""
    return {
        n: (n.removesuffix("USDT"), "USDT", "0.01000000", "0.00001000", "0.00001000", "5.00000000")
        for n in names
    }


def symbol_names(n: int) -> list[str]:
    """n made-up symbols, S0USDT ... ."""
    return [f"S{i}USDT" for i in range(n)]


async def until(predicate: Any, timeout: float = 10.0, step: float = 0.01) -> bool:
    """Wait (on the test's loop) until predicate() is true; False on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(step)
    return bool(predicate())


def counts(values: Iterable[Any]) -> dict[Any, int]:
    out: dict[Any, int] = defaultdict(int)
    for v in values:
        out[v] += 1
    return dict(out)
