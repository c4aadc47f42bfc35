"""Bars from ticks, vectorised over a batch.

A bar of period P covers [floor(ts / P) * P, + P) (CONVENTIONS.md, "Candles"). Every tick builds
bars on its mid, (bid + ask) / 2, in this first cut, trades included: the trade price `last` is
not used yet. Open and close are the first and last tick of the period in arrival order; a period
with no ticks has no bar. A bar closes when the first tick of its symbol in a later period arrives;
`close_idx` names that tick, so the caller can act on the bar exactly where the stream closed it.

Batch independence: the same stream chopped into batches of any size gives the same bars and the
same close indices (relative to the stream). Prices are only compared and copied, never summed;
volume is summed in fixed point (units of `volume_quantum`, 1e-8 by default) so the sum does not
depend on where the batches were cut. That caps one bar's volume at about 9.2e10 units at 1e-8.

H4 and D1 bars of a symbol that keeps New York's trading day open at 17:00 New York and every
four hours from there (domain/bar_clock.py): their builders count periods on that clock and
convert each bar's open back to UTC, so `ts_open` is always UTC.

Input is expected clean (the quality monitor's output): finite prices and, per symbol,
non-decreasing `ts_event`. A tick that is older than its symbol's current bar is folded into the
current bar rather than reopening a closed one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mikrobot_tui.domain.bar_clock import (
    clocked,
    ny_offset,
    ny_offsets,
    utc_of_local,
    utc_of_local_one,
)
from mikrobot_tui.domain.market import BAR_DTYPE, M1, empty_bars

_NO_PERIOD = np.iinfo(np.int64).min
_ROW = np.dtype((np.void, BAR_DTYPE.itemsize))
# A live feed under low load hands over one tick at a time: up to this many ticks, a builder
# folds them in one by one with Python scalars (CandleBuilder.fold), a few microseconds instead
# of the ~50 numpy calls of the vectorised update
_FOLD_MAX = 16
_INFINITE = (float("inf"), float("-inf"))
# what `fold` returns when no bar closed, most ticks: one pair for all (nothing can be written
# into an array of no rows), not two new arrays per builder and tick
NO_BARS_CLOSED = (empty_bars(), np.zeros(0, dtype=np.int64))
_FOLDED = ("high", "low", "close", "ticks", "volume")  # what a tick changes in an open bar


def _rows(bars: np.ndarray) -> np.ndarray:
    """Bars as opaque rows: gathers and concatenations copy bytes, many times faster."""
    return bars.view(_ROW)


def _trading_day_ts(rows: _BySymbol | _Units, ny_close: np.ndarray) -> np.ndarray:
    """`rows.ts` on the trading-day clock for the symbols `ny_close` marks (their `sym`), UTC
    for the rest; worked out once per `ny_close` and kept on `rows`."""
    local = rows._local
    if local is None or local[0] != id(ny_close):
        offsets = ny_offsets(rows.ts)
        offsets[~ny_close[rows.sym]] = 0
        local = rows._local = (id(ny_close), rows.ts + offsets)
    return local[1]


class _BySymbol:
    """A batch sorted by symbol (stable), the columns bars need, shared by several builders."""

    def __init__(self, ticks: np.ndarray) -> None:
        self.n = n = len(ticks)
        sym = ticks["sym"].copy()  # contiguous: sorts faster than the strided column
        self.order = order = np.argsort(sym, kind="stable")
        self.sym = sym = np.take(sym, order)
        self.ts = ts = np.take(ticks["ts_event"], order)
        mid = np.take(ticks["bid"], order)
        mid += np.take(ticks["ask"], order)
        mid *= 0.5
        self.mid = self.open = self.high = self.low = self.close = mid
        self.ticks: np.ndarray | None = None  # one tick each
        self._volume = np.take(ticks["volume"], order)
        self._fixed: dict[float, np.ndarray] = {}
        self._local: tuple[int, np.ndarray] | None = None
        # the runs of each symbol, and whether every symbol's ts_event never goes back
        bounds = np.flatnonzero(sym[1:] != sym[:-1])
        self.first = first = np.empty(len(bounds) + 1, dtype=np.int64)
        first[0] = 0
        np.add(bounds, 1, out=first[1:])
        self.seg_sym = sym[first]
        back = ts[1:] < ts[:-1]
        back[bounds] = False
        self.monotone = n < 2 or not back.any()

    def local_ts(self, ny_close: np.ndarray) -> np.ndarray:
        """ts_event on the trading-day clock for the symbols `ny_close` marks, UTC for the
        rest (bar_clock.py); the builders of H4 and D1 share it."""
        return _trading_day_ts(self, ny_close)

    def volume_fixed(self, quantum: float) -> np.ndarray:
        if quantum not in self._fixed:
            v = self._volume
            self._fixed[quantum] = np.rint(np.where(np.isnan(v), 0.0, v) / quantum).astype(np.int64)
        return self._fixed[quantum]


@dataclass(frozen=True, slots=True)
class _Groups:
    """One builder's runs of a batch (symbol order), before the carried bars are merged."""

    sym: np.ndarray
    period: np.ndarray  # the period number (on the builder's clock) of each group
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    ticks: np.ndarray
    volume: np.ndarray  # fixed point
    first_idx: np.ndarray  # the batch index of each group's first tick
    seg_sym: np.ndarray  # the symbols of the batch, in order
    gf: np.ndarray  # each symbol's first group
    gl: np.ndarray  # ... and last


