"""How a paper order meets the market: latency, the book walk, slippage and impact, liquidity.

The execution simulator asks these questions and keeps the answers (the order book of working
orders, time in force, partial fills) to itself:
- `LatencyModel.sample_ns(order_id)`: how long an order takes to reach the venue. Fixed,
  uniform in [latency_ms, latency_max_ms], or log-normal with median latency_ms and shape
  latency_sigma, capped at latency_max_ms. Deterministic for (latency_seed, order_id), so a
  replay fills the same orders at the same ticks whatever else happened in between.
- `walk_book(levels, qty, limit, side)`: a market (or marketable limit) order against the
  opposite side's depth, level by level, never past `limit`: (filled, volume-weighted price).
  Worked example: buying 3.5 against asks 100 x 1, 101 x 2, 102 x 5 fills 3.5 at
  (100 x 1 + 101 x 2 + 102 x 0.5) / 3.5 = 353 / 3.5 = 100.857...; the same buy of 10
  limited at 101 fills 3 at (100 + 202) / 3 = 100.666..., the other 7 follow the order's time
  in force.
- `slippage(spread, volatility, paper)`: without depth, how far past the touch a market order
  fills: slippage_spread x spread + slippage_volatility x volatility.
- `impact(lots, touch_lots, typical_lots, volatility, k)`: square-root market impact for size
  beyond what the touch shows, k x volatility x sqrt((lots - touch_lots) / typical_lots).
- `liquidity_for(paper, inst)`: (touch_lots, typical_lots) from [paper.liquidity], by symbol,
  then asset class, then the defaults below.
- `RecentVolatility`: ATR(14) of closed M1 bars per symbol, in price units (Wilder, TA-Lib's
  definition, as `trading.indicators.atr`), the volatility the two models above take.
- `Books`: the latest top-20 book per symbol from a feed that has depth (Binance), with a
  staleness limit: a book older than 2 s is no book, and the order falls back to the touch.

This module reads PaperSettings with getattr and defaults, so it works with any object that
has the keys it needs.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from mikrobot_tui.domain.instruments import Instrument
from mikrobot_tui.domain.market import NS_PER_SECOND, Depth
from mikrobot_tui.domain.orders import Side

__all__ = [
    "DEFAULT_LIQUIDITY",
    "Books",
    "LatencyModel",
    "RecentVolatility",
    "impact",
    "liquidity_for",
    "slippage",
    "walk_book",
]

NS_PER_MS_F = 1_000_000.0
_MASK = (1 << 64) - 1
_TWO_PI = 2.0 * math.pi
_U53 = 2.0**-53

# (touch_lots, typical_lots) per asset class when [paper.liquidity] does not say
DEFAULT_LIQUIDITY: dict[str, tuple[float, float]] = {
    "forex": (10.0, 200.0),
    "forex_jpy": (10.0, 200.0),
    "metals": (5.0, 50.0),
    "indices": (10.0, 100.0),
    "energies": (5.0, 50.0),
    "crypto": (2.0, 50.0),
}
_FALLBACK_LIQUIDITY = (10.0, 200.0)


def _mix64(x: int) -> int:
    """splitmix64's finalizer: a 64-bit integer to a well-spread 64-bit integer."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


