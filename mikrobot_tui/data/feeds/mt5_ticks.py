"""MetaTrader 5 ticks as the engine's records: exact polls, the broker's clock, the conversion.

`Cursor.take_new` makes polling exact. `copy_ticks_from` is asked from the second holding the
last delivered tick (its date_from is whole seconds), and several ticks can share one
`time_msc`, so a cursor is (the last delivered time_msc, how many ticks at that millisecond
were delivered): older ticks and the first `seen` ticks at that millisecond are dropped,
everything after them is new. A terminal's history is append-only, so each tick is delivered
once and a late poll (a slow terminal, a reconnect) starts exactly where the last one stopped.

`Cursor.convert` makes the records. A side whose flag (TICK_FLAG_BID 2, TICK_FLAG_ASK 4) is not
set carries that side's previous value (before any is known, the tick's own value, which
MetaTrader fills in); `last` and `volume` (volume_real when given) only on trade ticks
(TICK_FLAG_LAST 8), NaN otherwise. A row identical to the symbol's previous one (two trades of
one size at one millisecond) is not repeated; each trade tick is also a TRADE_DTYPE record, two
trades stay two, side +1 with TICK_FLAG_BUY (32), -1 with TICK_FLAG_SELL (64), else 0.

`ServerClock` turns the broker's server clock into UTC with `mt5.server_timezone`
(domain/timezones.py), the offset looked up once per server second. Brokers change their clock
for daylight saving on a weekend, when the market is shut, so a repeated hour carries no ticks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from zoneinfo import ZoneInfo

import numpy as np

from mikrobot_tui.domain.market import NS_PER_MS, NS_PER_SECOND, TICK_DTYPE, TRADE_DTYPE
from mikrobot_tui.domain.timezones import server_to_utc_ns

FLAG_BID, FLAG_ASK, FLAG_LAST, FLAG_VOLUME, FLAG_BUY, FLAG_SELL = 2, 4, 8, 16, 32, 64
COPY_TICKS_ALL = -1
FETCH = 10_000  # ticks asked for per symbol and poll; a longer backlog takes several polls
FETCH_MAX = 1_000_000
MT5_TICK_DTYPE = np.dtype(  # what copy_ticks_from returns
    [
        ("time", "<i8"),
        ("bid", "<f8"),
        ("ask", "<f8"),
        ("last", "<f8"),
        ("volume", "<u8"),
        ("time_msc", "<i8"),
        ("flags", "<u4"),
        ("volume_real", "<f8"),
    ]
)
_WEEK_S = 7 * 86_400
_WEEKEND = (4 * 86_400 + 22 * 3600, 6 * 86_400 + 22 * 3600)  # Fri 22:00, Sun 22:00 from Monday
Row = tuple[int, float, float, float, float]  # ts_event, bid, ask, last, volume


def fx_weekend(utc_ns: int) -> bool:
    """Whether `utc_ns` falls in the FX weekend, Friday 22:00 UTC to Sunday 22:00 UTC."""
    since_monday = (utc_ns // NS_PER_SECOND + 3 * 86_400) % _WEEK_S  # 1970-01-01: a Thursday
    return _WEEKEND[0] <= since_monday < _WEEKEND[1]


class ServerClock:
    """The broker's server clock (a zone and a shift, see domain/timezones.py) against UTC."""

    def __init__(self, zone: ZoneInfo, shift: timedelta) -> None:
        self.zone, self.shift = zone, shift
        self._offsets: dict[int, int] = {}  # server second -> UTC minus server, ns

    def to_utc(self, msc: np.ndarray) -> np.ndarray:
        """Server-clock milliseconds (int64) as UTC nanoseconds."""
        seconds, where = np.unique(msc // 1000, return_inverse=True)
        offsets = np.empty(len(seconds), dtype=np.int64)
        for k, s in enumerate(seconds.tolist()):
            off = self._offsets.get(s)
            if off is None:
                server_ns = s * NS_PER_SECOND
                off = server_to_utc_ns(server_ns, self.zone, self.shift) - server_ns
                if len(self._offsets) >= 100_000:
                    self._offsets.clear()
                self._offsets[s] = off
            offsets[k] = off
        return msc * NS_PER_MS + offsets[where]

    def server_ms(self, utc_ns: int) -> int:
        """The server clock at `utc_ns`, in milliseconds (near enough for a starting point)."""
        offset = server_to_utc_ns(utc_ns, self.zone, self.shift) - utc_ns
        return (utc_ns - offset) // NS_PER_MS


@dataclass
class Cursor:
    """Where one symbol's ticks stand, and what its next records carry forward."""

    msc: int | None = None  # time_msc of the last delivered tick (server clock)
    seen: int = 0  # ticks at `msc` already delivered
    seed: int | None = None  # time_msc of the quote found at connection: not market activity
    fetch: int = FETCH
    bid: float = np.nan
    ask: float = np.nan
    last_row: Row | None = field(default=None)

    def take_new(self, raw: np.ndarray) -> np.ndarray:
        """The ticks of a copy_ticks_from answer not delivered yet; moves the cursor past them."""
        assert self.msc is not None
        msc = raw["time_msc"].astype(np.int64)
        keep = msc > self.msc
        keep[np.flatnonzero(msc == self.msc)[self.seen :]] = True
        if not keep.any():
            if len(raw) >= self.fetch:  # a window full of seen ticks: ask for more next time
                self.fetch = min(FETCH_MAX, self.fetch * 2)
            return raw[:0]
        top = int(msc[keep][-1])
        self.msc, self.seen, self.fetch = top, int(np.count_nonzero(msc == top)), FETCH
        return raw[keep]

    def convert(
        self, sym: int, new: np.ndarray, recv: int, clock: ServerClock
    ) -> tuple[np.ndarray, np.ndarray]:
        """New MetaTrader ticks of symbol index `sym` as (TICK_DTYPE rows, TRADE_DTYPE)."""
        flags = new["flags"].astype(np.int64)
        bid = carry(new["bid"].astype(float), flags & FLAG_BID != 0, self.bid)
        ask = carry(new["ask"].astype(float), flags & FLAG_ASK != 0, self.ask)
        self.bid, self.ask = float(bid[-1]), float(ask[-1])
        trade = flags & FLAG_LAST != 0
        real = new["volume_real"].astype(float)
        size = np.where(real > 0, real, new["volume"].astype(float))
        ts = clock.to_utc(new["time_msc"].astype(np.int64))
        out = np.zeros(len(new), dtype=TICK_DTYPE)
        out["ts_event"], out["ts_recv"], out["sym"] = ts, recv, sym
        out["bid"], out["ask"] = bid, ask
        out["last"] = np.where(trade, new["last"].astype(float), np.nan)
        out["volume"] = np.where(trade, size, np.nan)
        keep = ~(np.isnan(bid) | np.isnan(ask))  # no quote known yet: nothing to show
        keep &= ~repeats(out, self.last_row)
        out = out[keep]
        if len(out):
            r = out[-1]
            self.last_row = (
                int(r["ts_event"]),
                float(r["bid"]),
                float(r["ask"]),
                float(r["last"]),
                float(r["volume"]),
            )
        trades = np.zeros(int(trade.sum()), dtype=TRADE_DTYPE)
        if len(trades):
            f = flags[trade]
            trades["ts_event"], trades["ts_recv"], trades["sym"] = ts[trade], recv, sym
            trades["price"], trades["size"] = new["last"][trade], size[trade]
            buy, sell = f & FLAG_BUY != 0, f & FLAG_SELL != 0
            trades["side"] = np.where(buy & ~sell, 1, np.where(sell & ~buy, -1, 0))
        return out, trades


def carry(values: np.ndarray, changed: np.ndarray, previous: float) -> np.ndarray:
    """A side's values, unchanged ticks carrying the last changed one (or `previous`); before
    any value is known, a tick's own positive value."""
    idx = np.where(changed, np.arange(len(values)), -1)
    np.maximum.accumulate(idx, out=idx)
    out = values[np.maximum(idx, 0)]
    head = idx < 0
    if head.any():
        own = np.where(values[head] > 0, values[head], np.nan)
        out[head] = own if np.isnan(previous) else previous
    return out


def repeats(rows: np.ndarray, before: Row | None) -> np.ndarray:
    """Rows identical to the row before them (the first one compared with `before`)."""
    same = np.ones(len(rows), dtype=bool)
    if not len(rows):
        return same
    if before is None:
        same[0] = False
    for k, name in enumerate(("ts_event", "bid", "ask", "last", "volume")):
        a = rows[name]
        prev = np.empty_like(a)
        prev[1:] = a[:-1]
        prev[0] = a[0] if before is None else before[k]
        eq = a == prev
        if a.dtype.kind == "f":
            eq |= np.isnan(a) & np.isnan(prev)
        same &= eq
    return same


def as_ticks(raw: object) -> np.ndarray:
    """copy_ticks_from's answer as a structured array (a bridge may hand over a sequence)."""
    if isinstance(raw, np.ndarray) and raw.dtype.names and "time_msc" in raw.dtype.names:
        return raw
    return np.array([tuple(r) for r in raw], dtype=MT5_TICK_DTYPE)  # type: ignore[attr-defined]
