"""Features of a break-of-structure setup, from the symbol's M1, M5 and H1 bars, streaming.

A `FeatureBook` is fed every closed bar of its symbols (`on_bar`, M1, M5 and H1; other
timeframes are ignored) and keeps constant-size state per symbol and timeframe: streaming
indicators (trading/indicators, TA-Lib's definitions) and the last few bars. At a setup
(`features(point)`) it reads that state, so the work per setup is a few dozen float operations
(target under 50 us, benchmarks/features.py) and a live run, a backtest and a replay in any
batching compute the same values: the book sees the same closed bars in the same order.

"Side" s is +1 for a bullish break (a buy) and -1 for a bearish one; features marked *signed*
are multiplied by s, so a positive value always points the trade's way and one model serves
both directions. ATR is ATR(14) (Wilder) of the feature's own timeframe; a value that needs
more bars than the book has seen (or divides by a zero ATR) is NaN: gradient boosting takes
NaN as "unknown", logistic regression needs it imputed (trading/models does).

Returns and ranges (close_k: the close k bars before the last one; all in the timeframe's ATR)
- `m1_ret_1`, `m1_ret_5`, `m1_ret_15`, `m1_ret_60`: signed (close - close_k) / ATR, M1.
- `m5_ret_1`, `m5_ret_3`, `m5_ret_12`: the same on M5.
- `h1_ret_1`, `h1_ret_4`, `h1_ret_24`: the same on H1.
- `m1_range_15`, `m1_range_60`, `m5_range_12`, `m5_range_48`, `h1_range_24`: (highest high -
  lowest low) of the last k bars / ATR.

Volatility
- `m1_atr_bps`, `m5_atr_bps`, `h1_atr_bps`: ATR / last close x 10,000.
- `m5_atr_pct`: the share of the last 100 M5 ATR values (the current one included) at or
  below the current one: 1 is the most volatile M5 of the last 100, NaN before 100.
- `vol_regime`: the population standard deviation of the last 30 M1 log returns over that
  of the last 240 (NaN before 240 returns or with a flat market).

The broken level and the break (the M5 bar that closed through the level)
- `level_dist_atr`: signed (price - level) / M5 ATR, price the setup's entry reference.
- `break_body_atr`: |close - open| of the break bar / M5 ATR.
- `break_range_atr`: (high - low) of the break bar / M5 ATR.
- `break_beyond_atr`: signed (break close - level) / M5 ATR: how far it closed through.
- `break_body_share`: |close - open| / (high - low) of the break bar (0 for a flat bar).
- `minutes_since_break`: minutes from the break bar's close to the setup's time.

Fair-value gaps (M5, three bars a, b, c: a bullish gap when low(c) > high(a), of size
low(c) - high(a); a bearish one when high(c) < low(a)), among the last 12 M5 bars (c):
- `fvg_with`, `fvg_against`: how many gaps point the setup's way, and the other way.
- `fvg_size_atr`: the newest gap the setup's way, its size / M5 ATR (0 when none).

A liquidity grab before the break (a sweep of the prior swing on the other side): an M5 bar
that traded beyond the last confirmed swing (width 2; for a bullish setup the swing low: its
low below it) and closed back inside (close above it), among the last 12 M5 bars:
- `sweep`: 1 when there was one, else 0.
- `sweep_depth_atr`: the deepest such sweep beyond the swing / M5 ATR (0 when none).
- `sweep_age`: M5 bars from the newest sweep to the last M5 bar (0: the last bar; NaN: none).

Trend, momentum and bands
- `m1_trend`, `m5_trend`, `h1_trend`: signed sign(EMA(20) - EMA(50)) of the timeframe
  (-1, 0 or 1).
- `trend_alignment`: their sum (-3 to 3: every timeframe with the trade, or against it).
- `m5_ema_dist_atr`, `h1_ema_dist_atr`: signed (close - EMA(50)) / ATR.
- `m1_rsi`, `m5_rsi`: signed (RSI(14) - 50).
- `m5_macd_hist_atr`: signed MACD(12, 26, 9) histogram / M5 ATR.
- `m5_boll_pos`: signed (close - middle) / (upper - middle) of Bollinger(20, 2) on M5: 1 at
  the band the trade points to, -1 at the other (0 when the bands are flat).
- `m5_boll_width_bps`: (upper - lower) / middle x 10,000.

Time, costs, data
- `hour_sin`, `hour_cos`: the UTC time of day of the setup on the unit circle.
- `weekday`: 0 Monday .. 6 Sunday (UTC).
- `session`: 0 Asia (00-07 UTC), 1 London (07-12), 2 London and New York (12-16), 3 New York
  (16-21), 4 the quiet hours (21-24).
- `spread_atr`: the spread at the setup / M5 ATR (NaN when unknown).
- `quality`: the symbol's data-quality score, 0..1 (NaN when unknown).
"""