class LatencyModel:
    """Order latency drawn per order, the same for the same (latency_seed, order_id).

    The draw is a counter-based hash of the seed and crc32(order_id) (splitmix64), not a
    numpy Generator: building a Generator costs 20 us an order, the hash 2 us, and either is a
    pure function of (seed, order_id), so a replay draws the same latencies in any order.
    """

    __slots__ = ("_key", "_max_ns", "_median_ns", "_min_ns", "kind", "sigma")

    def __init__(self, paper: Any) -> None:
        self.kind: str = getattr(paper, "latency_model", "uniform")
        if self.kind not in ("fixed", "uniform", "lognormal"):
            raise ValueError(
                f"paper.latency_model: {self.kind!r} is not fixed, uniform or lognormal"
            )
        low = float(getattr(paper, "latency_ms", 50.0))
        high = float(getattr(paper, "latency_max_ms", 200.0))
        self._min_ns = low * NS_PER_MS_F
        self._max_ns = max(high, low) * NS_PER_MS_F
        self._median_ns = self._min_ns
        self.sigma = float(getattr(paper, "latency_sigma", 0.5))
        self._key = _mix64(int(getattr(paper, "latency_seed", 7)) & _MASK)

    def sample_ns(self, order_id: str) -> int:
        """Nanoseconds from submission until the order reaches the venue."""
        if self.kind == "fixed":
            return round(self._min_ns)
        a = _mix64(self._key ^ zlib.crc32(order_id.encode()))
        if self.kind == "uniform":
            return round(self._min_ns + (self._max_ns - self._min_ns) * ((a >> 11) * _U53))
        b = _mix64(a)
        u1 = ((a >> 11) + 1) * _U53  # (0, 1]: log never sees 0
        z = math.sqrt(-2.0 * math.log(u1)) * math.cos(_TWO_PI * (b >> 11) * _U53)
        return round(min(self._median_ns * math.exp(self.sigma * z), self._max_ns))


def walk_book(
    levels: np.ndarray, qty: float, limit: float | None, side: Side
) -> tuple[float, float]:
    """Fill `qty` against `levels` (the opposite side, (n, 2) [price, qty], best first).

    Takes each level in turn until `qty` is filled, the book runs out, or the next level is
    worse than `limit` (above it for a BUY, below it for a SELL). Returns (filled qty,
    volume-weighted price); the price is NaN when nothing fills.
    """
    if qty <= 0.0 or len(levels) == 0:
        return 0.0, math.nan
    buy = side is Side.BUY
    filled = value = 0.0
    for price, size in levels.tolist():
        if limit is not None and (price > limit if buy else price < limit):
            break
        if size <= 0.0:
            continue
        take = qty - filled
        if size < take:
            take = size
        filled += take
        value += take * price
        if filled >= qty:
            return qty, value / filled
    if filled <= 0.0:
        return 0.0, math.nan
    return filled, value / filled


def slippage(spread: float, volatility: float, paper: Any) -> float:
    """Price units a market order fills past the touch when there is no depth (>= 0)."""
    out = (
        float(getattr(paper, "slippage_spread", 0.1)) * spread
        + float(getattr(paper, "slippage_volatility", 0.05)) * volatility
    )
    return out if out > 0.0 else 0.0  # NaN too


def impact(
    lots: float, touch_lots: float, typical_lots: float, volatility: float, k: float
) -> float:
    """Square-root impact in price units: zero within the touch, k x vol x sqrt(excess/typical)."""
    excess = lots - touch_lots
    if excess <= 0.0 or volatility <= 0.0 or k <= 0.0:
        return 0.0
    if typical_lots <= 0.0:
        raise ValueError(f"typical_lots must be positive, got {typical_lots}")
    return k * volatility * math.sqrt(excess / typical_lots)


def _field(entry: Any, name: str) -> float | None:
    if entry is None:
        return None
    value = entry.get(name) if isinstance(entry, Mapping) else getattr(entry, name, None)
    return None if value is None else float(value)


def liquidity_for(paper: Any, inst: Instrument) -> tuple[float, float]:
    """(touch_lots, typical_lots) for `inst`: [paper.liquidity.<symbol>], then the asset class,
    then DEFAULT_LIQUIDITY; each key separately, so a symbol may override only one."""
    table = getattr(paper, "liquidity", None) or {}
    asset_class = str(inst.asset_class)
    by_symbol, by_class = table.get(inst.symbol), table.get(asset_class)
    touch, typical = DEFAULT_LIQUIDITY.get(asset_class, _FALLBACK_LIQUIDITY)
    out = []
    for name, default in (("touch_lots", touch), ("typical_lots", typical)):
        value = _field(by_symbol, name)
        if value is None:
            value = _field(by_class, name)
        out.append(default if value is None else value)
    return out[0], out[1]


