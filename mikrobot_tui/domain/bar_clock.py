"""Where a bar opens: the clock each timeframe's periods are counted on.

Bars up to H1 open at whole multiples of their period in UTC: floor(ts / P) * P.

H4 and D1 bars follow the trading day of their market:
- A market with New York hours (forex, metals, indices: quality `hours` "fx") trades from
  Sunday 17:00 to Friday 17:00 New York and rolls its day at 17:00 New York. Its D1 bar opens
  at 17:00 New York and its H4 bars every four hours from there (17, 21, 01, 05, 09 and 13
  New York): five D1 bars a week and no Sunday stub, as an MT5 server on "New York close"
  time (UTC+2 in winter, UTC+3 during US daylight saving) gives them. The periods are counted
  on that clock, New York's wall time + 7 hours, and the bar's open is converted back to UTC:
  22:00 UTC in the northern winter, 21:00 UTC in summer.
- A market that never closes (crypto) keeps UTC: D1 at 00:00 UTC and H4 at 00, 04, ... UTC,
  as Binance's klines.

New York's offsets are whole hours, so bars up to H1 open at the same instants on either
clock; only longer periods need it. The US changes its clocks at 02:00 on a Sunday, while
the New York markets are closed, so a D1 bar never spans a change.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

import numpy as np

from mikrobot_tui.domain.hours import NEW_YORK
from mikrobot_tui.domain.market import H1, NS_PER_SECOND

_HOUR_S = 3_600
_SHIFT_S = 7 * _HOUR_S  # 17:00 New York is midnight on the trading-day clock


def clocked(period_ns: int) -> bool:
    """Whether bars of `period_ns` count their periods on the market's trading-day clock."""
    return period_ns > H1


@lru_cache(maxsize=64)
def _year(year: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """New York's offset changes in `year` (UTC ns where each starts) and the trading-day
    clock's offset (ns) from each; found by bisection on zoneinfo, then cached."""

    def offset(t: int) -> int:
        return int(datetime.fromtimestamp(t, NEW_YORK).utcoffset().total_seconds())

    lo = int(datetime(year, 1, 1, tzinfo=UTC).timestamp())
    hi = int(datetime(year + 1, 1, 1, tzinfo=UTC).timestamp())
    starts, offsets = [lo], [offset(lo)]
    step = 7 * 24 * _HOUR_S  # changes are months apart: a week's scan finds each one
    t = lo
    while t < hi:
        nxt = min(t + step, hi)
        if offset(nxt) != offsets[-1] and nxt < hi:
            a, b = t, nxt  # offset(a) is the current one, offset(b) the next
            while b - a > 1:
                mid = (a + b) // 2
                if offset(mid) == offsets[-1]:
                    a = mid
                else:
                    b = mid
            starts.append(b)
            offsets.append(offset(b))
        t = nxt
    return (
        tuple(s * NS_PER_SECOND for s in starts),
        tuple((o + _SHIFT_S) * NS_PER_SECOND for o in offsets),
    )


def _table(lo_ns: int, hi_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """The offset changes covering [lo_ns, hi_ns], as sorted arrays for searchsorted."""
    first = datetime.fromtimestamp(lo_ns // NS_PER_SECOND, UTC).year - 1
    last = datetime.fromtimestamp(hi_ns // NS_PER_SECOND, UTC).year + 1
    starts: list[int] = []
    offsets: list[int] = []
    for year in range(first, last + 1):
        s, o = _year(year)
        starts.extend(s)
        offsets.extend(o)
    return np.array(starts, dtype=np.int64), np.array(offsets, dtype=np.int64)


def ny_offsets(ts: np.ndarray) -> np.ndarray:
    """The trading-day clock's offset from UTC (ns) at each UTC timestamp."""
    ts = np.asarray(ts, dtype=np.int64)
    if len(ts) == 0:
        return np.zeros(0, dtype=np.int64)
    starts, offsets = _table(int(ts.min()), int(ts.max()))
    return offsets[np.searchsorted(starts, ts, side="right") - 1]


# (from_ns, to_ns, offset): the answer for every ts in [from_ns, to_ns)
_window: tuple[int, int, int] = (0, 0, 0)


def ny_offset(ts_ns: int) -> int:
    """`ny_offsets` for one timestamp; a tick at a time asks this, so the span the last
    answer holds for is kept."""
    global _window
    lo, hi, off = _window
    if lo <= ts_ns < hi:
        return off
    starts, offsets = _table(ts_ns, ts_ns)
    i = int(np.searchsorted(starts, ts_ns, side="right")) - 1
    _window = (int(starts[i]), int(starts[i + 1]), int(offsets[i]))
    return _window[2]


def utc_of_local(local_ns: np.ndarray) -> np.ndarray:
    """Trading-day clock times back to UTC (a bar's open): the offset in force at the UTC
    instant, found in two steps."""
    local_ns = np.asarray(local_ns, dtype=np.int64)
    guess = local_ns - ny_offsets(local_ns - 2 * _HOUR_S * NS_PER_SECOND)
    return local_ns - ny_offsets(guess)


def bar_opens(ts: np.ndarray, period_ns: int, ny_close: np.ndarray | bool = False) -> np.ndarray:
    """The UTC open of the `period_ns` bar holding each UTC timestamp; `ny_close` (per
    timestamp, or one for all) says the market keeps New York's trading day."""
    ts = np.asarray(ts, dtype=np.int64)
    plain = ts // period_ns * period_ns
    if not clocked(period_ns) or not np.any(ny_close):
        return plain
    local = ts + ny_offsets(ts)
    anchored = utc_of_local(local // period_ns * period_ns)
    return np.where(ny_close, anchored, plain)


def bar_open(ts_ns: int, period_ns: int, ny_close: bool = False) -> int:
    """`bar_opens` for one timestamp."""
    if not clocked(period_ns) or not ny_close:
        return ts_ns // period_ns * period_ns
    return int(bar_opens(np.array([ts_ns]), period_ns, True)[0])


def utc_of_local_one(local_ns: int) -> int:
    """`utc_of_local` for one time."""
    guess = local_ns - ny_offset(local_ns - 2 * _HOUR_S * NS_PER_SECOND)
    return local_ns - ny_offset(guess)