from __future__ import annotations

import math
from bisect import bisect_right, insort
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from mikrobot_tui.domain.market import M1, M5, Bar
from mikrobot_tui.trading.indicators import (
    StreamingATR,
    StreamingBollinger,
    StreamingEMA,
    StreamingMACD,
    StreamingRSI,
    StreamingSwings,
)

FEATURE_NAMES: tuple[str, ...] = (
    "m1_ret_1",
    "m1_ret_5",
    "m1_ret_15",
    "m1_ret_60",
    "m5_ret_1",
    "m5_ret_3",
    "m5_ret_12",
    "h1_ret_1",
    "h1_ret_4",
    "h1_ret_24",
    "m1_range_15",
    "m1_range_60",
    "m5_range_12",
    "m5_range_48",
    "h1_range_24",
    "m1_atr_bps",
    "m5_atr_bps",
    "h1_atr_bps",
    "m5_atr_pct",
    "vol_regime",
    "level_dist_atr",
    "break_body_atr",
    "break_range_atr",
    "break_beyond_atr",
    "break_body_share",
    "minutes_since_break",
    "fvg_with",
    "fvg_against",
    "fvg_size_atr",
    "sweep",
    "sweep_depth_atr",
    "sweep_age",
    "m1_trend",
    "m5_trend",
    "h1_trend",
    "trend_alignment",
    "m5_ema_dist_atr",
    "h1_ema_dist_atr",
    "m1_rsi",
    "m5_rsi",
    "m5_macd_hist_atr",
    "m5_boll_pos",
    "m5_boll_width_bps",
    "hour_sin",
    "hour_cos",
    "weekday",
    "session",
    "spread_atr",
    "quality",
)
N_FEATURES = len(FEATURE_NAMES)

RETURNS = {"M1": (1, 5, 15, 60), "M5": (1, 3, 12), "H1": (1, 4, 24)}
RANGES = {"M1": (15, 60), "M5": (12, 48), "H1": (24,)}
ATR_PERIOD = 14
ATR_HISTORY = 100  # M5 ATR values behind m5_atr_pct
VOL_SHORT, VOL_LONG = 30, 240  # M1 log returns behind vol_regime
PATTERN_BARS = 12  # M5 bars searched for fair-value gaps and sweeps
SWING_WIDTH = 2
SESSION_STARTS = (7, 12, 16, 21)  # UTC hours where sessions 1..4 begin
NAN = math.nan
_DAY_NS = 86_400 * 1_000_000_000


@dataclass(frozen=True, slots=True)
class SetupPoint:
    """A setup at the moment it is judged: its direction, the broken level, the M5 bar that
    broke it, and the market at that moment."""

    symbol: str
    side: int  # +1 bullish (a buy), -1 bearish (a sell)
    level: float
    break_bar: Bar  # the M5 bar that closed through the level
    ts: int  # ns, the setup's time (an entry's decision time)
    price: float  # the entry reference (the retest bar's close)
    spread: float = NAN
    quality: float = NAN


