"""Market data as numpy structured arrays: one array per batch, no Python object per tick.

Timestamps are integer nanoseconds since the Unix epoch (UTC). `ts_event` is the source's time,
`ts_recv` the local receive time; their difference is the feed latency. `sym` indexes the
engine's instrument list (see `domain.instruments.Catalogue`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NS_PER_SECOND = 1_000_000_000
NS_PER_MS = 1_000_000

TICK_DTYPE = np.dtype(
    [
        ("ts_event", "<i8"),
        ("ts_recv", "<i8"),
        ("sym", "<u2"),
        ("bid", "<f8"),
        ("ask", "<f8"),
        ("last", "<f8"),  # NaN for quote-only markets (FX)
        ("volume", "<f8"),  # NaN when the source gives none
    ]
)

# A trade on the venue (Binance's trade stream, an MT5 last price): a record of its own, never
# a copy of a quote. side: +1 the buyer took the offer, -1 the seller hit the bid, 0 unknown.
TRADE_DTYPE = np.dtype(
    [
        ("ts_event", "<i8"),
        ("ts_recv", "<i8"),
        ("sym", "<u2"),
        ("price", "<f8"),
        ("size", "<f8"),
        ("side", "<i1"),
    ]
)

BAR_DTYPE = np.dtype(
    [
        ("sym", "<u2"),
        ("period_ns", "<i8"),
        ("ts_open", "<i8"),  # start of the bar's interval, floor(ts / period) * period
        ("open", "<f8"),
        ("high", "<f8"),
        ("low", "<f8"),
        ("close", "<f8"),
        ("ticks", "<i8"),  # number of ticks in the bar (tick volume)
        ("volume", "<f8"),  # traded volume where the source has it, else 0
    ]
)

M1 = 60 * NS_PER_SECOND
M5 = 5 * M1
M15 = 15 * M1
H1 = 60 * M1
H4 = 4 * H1
D1 = 24 * H1
# every timeframe the corridor builds, stores and shows strategies, shortest first: bars of
# one tick come out in this order. H4 and D1 open on the market's trading day (bar_clock.py)
TIMEFRAMES = {"M1": M1, "M5": M5, "M15": M15, "H1": H1, "H4": H4, "D1": D1}


def empty_bars(n: int = 0) -> np.ndarray:
    return np.zeros(n, dtype=BAR_DTYPE)


def timeframe_name(period_ns: int) -> str:
    for name, value in TIMEFRAMES.items():
        if value == period_ns:
            return name
    return f"{period_ns // NS_PER_SECOND}s"


@dataclass(frozen=True, slots=True)
class Bar:
    """One closed bar, the unit strategies see."""

    symbol: str
    timeframe: str
    ts_open: int
    open: float
    high: float
    low: float
    close: float
    ticks: int
    volume: float


@dataclass(frozen=True, slots=True)
class Depth:
    """The top of one symbol's order book: price levels best first, as (price, size) rows."""

    symbol: str
    ts_event: int
    ts_recv: int
    bids: np.ndarray  # shape (levels, 2), prices descending
    asks: np.ndarray  # shape (levels, 2), prices ascending
