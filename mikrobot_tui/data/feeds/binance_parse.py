"""Binance's combined-stream frames into the engine's records, and how Binance speaks.

A combined-stream frame is `{"stream": "<symbol>@<kind>", "data": {...}}`:
- `<symbol>@bookTicker` `{"u", "s", "b", "B", "a", "A"}`: the best bid and ask, the quote that
  drives the pipeline (TICK_DTYPE). It carries no time: `ts_event` is the receive time (so its
  latency is 0 and the health figures take latency from trades and klines);
- `<symbol>@trade` `{"e", "E", "s", "t", "p", "q", "T", "m"}`: a trade (TRADE_DTYPE) at trade
  time `T` (ms), the side the aggressor's (`m`: the buyer was the maker, so the seller hit);
- `<symbol>@depth20@100ms` `{"lastUpdateId", "bids", "asks"}`: the top 20 levels, no time
  either, kept per symbol as a `Depth` for the execution simulator;
- `<symbol>@kline_1m` `{"e", "E", "s", "k": {"t", "T", "o", "h", "l", "c", "v", "n", "x"}}`:
  the latest closed 1-minute kline per symbol is kept, for checks.

Every frame is checked (JSON, the fields and their types, prices that are numbers, finite and
positive, a book that is not crossed, a stream we subscribed and the symbol it names) and what
fails goes to the `RejectLog` with its reason and the raw text; nothing raises. Frames already
delivered (the two connections of a planned overlap) are dropped by a `SequenceGate` on the
stream's own sequence: bookTicker `u`, trade `t`, depth `lastUpdateId`, a closed kline's start.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from mikrobot_tui.data.feeds.rejects import RejectLog
from mikrobot_tui.data.ws import PING, REPLY, SHUTDOWN, Control
from mikrobot_tui.data.ws_limits import SequenceGate
from mikrobot_tui.domain.market import NS_PER_MS, TICK_DTYPE, TRADE_DTYPE, Depth

try:  # 1 us a frame against json's 3.5 us here: the whole parse budget is 5 us
    from orjson import loads as fast_loads
except ImportError:  # pragma: no cover - orjson is a dependency; json is the same, slower
    fast_loads = json.loads

BOOK, TRADE, DEPTH, KLINE = range(4)
KIND_NAMES = ("bookTicker", "trade", "depth", "kline")
SUFFIX = {
    "bookTicker": "@bookTicker",
    "trade": "@trade",
    "depth": "@depth20@100ms",
    "kline": "@kline_1m",
}
NAN = math.nan
INF = math.inf


def stream_names(symbol: str, kinds: Sequence[str]) -> list[str]:
    """One symbol's stream names, e.g. btcusdt@bookTicker (Binance wants them lower case)."""
    return [symbol.lower() + SUFFIX[k] for k in kinds]


class BinanceDialect:
    """Binance's combined streams: the names in the address as far as it stays short, the rest
    subscribed by message; replies to SUBSCRIBE and the `serverShutdown` notice are control."""

    subscribe_batch = 200  # streams per SUBSCRIBE message
    url_max = 2000  # characters of stream names put in the address

    def url(self, endpoint: str, streams: Sequence[str]) -> tuple[str, list[str]]:
        base = endpoint.rstrip("/")
        for tail in ("/stream", "/ws"):
            base = base.removesuffix(tail)
        inline, size = [], 0
        for name in streams:
            if inline and size + len(name) + 1 > self.url_max:
                break
            inline.append(name)
            size += len(name) + 1
        return f"{base}/stream?streams={'/'.join(inline)}", list(streams[len(inline) :])

    def subscribe(self, streams: Sequence[str], request_id: int) -> str:
        return json.dumps({"method": "SUBSCRIBE", "params": list(streams), "id": request_id})

    def control(self, raw: str) -> Control | None:
        if '"serverShutdown"' in raw:
            return Control(SHUTDOWN)
        if raw.startswith('{"stream"'):
            return None
        try:
            obj = json.loads(raw)
        except ValueError:
            return None  # the sink rejects it
        if not isinstance(obj, dict):
            return None
        if "ping" in obj and len(obj) == 1:  # an application-level ping, should one come
            return Control(PING, answer=json.dumps({"pong": obj["ping"]}))
        if "id" in obj and ("result" in obj or "error" in obj or "code" in obj):
            rid = obj["id"] if isinstance(obj["id"], int) else None
            error = obj.get("error") or (
                {"code": obj["code"], "msg": obj.get("msg")} if "code" in obj else None
            )
            return Control(REPLY, rid, json.dumps(error) if error else "")
        return None


@dataclass(frozen=True, slots=True)
class Kline:
    """One closed 1-minute kline as Binance published it."""

    symbol: str
    ts_open: int  # ns
    ts_close: int  # ns, the last millisecond of the minute
    open: float
    high: float
    low: float
    close: float
    volume: float
    trades: int
    ts_event: int
    ts_recv: int