class _Window:
    """Running sum and sum of squares of the last n values, re-added exactly every n values
    (math.fsum) so rounding cannot drift over a long run."""

    __slots__ = ("buf", "n", "sq", "total", "updates")

    def __init__(self, n: int) -> None:
        self.n = n
        self.buf: deque[float] = deque(maxlen=n)
        self.total = self.sq = 0.0
        self.updates = 0

    def push(self, x: float) -> None:
        buf = self.buf
        old = buf[0] if len(buf) == self.n else 0.0
        buf.append(x)
        self.updates += 1
        if self.updates % self.n == 0:
            self.total = math.fsum(buf)
            self.sq = math.fsum(v * v for v in buf)
        else:
            self.total += x - old
            self.sq += x * x - old * old

    def std(self) -> float:
        """Population standard deviation, NaN until full."""
        if len(self.buf) < self.n:
            return NAN
        mean = self.total / self.n
        return math.sqrt(max(self.sq / self.n - mean * mean, 0.0))


class _Extreme:
    """The highest (or lowest) of the last n values, kept as a monotonic queue of (index,
    value): a push is amortised O(1) and the answer is the queue's head, so a setup reads a
    range without scanning the window."""

    __slots__ = ("count", "n", "queue", "sign")

    def __init__(self, n: int, highest: bool) -> None:
        self.n = n
        self.sign = 1.0 if highest else -1.0
        self.queue: deque[tuple[int, float]] = deque()
        self.count = 0

    def push(self, x: float) -> None:
        queue, key = self.queue, self.sign * x
        while queue and self.sign * queue[-1][1] <= key:
            queue.pop()
        queue.append((self.count, x))
        self.count += 1
        if queue[0][0] <= self.count - 1 - self.n:
            queue.popleft()

    def value(self) -> float:
        """NaN until n values have been pushed."""
        return self.queue[0][1] if self.count >= self.n else NAN


@dataclass(slots=True)
class _Frame:
    """One symbol's state on one timeframe."""

    depth: int  # closes kept: the longest return window + 1
    range_windows: tuple[int, ...]
    atr: StreamingATR = field(default_factory=lambda: StreamingATR(ATR_PERIOD))
    ema20: StreamingEMA = field(default_factory=lambda: StreamingEMA(20))
    ema50: StreamingEMA = field(default_factory=lambda: StreamingEMA(50))
    rsi: StreamingRSI = field(default_factory=lambda: StreamingRSI(14))
    closes: deque[float] = field(init=False)
    highs: list[_Extreme] = field(init=False)  # one per range window
    lows: list[_Extreme] = field(init=False)
    last_ts: int | None = None

    def __post_init__(self) -> None:
        self.closes = deque(maxlen=self.depth)
        self.highs = [_Extreme(k, highest=True) for k in self.range_windows]
        self.lows = [_Extreme(k, highest=False) for k in self.range_windows]

    def push(self, bar: Bar) -> None:
        self.atr.update(bar.high, bar.low, bar.close)
        self.ema20.update(bar.close)
        self.ema50.update(bar.close)
        self.rsi.update(bar.close)
        self.closes.append(bar.close)
        for high in self.highs:
            high.push(bar.high)
        for low in self.lows:
            low.push(bar.low)
        self.last_ts = bar.ts_open


@dataclass(slots=True)
class _M5Patterns:
    """M5 extras: MACD, Bollinger, the ATR history, fair-value gaps and sweeps."""

    macd: StreamingMACD = field(default_factory=StreamingMACD)
    boll: StreamingBollinger = field(default_factory=StreamingBollinger)
    swings: StreamingSwings = field(default_factory=lambda: StreamingSwings(SWING_WIDTH))
    atrs: deque[float] = field(default_factory=lambda: deque(maxlen=ATR_HISTORY))
    atrs_sorted: list[float] = field(default_factory=list)  # the same values, ascending
    bars: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=3))
    # per bar of the last PATTERN_BARS: (bullish gap size, bearish gap size), 0 for none
    gaps: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=PATTERN_BARS))
    # per bar: (depth below the swing low closed back above, depth above the swing high ...)
    sweeps: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=PATTERN_BARS))

    def push(self, bar: Bar, atr: float | None) -> None:
        self.macd.update(bar.close)
        self.boll.update(bar.close)
        if atr is not None:
            atrs, ranked = self.atrs, self.atrs_sorted
            if len(atrs) == ATR_HISTORY:
                del ranked[bisect_right(ranked, atrs[0]) - 1]
            atrs.append(atr)
            insort(ranked, atr)
        # a sweep is judged against the swings confirmed before this bar
        swing_low, swing_high = self.swings.last_low, self.swings.last_high
        below = swing_low - bar.low if swing_low is not None and bar.low < swing_low else 0.0
        above = bar.high - swing_high if swing_high is not None and bar.high > swing_high else 0.0
        self.sweeps.append(
            (
                below if below > 0 and bar.close > swing_low else 0.0,  # type: ignore[operator]
                above if above > 0 and bar.close < swing_high else 0.0,  # type: ignore[operator]
            )
        )
        self.swings.update(bar.high, bar.low)
        bars = self.bars
        bars.append((bar.high, bar.low))
        if len(bars) == 3:
            (high_a, low_a), (high_c, low_c) = bars[0], bars[2]
            self.gaps.append(
                (max(low_c - high_a, 0.0), max(low_a - high_c, 0.0)),
            )
        else:
            self.gaps.append((0.0, 0.0))