class RecentVolatility:
    """ATR(n) (default 14) of each symbol's closed M1 bars, in price units; constant work a bar.

    TA-Lib's definition (as `trading.indicators.atr`): the first bar's true range is skipped,
    the value after n + 1 bars is the mean of the n true ranges, Wilder smoothing after that.
    Before that it is the mean of the true ranges so far (the first bar alone: its high - low),
    so a fill in the first quarter hour still sees some volatility; 0.0 before any bar.
    """

    __slots__ = ("_count", "_prev_close", "_sum", "_value", "n")

    def __init__(self, n: int = 14) -> None:
        if n < 1:
            raise ValueError(f"ATR period must be >= 1, got {n}")
        self.n = n
        self._prev_close: list[float] = []
        self._count: list[int] = []  # true ranges seen
        self._sum: list[float] = []
        self._value: list[float] = []

    def _grow(self, sym: int) -> None:
        extra = sym + 1 - len(self._value)
        self._prev_close.extend([math.nan] * extra)
        self._count.extend([0] * extra)
        self._sum.extend([0.0] * extra)
        self._value.extend([0.0] * extra)

    def on_bar(self, sym: int, high: float, low: float, close: float) -> None:
        if sym >= len(self._value):
            self._grow(sym)
        prev = self._prev_close[sym]
        self._prev_close[sym] = close
        if prev != prev:  # the first bar: no previous close, no true range
            self._value[sym] = high - low
            return
        tr = max(high - low, abs(high - prev), abs(low - prev))
        n = self.n
        count = self._count[sym]
        if count >= n:
            self._value[sym] = (self._value[sym] * (n - 1) + tr) / n
            return
        count += 1
        self._count[sym] = count
        self._sum[sym] += tr
        self._value[sym] = self._sum[sym] / count

    def value(self, sym: int) -> float:
        return self._value[sym] if sym < len(self._value) else 0.0

    def ready(self, sym: int) -> bool:
        """True once the value is the full ATR(n) (n + 1 bars seen)."""
        return sym < len(self._count) and self._count[sym] >= self.n


class Books:
    """The latest depth per symbol, for `walk_book`; a book older than `max_age_ns` is none.

    Fed by `update` (one symbol) or `refresh` (a feed's `books()`: symbol -> Depth); an
    update older than the book held is ignored. The arrays are kept, not copied: the feed
    builds a new Depth for every frame and never writes into an old one.
    """

    __slots__ = ("_books", "max_age_ns")

    def __init__(self, max_age_ns: int = 2 * NS_PER_SECOND) -> None:
        self.max_age_ns = max_age_ns
        self._books: dict[str, tuple[int, np.ndarray, np.ndarray]] = {}

    def update(self, symbol: str, ts: int, bids: np.ndarray, asks: np.ndarray) -> None:
        held = self._books.get(symbol)
        if held is None or ts >= held[0]:
            self._books[symbol] = (ts, bids, asks)

    def refresh(self, depths: Mapping[str, Depth]) -> None:
        """Take every book a feed holds (its `books()`); unchanged ones cost a dict lookup."""
        books = self._books
        for symbol, depth in depths.items():
            held = books.get(symbol)
            if held is None or depth.ts_recv > held[0]:
                books[symbol] = (depth.ts_recv, depth.bids, depth.asks)

    def levels(self, symbol: str, side: Side, ts: int) -> np.ndarray | None:
        """The levels an order of `side` takes (asks for a BUY, bids for a SELL), best first;
        None when there is no book, that side is empty, or the book is older than the limit
        at `ts`."""
        held = self._books.get(symbol)
        if held is None or ts - held[0] > self.max_age_ns:
            return None
        out = held[2] if side is Side.BUY else held[1]
        return out if len(out) else None

    def ts(self, symbol: str) -> int | None:
        """When the book held for `symbol` was received, or None."""
        held = self._books.get(symbol)
        return None if held is None else held[0]