class _Bad(Exception):
    """A frame that fails a check: its reason."""


def _num(text: object, what: str) -> float:
    if type(text) is not str:
        raise _Bad(f"wrong type: {what} is {type(text).__name__}, not a string")
    try:
        value = float(text)
    except ValueError:
        raise _Bad(f"non-numeric {what}: {text[:40]!r}") from None
    if not 0 < value < INF:
        raise _Bad(f"{'non-positive' if value <= 0 else 'non-finite'} {what}: {text[:40]!r}")
    return value


def _int(value: object, what: str) -> int:
    if type(value) is not int:
        raise _Bad(f"wrong type: {what} is {type(value).__name__}, not an integer")
    return value


def _levels(rows: object, what: str) -> np.ndarray:
    if type(rows) is not list:
        raise _Bad(f"wrong type: {what} is {type(rows).__name__}, not a list")
    if not rows:
        return np.zeros((0, 2))
    try:
        levels = np.array(rows, dtype=np.float64)
    except (ValueError, TypeError):
        raise _Bad(f"non-numeric {what}") from None
    if levels.ndim != 2 or levels.shape[1] != 2:
        raise _Bad(f"malformed {what}: not [price, size] pairs")
    if not (np.isfinite(levels).all() and (levels[:, 0] > 0).all() and (levels[:, 1] >= 0).all()):
        raise _Bad(f"impossible {what}: a price not positive or a size negative")
    return levels