@dataclass(slots=True)
class _Symbol:
    m1: _Frame = field(default_factory=lambda: _Frame(61, RANGES["M1"]))
    m5: _Frame = field(default_factory=lambda: _Frame(13, RANGES["M5"]))
    h1: _Frame = field(default_factory=lambda: _Frame(25, RANGES["H1"]))
    patterns: _M5Patterns = field(default_factory=_M5Patterns)
    vol_short: _Window = field(default_factory=lambda: _Window(VOL_SHORT))
    vol_long: _Window = field(default_factory=lambda: _Window(VOL_LONG))


class FeatureBook:
    """Streaming features of every symbol it is shown; see the module docstring."""

    def __init__(self) -> None:
        self._symbols: dict[str, _Symbol] = {}

    def on_bar(self, bar: Bar) -> None:
        """A closed bar. Bars of a timeframe must come in time order; one at or before the
        newest of its (symbol, timeframe) is ignored, so a repeat counts once."""
        state = self._symbols.get(bar.symbol)
        if state is None:
            state = self._symbols[bar.symbol] = _Symbol()
        frame = {"M1": state.m1, "M5": state.m5, "H1": state.h1}.get(bar.timeframe)
        if frame is None or (frame.last_ts is not None and bar.ts_open <= frame.last_ts):
            return
        if frame is state.m1 and frame.closes:
            prev = frame.closes[-1]
            if prev > 0 and bar.close > 0:
                r = math.log(bar.close / prev)
                state.vol_short.push(r)
                state.vol_long.push(r)
        frame.push(bar)
        if frame is state.m5:
            state.patterns.push(bar, frame.atr.value)

    def features(self, point: SetupPoint) -> np.ndarray:
        """The setup's features, in FEATURE_NAMES order (float64; NaN where unknown)."""
        state = self._symbols.get(point.symbol) or _Symbol()
        s = 1.0 if point.side > 0 else -1.0
        m1, m5, h1 = state.m1, state.m5, state.h1
        atr1, atr5, atr60 = m1.atr.value, m5.atr.value, h1.atr.value
        out = [
            *_returns(m1, atr1, s, RETURNS["M1"]),
            *_returns(m5, atr5, s, RETURNS["M5"]),
            *_returns(h1, atr60, s, RETURNS["H1"]),
            *_ranges(m1, atr1),
            *_ranges(m5, atr5),
            *_ranges(h1, atr60),
            _bps(atr1, m1),
            _bps(atr5, m5),
            _bps(atr60, h1),
            _percentile(state.patterns, atr5),
            _div(state.vol_short.std(), state.vol_long.std()),
        ]
        out += _break(point, atr5, s)
        out += _patterns(state.patterns, atr5, s)
        trends = [_trend(f, s) for f in (m1, m5, h1)]
        out += [*trends, math.fsum(trends)]
        out += [_ema_dist(m5, atr5, s), _ema_dist(h1, atr60, s)]
        out += [_rsi(m1, s), _rsi(m5, s)]
        macd = state.patterns.macd.value
        out.append(NAN if macd is None else _div(s * macd[2], atr5))
        out += _bands(state.patterns.boll.value, m5, s)
        out += _clock(point.ts)
        out += [_div(point.spread, atr5), point.quality]
        return np.array(out, dtype=np.float64)


