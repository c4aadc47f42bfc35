"""Indicators with TA-Lib's definitions, as array functions and as streaming classes.

We follow TA-Lib because it is the reference traders check against (CONVENTIONS.md):

- SMA(n): the mean of the last n values. EMA(n): alpha = 2 / (n + 1), seeded at index n - 1
  with the SMA of the first n values (pandas `ewm(adjust=False)` and `ta` seed with the first
  value, so their early values differ).
- RSI(n): Wilder smoothing seeded with the simple means of the first n gains and losses; the
  first RSI is at index n. A flat window gives 50, where TA-Lib gives 0 (see `FLAT_RSI`).
- MACD(12, 26, 9): TA-Lib's. Both EMAs start at index 25: the slow one seeded with the SMA of
  x[0..25], the fast one with the SMA of x[14..25]; the signal seeded with the SMA of the first
  9 MACD values. All three outputs start at index 33, as TA-Lib's.
- Bollinger(20, 2): SMA middle, bands at k population standard deviations (TA-Lib's BBANDS).
- ATR(n): Wilder smoothing of the true range, the first bar's skipped: the first ATR is at
  index n, the mean of TR[1..n]. `ta` includes the first bar and fills the warm-up with 0.
- OBV: starts at the first bar's volume; an unchanged close adds nothing.
- VWAP: of the typical price (high + low + close) / 3, reset at each session start: 00:00 UTC
  ("utc_day", crypto) or 17:00 New York ("fx_day", DST-aware). Not `ta`'s rolling window.
- Swings: fractals of a configured width, reported at the bar that confirms them (swings.py).

Every array function takes numpy arrays (or sequences) and returns float arrays of the same
length, NaN during warm-up. Every streaming class takes one bar per `update` with constant work
per bar, and agrees with its array function: bit for bit where the arithmetic is a recursion
(EMA, RSI, MACD, ATR, OBV, VWAP, Bollinger, swings), to rounding (1e-12 relative) for SMA, whose
streaming form keeps a running sum. Inputs must be finite (the quality monitor drops bad ticks
upstream) and volume non-negative: anything else raises ValueError rather than poisoning every
later value.
"""

from __future__ import annotations

from mikrobot_tui.trading.indicators.averages import (
    StreamingEMA,
    StreamingMACD,
    StreamingSMA,
    ema,
    macd,
    sma,
)
from mikrobot_tui.trading.indicators.momentum import FLAT_RSI, StreamingRSI, rsi
from mikrobot_tui.trading.indicators.swings import StreamingSwings, swings
from mikrobot_tui.trading.indicators.volatility import (
    StreamingATR,
    StreamingBollinger,
    atr,
    bollinger,
    true_range,
)
from mikrobot_tui.trading.indicators.volume import (
    SESSIONS,
    StreamingOBV,
    StreamingVWAP,
    obv,
    session_start,
    vwap,
)

__all__ = [
    "FLAT_RSI",
    "SESSIONS",
    "StreamingATR",
    "StreamingBollinger",
    "StreamingEMA",
    "StreamingMACD",
    "StreamingOBV",
    "StreamingRSI",
    "StreamingSMA",
    "StreamingSwings",
    "StreamingVWAP",
    "atr",
    "bollinger",
    "ema",
    "macd",
    "obv",
    "rsi",
    "session_start",
    "sma",
    "swings",
    "true_range",
    "vwap",
]
