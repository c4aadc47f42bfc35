"""Volume: OBV and session VWAP, as arrays and streaming."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from mikrobot_tui.trading.indicators._core import (
    Series,
    Streaming,
    check_finite,
    check_volume,
    finite_array,
    hlc,
    nonnegative_volume,
    same_length,
)

NS = 1_000_000_000
DAY_NS = 86_400 * NS
NEW_YORK = ZoneInfo("America/New_York")
FX_DAY_HOUR = 17  # the FX day rolls over at 17:00 New York, 21:00 or 22:00 UTC
SESSIONS = ("utc_day", "fx_day")


def obv(close: Series, volume: Series) -> np.ndarray:
    """On-balance volume, TA-Lib's: OBV[0] = volume[0]; a higher close adds the bar's volume, a
    lower one subtracts it, an unchanged close adds nothing (`ta` adds it). No warm-up."""
    c = finite_array(close, "close")
    v = nonnegative_volume(volume)
    same_length(close=c, volume=v)
    if c.shape[0] == 0:
        return np.zeros(0)
    steps = np.empty_like(v)
    steps[0] = v[0]
    steps[1:] = np.sign(np.diff(c)) * v[1:]
    return np.cumsum(steps)


def _check_session(session: str) -> str:
    if session not in SESSIONS:
        raise ValueError(f"session must be one of {', '.join(SESSIONS)}, got {session!r}")
    return session


def _fx_day_open(day: datetime) -> int:
    """17:00 New York on that calendar day, in ns UTC (17:00 is never in a DST gap or fold)."""
    opened = datetime(day.year, day.month, day.day, FX_DAY_HOUR, tzinfo=NEW_YORK)
    return int(opened.timestamp()) * NS


def session_start(ts_ns: int, session: str = "utc_day") -> tuple[int, int]:
    """(start, end) in ns UTC of the session holding `ts_ns`: "utc_day" runs from 00:00 UTC,
    "fx_day" from 17:00 America/New_York (DST-aware: 22:00 UTC in winter, 21:00 in summer)."""
    _check_session(session)
    if session == "utc_day":
        start = ts_ns // DAY_NS * DAY_NS
        return start, start + DAY_NS
    local = datetime.fromtimestamp(ts_ns // NS, tz=NEW_YORK)
    day = local if local.hour >= FX_DAY_HOUR else local - timedelta(days=1)
    return _fx_day_open(day), _fx_day_open(day + timedelta(days=1))


def _timestamps(ts_ns: Series) -> np.ndarray:
    ts = np.asarray(ts_ns)
    if ts.ndim != 1 or (ts.size and ts.dtype.kind not in "iu"):
        raise ValueError(f"ts_ns must be one-dimensional integer nanoseconds, got {ts.dtype}")
    ts = ts.astype(np.int64)
    if ts.size > 1 and (np.diff(ts) < 0).any():
        bad = int(np.flatnonzero(np.diff(ts) < 0)[0]) + 1
        raise ValueError(f"ts_ns[{bad}] goes back in time: bars must be in time order")
    return ts


def _session_starts(ts: np.ndarray, session: str) -> np.ndarray:
    if session == "utc_day":
        return ts // DAY_NS * DAY_NS
    start, end = session_start(int(ts[0]), session)
    bounds = [start]
    while end <= ts[-1]:
        bounds.append(end)
        end = session_start(end, session)[1]
    edges = np.asarray(bounds, dtype=np.int64)
    return edges[np.searchsorted(edges, ts, side="right") - 1]


def vwap(
    high: Series,
    low: Series,
    close: Series,
    volume: Series,
    ts_ns: Series,
    session: str = "utc_day",
) -> np.ndarray:
    """Session VWAP of the typical price (high + low + close) / 3, weighted by volume and reset
    at each session start (see `session_start`); `ts_ns` is each bar's open time, in order.
    NaN while the session has seen no volume (FX bars carry none: pass their tick counts)."""
    session = _check_session(session)
    h, lo, c = hlc(high, low, close)
    v = nonnegative_volume(volume)
    ts = _timestamps(ts_ns)
    same_length(high=h, volume=v, ts_ns=ts)
    out = np.full(h.shape[0], np.nan)
    if h.shape[0] == 0:
        return out
    pv = (h + lo + c) / 3.0 * v
    starts = _session_starts(ts, session)
    cuts = np.flatnonzero(starts[1:] != starts[:-1]) + 1
    for a, b in zip(np.r_[0, cuts].tolist(), np.r_[cuts, len(ts)].tolist(), strict=True):
        cum_v = np.cumsum(v[a:b])
        traded = cum_v > 0
        out[a:b][traded] = np.cumsum(pv[a:b])[traded] / cum_v[traded]
    return out


class StreamingOBV(Streaming):
    """OBV one bar at a time; ready from the first bar (its volume)."""

    __slots__ = ("_count", "_prev", "value")

    def __init__(self) -> None:
        self._count = 0
        self._prev: float | None = None
        self.value: float | None = None

    def update(self, close: float, volume: float) -> float:
        c = check_finite(close, "close")
        v = check_volume(volume)
        prev, self._prev = self._prev, c
        self._count += 1
        if prev is None or self.value is None:
            self.value = v
        elif c > prev:
            self.value += v
        elif c < prev:
            self.value -= v
        return self.value


class StreamingVWAP(Streaming):
    """Session VWAP one bar at a time; `update` returns None while the session has no volume.
    Bars must come in time order; the first bar at or after the session's end starts anew."""

    __slots__ = ("_count", "_end", "_last_ts", "_pv", "_v", "session", "start", "value")

    def __init__(self, session: str = "utc_day") -> None:
        self.session = _check_session(session)
        self._count = 0
        self.start: int | None = None  # the current session's start, ns UTC
        self._end = 0
        self._last_ts: int | None = None
        self._pv = self._v = 0.0
        self.value: float | None = None

    def update(
        self, high: float, low: float, close: float, volume: float, ts_ns: int
    ) -> float | None:
        h = check_finite(high, "high")
        lo = check_finite(low, "low")
        c = check_finite(close, "close")
        v = check_volume(volume)
        if isinstance(ts_ns, bool) or not isinstance(ts_ns, int | np.integer):
            raise ValueError(f"ts_ns must be integer nanoseconds, got {ts_ns!r}")
        ts = int(ts_ns)
        if self._last_ts is not None and ts < self._last_ts:
            raise ValueError(f"ts_ns {ts} goes back in time (last {self._last_ts})")
        self._last_ts = ts
        self._count += 1
        if self.start is None or ts >= self._end:
            self.start, self._end = session_start(ts, self.session)
            self._pv = self._v = 0.0
            self.value = None
        self._pv += (h + lo + c) / 3.0 * v
        self._v += v
        if self._v > 0:
            self.value = self._pv / self._v
        return self.value