def _div(num: float, den: float | None) -> float:
    if den is None or not den > 0 or math.isnan(num):
        return NAN
    return num / den


def _returns(frame: _Frame, atr: float | None, s: float, windows: tuple[int, ...]) -> list[float]:
    closes = frame.closes
    n = len(closes)
    return [_div(s * (closes[-1] - closes[-1 - k]), atr) if n > k else NAN for k in windows]


def _ranges(frame: _Frame, atr: float | None) -> list[float]:
    return [
        _div(hi.value() - lo.value(), atr) for hi, lo in zip(frame.highs, frame.lows, strict=True)
    ]


def _bps(atr: float | None, frame: _Frame) -> float:
    if atr is None or not frame.closes:
        return NAN
    return _div(atr * 10_000, frame.closes[-1])


def _percentile(p: _M5Patterns, current: float | None) -> float:
    if current is None or len(p.atrs) < ATR_HISTORY:
        return NAN
    return bisect_right(p.atrs_sorted, current) / ATR_HISTORY


def _break(point: SetupPoint, atr5: float | None, s: float) -> list[float]:
    bar = point.break_bar
    body, span = abs(bar.close - bar.open), bar.high - bar.low
    closed = bar.ts_open + M5
    return [
        _div(s * (point.price - point.level), atr5),
        _div(body, atr5),
        _div(span, atr5),
        _div(s * (bar.close - point.level), atr5),
        body / span if span > 0 else 0.0,
        (point.ts - closed) / M1,
    ]


def _patterns(p: _M5Patterns, atr5: float | None, s: float) -> list[float]:
    with_, against, newest = 0, 0, 0.0
    for bull, bear in p.gaps:
        mine, other = (bull, bear) if s > 0 else (bear, bull)
        if mine > 0:
            with_ += 1
            newest = mine
        if other > 0:
            against += 1
    depth, age = 0.0, NAN
    n = len(p.sweeps)
    for i, (below, above) in enumerate(p.sweeps):
        mine = below if s > 0 else above  # a bullish break follows a grab of the lows
        if mine > 0:
            depth = max(depth, mine)
            age = float(n - 1 - i)
    return [
        float(with_),
        float(against),
        _div(newest, atr5) if newest > 0 else 0.0,
        1.0 if depth > 0 else 0.0,
        _div(depth, atr5) if depth > 0 else 0.0,
        age,
    ]


def _trend(frame: _Frame, s: float) -> float:
    fast, slow = frame.ema20.value, frame.ema50.value
    if fast is None or slow is None:
        return NAN
    return s * (1.0 if fast > slow else -1.0 if fast < slow else 0.0)


def _ema_dist(frame: _Frame, atr: float | None, s: float) -> float:
    slow = frame.ema50.value
    if slow is None or not frame.closes:
        return NAN
    return _div(s * (frame.closes[-1] - slow), atr)


def _rsi(frame: _Frame, s: float) -> float:
    value = frame.rsi.value
    return NAN if value is None else s * (value - 50.0)


def _bands(value: tuple[float, float, float] | None, m5: _Frame, s: float) -> list[float]:
    if value is None:
        return [NAN, NAN]
    upper, middle, lower = value
    half = upper - middle
    pos = s * (m5.closes[-1] - middle) / half if half > 0 else 0.0
    return [pos, _div((upper - lower) * 10_000, middle)]


def _clock(ts: int) -> list[float]:
    of_day = ts % _DAY_NS
    angle = 2 * math.pi * of_day / _DAY_NS
    hour = of_day // (3_600 * 1_000_000_000)
    weekday = (ts // _DAY_NS + 3) % 7  # 1970-01-01 was a Thursday
    session = sum(1 for start in SESSION_STARTS if hour >= start)
    return [math.sin(angle), math.cos(angle), float(weekday), float(session)]