class BinanceParser:
    """The sink of the WebSocket manager: one call per frame, records collected until taken."""

    def __init__(
        self,
        symbols: Sequence[str],
        kinds: Sequence[str],
        *,
        max_pending: int = 50_000,
        reset_after_ns: int = 10_000_000_000,
        on_conflated: Callable[[np.ndarray], None] | None = None,
        loads: Callable[[str], object] = fast_loads,
    ) -> None:
        self.symbols = list(symbols)
        # stream name -> (kind, sym, SYMBOL, the stream's key in the sequence gate)
        self.routes: dict[str, tuple[int, int, str, int]] = {}
        for sym, symbol in enumerate(self.symbols):
            for kind_name in kinds:
                name = symbol.lower() + SUFFIX[kind_name]
                self.routes[name] = (KIND_NAMES.index(kind_name), sym, symbol, len(self.routes))
        self.gate = SequenceGate(reset_after_ns)
        self._high, self._refused = self.gate._high, self.gate._refused  # inlined for quotes
        self.rejects = RejectLog("binance")
        self.depth: dict[str, Depth] = {}
        self.klines: dict[str, Kline] = {}
        self.max_pending = max(max_pending, len(self.symbols))
        self.conflated = 0
        self.wake: Callable[[], None] | None = None  # called when a quote is waiting
        self._quotes: list[tuple[int, int, int, float, float, float, float]] = []
        self._trades: list[tuple[int, int, int, float, float, int]] = []
        self._on_conflated = on_conflated
        self._loads = loads

    # ---------------------------------------------------------------- taking what arrived

    def take_quotes(self) -> np.ndarray | None:
        if not self._quotes:
            return None
        rows, self._quotes = self._quotes, []
        return np.array(rows, dtype=TICK_DTYPE)

    def take_trades(self) -> np.ndarray:
        if not self._trades:
            return np.zeros(0, dtype=TRADE_DTYPE)
        rows, self._trades = self._trades, []
        return np.array(rows, dtype=TRADE_DTYPE)

    # ---------------------------------------------------------------- one frame

    def __call__(self, raw: str, recv: int) -> int | None:
        """Take one frame received at wall time `recv` (ns); its latency in ns when it has one."""
        try:
            frame = self._loads(raw)
            route = self.routes.get(frame["stream"])  # type: ignore[index]
            data = frame["data"]  # type: ignore[index]
        except (ValueError, KeyError, TypeError, IndexError):
            self.rejects.add(recv, "", "malformed frame: not a combined-stream message", raw)
            return None
        if route is None:
            self.rejects.add(recv, "", "unknown stream", raw)
            return None
        kind, sym, symbol, key = route
        try:
            if type(data) is not dict:
                raise _Bad("malformed frame: data is not an object")
            if kind == BOOK:
                return self._book(data, sym, symbol, key, recv)
            if kind == TRADE:
                return self._trade(data, sym, symbol, key, recv)
            if kind == DEPTH:
                return self._depth(data, sym, symbol, key, recv)
            return self._kline(data, sym, symbol, key, recv)
        except _Bad as bad:
            self.rejects.add(recv, symbol, f"{KIND_NAMES[kind]}: {bad}", raw)
        except KeyError as exc:
            self.rejects.add(recv, symbol, f"{KIND_NAMES[kind]}: missing field {exc}", raw)
        except (TypeError, ValueError, AttributeError) as exc:
            self.rejects.add(recv, symbol, f"{KIND_NAMES[kind]}: malformed ({exc})", raw)
        return None

    def _book(self, d: dict, sym: int, symbol: str, key: int, recv: int) -> None:
        u, b, a = d["u"], d["b"], d["a"]
        if type(u) is not int or type(b) is not str or type(a) is not str or d["s"] != symbol:
            _int(u, "u")
            _num(b, "bid")
            _num(a, "ask")
            raise _Bad(f"unknown symbol {str(d['s'])[:20]!r} on {symbol}'s stream")
        try:
            bid, ask = float(b), float(a)
        except ValueError:
            _num(b, "bid")
            _num(a, "ask")
            raise
        if not 0 < bid <= ask < INF:
            _num(b, "bid")
            _num(a, "ask")
            raise _Bad(f"crossed quote: bid {b} above ask {a}")
        high = self._high.get(key)
        if (high is None or u > high) and not self._refused:
            self._high[key] = u  # the gate's fast path: a new frame, nothing refused lately
        elif not self.gate.admit(key, u, recv):
            return None
        quotes = self._quotes
        quotes.append((recv, recv, sym, bid, ask, NAN, NAN))
        if len(quotes) == 1:
            if self.wake is not None:
                self.wake()
        elif len(quotes) >= self.max_pending:
            self._conflate()
        return None

    def _trade(self, d: dict, sym: int, symbol: str, key: int, recv: int) -> int | None:
        if d["s"] != symbol:
            raise _Bad(f"unknown symbol {str(d['s'])[:20]!r} on {symbol}'s stream")
        t, ts = _int(d["t"], "t"), _int(d["T"], "T") * NS_PER_MS
        price, size, maker = _num(d["p"], "price"), _num(d["q"], "quantity"), d["m"]
        if type(maker) is not bool:
            raise _Bad(f"wrong type: m is {type(maker).__name__}, not a boolean")
        if self.gate.admit(key, t, recv):
            self._trades.append((ts, recv, sym, price, size, -1 if maker else 1))
            if len(self._trades) >= self.max_pending:  # nobody takes them: keep the newest half
                drop = len(self._trades) // 2
                del self._trades[:drop]
                self.conflated += drop
        return recv - ts

    def _depth(self, d: dict, sym: int, symbol: str, key: int, recv: int) -> None:
        last = _int(d["lastUpdateId"], "lastUpdateId")
        bids, asks = _levels(d["bids"], "bids"), _levels(d["asks"], "asks")
        if len(bids) > 1 and (np.diff(bids[:, 0]) >= 0).any():
            raise _Bad("bids not in descending price order")
        if len(asks) > 1 and (np.diff(asks[:, 0]) <= 0).any():
            raise _Bad("asks not in ascending price order")
        if len(bids) and len(asks) and bids[0, 0] >= asks[0, 0]:
            raise _Bad(f"crossed book: best bid {bids[0, 0]!r} at or above best ask {asks[0, 0]!r}")
        if self.gate.admit(key, last, recv):
            self.depth[symbol] = Depth(symbol, recv, recv, bids, asks)
        return None

    def _kline(self, d: dict, sym: int, symbol: str, key: int, recv: int) -> int | None:
        k = d["k"]
        event = _int(d["E"], "E") * NS_PER_MS
        if type(k) is not dict:
            raise _Bad("wrong type: k is not an object")
        if d["s"] != symbol or k["s"] != symbol:
            raise _Bad(f"unknown symbol {str(d['s'])[:20]!r} on {symbol}'s stream")
        closed = k["x"]
        if type(closed) is not bool:
            raise _Bad(f"wrong type: x is {type(closed).__name__}, not a boolean")
        if not closed:
            return recv - event
        start, end = _int(k["t"], "t"), _int(k["T"], "T")
        o, h, low, c = (_num(k[f], f) for f in ("o", "h", "l", "c"))
        volume = float(k["v"]) if type(k["v"]) is str else NAN
        if not (low <= min(o, c) and h >= max(o, c)) or not volume >= 0 or end < start:
            raise _Bad("impossible kline: high, low, open and close disagree")
        if self.gate.admit(key, start, recv):
            self.klines[symbol] = Kline(
                symbol, start * NS_PER_MS, end * NS_PER_MS, o, h, low, c, volume,
                _int(k["n"], "n"), event, recv,
            )  # fmt: skip
        return recv - event

    def _conflate(self) -> None:
        """Too many quotes waiting: keep the newest per symbol, in arrival order, count the rest."""
        rows = self._quotes
        last = {row[2]: i for i, row in enumerate(rows)}
        keep = sorted(last.values())
        dropped = np.bincount([row[2] for row in rows], minlength=len(self.symbols))
        dropped[[rows[i][2] for i in keep]] -= 1
        self._quotes = [rows[i] for i in keep]
        self.conflated += len(rows) - len(keep)
        if self._on_conflated is not None:
            self._on_conflated(dropped)