class _Units:
    """A batch's M1 runs standing in for its ticks in the longer builders: every longer period
    (M5 to D1, on UTC or the trading-day clock, whose offsets are whole hours) is a union of
    whole minutes, so its bars fold the minutes' open, high, low, close, ticks and volume
    (fixed point: the same sums) to the same bits as the ticks', for a few dozen rows."""

    def __init__(self, m1: _Groups, period_ns: int, quantum: float) -> None:
        self.n = len(m1.sym)
        self.sym, self.seg_sym, self.first = m1.sym, m1.seg_sym, m1.gf
        self.ts = m1.period * period_ns  # each minute's start, UTC
        self.order = m1.first_idx
        self.open, self.high, self.low, self.close = m1.open, m1.high, m1.low, m1.close
        self.ticks = m1.ticks
        self.monotone = True  # the minutes of a symbol never go back (late ticks folded in)
        self._volume, self._quantum = m1.volume, quantum
        self._local: tuple[int, np.ndarray] | None = None

    def local_ts(self, ny_close: np.ndarray) -> np.ndarray:
        return _trading_day_ts(self, ny_close)

    def volume_fixed(self, quantum: float) -> np.ndarray:
        assert quantum == self._quantum, "one volume quantum for every builder"
        return self._volume


class CandleBuilder:
    """Builds bars of one period for `n_symbols` symbols (sym indexes the engine's list)."""

    def __init__(
        self,
        n_symbols: int,
        period_ns: int,
        *,
        volume_quantum: float = 1e-8,
        ny_close: np.ndarray | None = None,
    ) -> None:
        """`ny_close[sym]`: the symbol keeps New York's trading day (H4 and D1 bars open at
        17:00 New York, bar_clock.py); by default every symbol keeps UTC."""
        if period_ns <= 0:
            raise ValueError(f"period_ns must be positive, got {period_ns}")
        self.n_symbols = n_symbols
        self.period_ns = int(period_ns)
        ny = np.zeros(n_symbols, dtype=bool) if ny_close is None else np.asarray(ny_close, bool)
        # None when no symbol's periods need the trading-day clock: the plain UTC arithmetic
        self._ny = ny if clocked(self.period_ns) and ny.any() else None
        self._quantum = float(volume_quantum)
        self._has = np.zeros(n_symbols, dtype=bool)
        self._period = np.full(n_symbols, _NO_PERIOD, dtype=np.int64)
        # the partial bar of each symbol (where _has), as it would be returned
        self._state = empty_bars(n_symbols)
        self._rows = _rows(self._state)  # the same memory as opaque rows: copies are faster
        self._folded = tuple(self._state[f] for f in _FOLDED)  # views of the same memory too
        self._vol = np.zeros(n_symbols, dtype=np.int64)  # fixed point, units of _quantum

    # `_rows` and `_folded` are views of `_state`'s memory. Pickle (a replay's checkpoint)
    # would store them as copies of their own, and a restored builder would then fold ticks
    # into arrays its bars are not read from: they are left out and made again as views.
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["_rows"], state["_folded"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._rows = _rows(self._state)
        self._folded = tuple(self._state[f] for f in _FOLDED)

    def update(self, ticks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fold a batch in; return (closed bars, close_idx), ordered by close_idx.

        close_idx[k] is the index within `ticks` of the tick that closed bar k: the first tick of
        that symbol in a later period. Bars still open stay in the builder (see open_bars()).
        """
        if len(ticks) == 0:
            return empty_bars(), np.zeros(0, dtype=np.int64)
        return self._update(_BySymbol(ticks))

    def fold(
        self, sym: list[int], ts: list[int], mid: list[float], vol: list[float]
    ) -> tuple[np.ndarray, np.ndarray]:
        """`update` for a few ticks given as Python scalars (arrival order; no NaN mid, no
        infinite volume: numpy's NaN and overflow rules differ): tick by tick, a tick at or
        before its symbol's open period joins that bar (late ticks are folded in), a later
        one closes it and opens the next. The same arithmetic as `_update`, so the same bits,
        for a tenth of the cost on the one tick a quiet live feed brings."""
        has, period, p_ns, fixed, q = (
            self._has,
            self._period,
            self.period_ns,
            self._vol,
            self._quantum,
        )
        state, rows = self._state, self._rows
        high, low, close, count, volume = self._folded
        closed: list[np.ndarray] = []
        close_idx: list[int] = []
        ny = self._ny
        for i, (s, t, m, v) in enumerate(zip(sym, ts, mid, vol, strict=True)):
            local = ny is not None and ny[s]
            p = (t + ny_offset(t)) // p_ns if local else t // p_ns
            units = round(v / q) if v == v else 0  # NaN volume counts as none
            if has[s] and p <= period[s]:
                if m > high[s]:
                    high[s] = m
                if m < low[s]:
                    low[s] = m
                close[s] = m
                count[s] += 1
                if units:
                    fixed[s] += units
            else:
                if has[s]:
                    closed.append(rows[s : s + 1].copy())
                    close_idx.append(i)
                has[s], period[s], fixed[s] = True, p, units
                opens = utc_of_local_one(p * p_ns) if local else p * p_ns
                state[s] = (s, p_ns, opens, m, m, m, m, 1, 0.0)
            volume[s] = int(fixed[s]) * q
        if not closed:
            return NO_BARS_CLOSED
        return np.concatenate(closed).view(BAR_DTYPE), np.array(close_idx, dtype=np.int64)

    def _update(self, b: _BySymbol | _Units) -> tuple[np.ndarray, np.ndarray]:
        return self._merge(self._groups(b))

    def _groups(self, b: _BySymbol | _Units) -> _Groups:
        """The batch's runs of one period per symbol (ticks or shorter bars folded), before
        the bars carried from the batch before are merged in."""
        n, sym = b.n, b.sym
        ts = b.ts if self._ny is None else b.local_ts(self._ny)
        vol_fp = b.volume_fixed(self._quantum)

        period = ts // self.period_ns
        # no tick goes before its symbol's current bar, nor before an earlier tick's bar
        seg_first = b.first
        carried = self._period[b.seg_sym]
        if b.monotone:
            low = period[seg_first] < carried  # only a run at the start can be low
        else:
            low = np.minimum.reduceat(period, seg_first) < carried
        if low.any():
            seg_end = np.append(seg_first[1:], n)
            for j in np.flatnonzero(low).tolist():
                part = period[seg_first[j] : seg_end[j]]
                np.maximum(part, carried[j], out=part)
        if not b.monotone:
            same_sym = sym[1:] == sym[:-1]
            if (same_sym & (period[1:] < period[:-1])).any():
                self._monotone_per_symbol(sym, period)

        new_group = np.empty(n, dtype=bool)
        np.not_equal(period[1:], period[:-1], out=new_group[1:])
        new_group[seg_first] = True
        starts = np.flatnonzero(new_group)
        ends = np.empty_like(starts)
        ends[:-1] = starts[1:]
        ends[-1] = n

        # each symbol's first and last group; every other group is a bar closed in the batch
        gf = np.searchsorted(starts, seg_first)
        gl = np.empty_like(gf)
        gl[:-1] = gf[1:] - 1
        gl[-1] = len(starts) - 1
        return _Groups(
            sym=sym[starts],
            period=period[starts],
            open=b.open[starts],
            high=np.maximum.reduceat(b.high, starts),
            low=np.minimum.reduceat(b.low, starts),
            close=b.close[ends - 1],
            ticks=ends - starts if b.ticks is None else np.add.reduceat(b.ticks, starts),
            volume=np.add.reduceat(vol_fp, starts),
            first_idx=b.order[starts],
            seg_sym=b.seg_sym,
            gf=gf,
            gl=gl,
        )

    def _merge(self, g: _Groups) -> tuple[np.ndarray, np.ndarray]:
        """The batch's groups with the carried bars: the bars closed, ordered by the tick
        that closed them; the last group of each symbol is kept as its open bar."""
        seg_sym = g.seg_sym
        one_each = len(g.sym) == len(seg_sym) and self._has[seg_sym].all()
        if one_each and (self._period[seg_sym] == g.period).all():
            return self._extend(g)
        g_open, g_high, g_low = g.open.copy(), g.high.copy(), g.low.copy()
        g_ticks, g_vol = g.ticks.copy(), g.volume.copy()
        gf, gl = g.gf, g.gl
        not_last = np.ones(len(g.sym), dtype=bool)
        not_last[gl] = False
        done = np.flatnonzero(not_last)

        # Merge each symbol's carried partial bar into its first group, or close it there.
        has = self._has[seg_sym]
        cont = has & (self._period[seg_sym] == g.period[gf])
        if cont.any():
            gi, si = gf[cont], seg_sym[cont]
            kept = self._rows[si].view(BAR_DTYPE)
            g_open[gi] = kept["open"]
            g_high[gi] = np.maximum(g_high[gi], kept["high"])
            g_low[gi] = np.minimum(g_low[gi], kept["low"])
            g_ticks[gi] += kept["ticks"]
            g_vol[gi] += self._vol[si]
        closing = has & ~cont
        c_sym = seg_sym[closing]
        c_idx = g.first_idx[gf[closing]]
        # Groups followed by another group of the same symbol close at that group's first tick.
        d_idx = g.first_idx[done + 1]

        groups = empty_bars(len(g.sym))
        groups["sym"] = g.sym
        groups["period_ns"] = self.period_ns
        groups["ts_open"] = g.period * self.period_ns
        if self._ny is not None:
            local = self._ny[g.sym]
            groups["ts_open"][local] = utc_of_local(groups["ts_open"][local])
        groups["open"] = g_open
        groups["high"] = g_high
        groups["low"] = g_low
        groups["close"] = g.close
        groups["ticks"] = g_ticks
        groups["volume"] = g_vol * self._quantum

        close_idx = np.concatenate([c_idx, d_idx]).astype(np.int64, copy=False)
        rows = _rows(groups)
        if len(close_idx):
            bars = np.concatenate([self._rows[c_sym], rows[done]])
            by_close = np.argsort(close_idx, kind="stable")
            bars = bars[by_close].view(BAR_DTYPE)
            close_idx = close_idx[by_close]
        else:
            bars = empty_bars()

        # The last group of each symbol is its new partial bar.
        self._has[seg_sym] = True
        self._period[seg_sym] = g.period[gl]
        self._vol[seg_sym] = g_vol[gl]
        self._rows[seg_sym] = rows[gl]
        return bars, close_idx

    def _extend(self, g: _Groups) -> tuple[np.ndarray, np.ndarray]:
        """Every symbol of the batch went on in its open bar (most batches of the longer
        periods): the bars grow in place, as `_merge` would rewrite them, and none closes."""
        s = g.seg_sym
        high, low, close, count, volume = self._folded
        high[s] = np.maximum(g.high, high[s])
        low[s] = np.minimum(g.low, low[s])
        close[s] = g.close
        count[s] = g.ticks + count[s]
        self._vol[s] = g.volume + self._vol[s]
        volume[s] = self._vol[s] * self._quantum
        return empty_bars(), np.zeros(0, dtype=np.int64)

    def seed(self, bars: np.ndarray) -> None:
        """Take partial bars of this period (one per symbol at most, BAR_DTYPE) as the open
        bars, as if their ticks had been folded in: a restart rebuilds a long bar from the
        shorter bars already stored instead of from an hour of ticks."""
        if len(bars) == 0:
            return
        sym = bars["sym"].astype(np.int64)
        local = bars["ts_open"].copy()
        if self._ny is not None:
            ny = self._ny[sym]
            local[ny] += ny_offsets(local[ny])
        if (bars["period_ns"] != self.period_ns).any() or (local % self.period_ns).any():
            raise ValueError(f"seed bars must be bars of period {self.period_ns}")
        self._has[sym] = True
        self._period[sym] = local // self.period_ns
        self._vol[sym] = np.rint(bars["volume"] / self._quantum).astype(np.int64)
        self._rows[sym] = _rows(np.ascontiguousarray(bars))

    def open_bars(self) -> np.ndarray:
        """The current partial bars, one per symbol that has one, ordered by sym."""
        return self._rows[np.flatnonzero(self._has)].view(BAR_DTYPE)

    @staticmethod
    def _monotone_per_symbol(sym: np.ndarray, period: np.ndarray) -> None:
        """Fold late ticks into the symbol's current period (running max per symbol)."""
        bounds = np.flatnonzero(np.diff(sym)) + 1
        for seg in np.split(np.arange(len(sym)), bounds):
            period[seg] = np.maximum.accumulate(period[seg])


class CandleSet:
    """Builders for several periods fed from one sort of each batch (M1 to D1 together)."""

    def __init__(
        self,
        n_symbols: int,
        periods: list[int],
        *,
        volume_quantum: float = 1e-8,
        ny_close: np.ndarray | None = None,
    ):
        ny = None if ny_close is None else np.asarray(ny_close, dtype=bool)  # one, shared
        self.builders = {
            p: CandleBuilder(n_symbols, p, volume_quantum=volume_quantum, ny_close=ny)
            for p in periods
        }

    def update(self, ticks: np.ndarray) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """period -> (closed bars, close_idx), as CandleBuilder.update gives for each."""
        if len(ticks) == 0:
            return {p: b.update(ticks) for p, b in self.builders.items()}
        if len(ticks) <= _FOLD_MAX:
            sym, ts = ticks["sym"].tolist(), ticks["ts_event"].tolist()
            bid, ask = ticks["bid"].tolist(), ticks["ask"].tolist()
            mid = [(b + a) * 0.5 for b, a in zip(bid, ask, strict=True)]
            vol = ticks["volume"].tolist()
            if not any(m != m for m in mid) and not any(v in _INFINITE for v in vol):
                return {p: b.fold(sym, ts, mid, vol) for p, b in self.builders.items()}
        by_symbol = _BySymbol(ticks)
        # the longer periods fold M1's runs when each is whole minutes (asked here, not kept:
        # a set pickled in a replay's checkpoint before this came back without it)
        if M1 not in self.builders or any(p % M1 for p in self.builders):
            return {p: b._update(by_symbol) for p, b in self.builders.items()}
        # M1 from the ticks, the longer periods from M1's runs (see _Units)
        m1 = self.builders[M1]
        groups = m1._groups(by_symbol)
        units = _Units(groups, M1, m1._quantum)
        out = {M1: m1._merge(groups)}
        for p, b in self.builders.items():
            if p != M1:
                out[p] = b._update(units)
        return {p: out[p] for p in self.builders}

    def open_bars(self) -> dict[int, np.ndarray]:
        return {p: b.open_bars() for p, b in self.builders.items()}

    def seed(self, bars: np.ndarray) -> None:
        """Partial bars of any of the periods as the open bars (see CandleBuilder.seed)."""
        for p, builder in self.builders.items():
            builder.seed(bars[bars["period_ns"] == p])
