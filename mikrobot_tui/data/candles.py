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

Input is expected clean (the quality monitor's output): finite prices and, per symbol,
non-decreasing `ts_event`. A tick that is older than its symbol's current bar is folded into the
current bar rather than reopening a closed one.
"""

from __future__ import annotations

import numpy as np

from mikrobot_tui.domain.market import empty_bars

_NO_PERIOD = np.iinfo(np.int64).min


class _BySymbol:
    """A batch sorted by symbol (stable), the columns bars need, shared by several builders."""

    def __init__(self, ticks: np.ndarray) -> None:
        self.n = len(ticks)
        self.order = order = np.argsort(ticks["sym"], kind="stable")
        self.sym = np.take(ticks["sym"], order)
        self.ts = np.take(ticks["ts_event"], order)
        self.mid = (np.take(ticks["bid"], order) + np.take(ticks["ask"], order)) * 0.5
        self._volume = np.take(ticks["volume"], order)
        self._fixed: dict[float, np.ndarray] = {}

    def volume_fixed(self, quantum: float) -> np.ndarray:
        if quantum not in self._fixed:
            v = self._volume
            self._fixed[quantum] = np.rint(np.where(np.isnan(v), 0.0, v) / quantum).astype(np.int64)
        return self._fixed[quantum]


class CandleBuilder:
    """Builds bars of one period for `n_symbols` symbols (sym indexes the engine's list)."""

    def __init__(self, n_symbols: int, period_ns: int, *, volume_quantum: float = 1e-8) -> None:
        if period_ns <= 0:
            raise ValueError(f"period_ns must be positive, got {period_ns}")
        self.n_symbols = n_symbols
        self.period_ns = int(period_ns)
        self._quantum = float(volume_quantum)
        self._has = np.zeros(n_symbols, dtype=bool)
        self._period = np.full(n_symbols, _NO_PERIOD, dtype=np.int64)
        self._open = np.zeros(n_symbols)
        self._high = np.zeros(n_symbols)
        self._low = np.zeros(n_symbols)
        self._close = np.zeros(n_symbols)
        self._ticks = np.zeros(n_symbols, dtype=np.int64)
        self._vol = np.zeros(n_symbols, dtype=np.int64)  # fixed point, units of _quantum

    def update(self, ticks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fold a batch in; return (closed bars, close_idx), ordered by close_idx.

        close_idx[k] is the index within `ticks` of the tick that closed bar k: the first tick of
        that symbol in a later period. Bars still open stay in the builder (see open_bars()).
        """
        if len(ticks) == 0:
            return empty_bars(), np.zeros(0, dtype=np.int64)
        return self._update(_BySymbol(ticks))

    def _update(self, b: _BySymbol) -> tuple[np.ndarray, np.ndarray]:
        n, order, sym, ts, mid = b.n, b.order, b.sym, b.ts, b.mid
        vol_fp = b.volume_fixed(self._quantum)

        period = ts // self.period_ns
        np.maximum(period, self._period[sym], out=period)
        same_sym = sym[1:] == sym[:-1]
        if (same_sym & (period[1:] < period[:-1])).any():
            self._monotone_per_symbol(sym, period)

        new_group = np.empty(n, dtype=bool)
        new_group[0] = True
        np.not_equal(period[1:], period[:-1], out=new_group[1:])
        new_group[1:] |= ~same_sym
        starts = np.flatnonzero(new_group)
        ends = np.empty_like(starts)
        ends[:-1] = starts[1:]
        ends[-1] = n

        g_sym = sym[starts]
        g_period = period[starts]
        g_open = mid[starts]
        g_close = mid[ends - 1]
        g_high = np.maximum.reduceat(mid, starts)
        g_low = np.minimum.reduceat(mid, starts)
        g_ticks = ends - starts
        g_vol = np.add.reduceat(vol_fp, starts)

        n_groups = len(starts)
        g_first = np.empty(n_groups, dtype=bool)
        g_first[0] = True
        np.not_equal(g_sym[1:], g_sym[:-1], out=g_first[1:])
        g_last = np.empty(n_groups, dtype=bool)
        g_last[-1] = True
        g_last[:-1] = g_first[1:]

        # Merge each symbol's carried partial bar into its first group, or close it there.
        first = np.flatnonzero(g_first)
        f_sym = g_sym[first]
        carried = self._has[f_sym]
        cont = carried & (self._period[f_sym] == g_period[first])
        if cont.any():
            gi, si = first[cont], f_sym[cont]
            g_open[gi] = self._open[si]
            g_high[gi] = np.maximum(g_high[gi], self._high[si])
            g_low[gi] = np.minimum(g_low[gi], self._low[si])
            g_ticks[gi] += self._ticks[si]
            g_vol[gi] += self._vol[si]
        closing = carried & ~cont
        c_sym = f_sym[closing]
        c_idx = order[starts[first[closing]]]

        # Groups followed by another group of the same symbol close at that group's first tick.
        done = np.flatnonzero(~g_last)
        d_idx = order[starts[done + 1]]

        n_out = len(c_sym) + len(done)
        bars = empty_bars(n_out)
        close_idx = np.concatenate([c_idx, d_idx]).astype(np.int64, copy=False)
        if n_out:
            k = len(c_sym)
            bars["sym"][:k] = c_sym
            bars["ts_open"][:k] = self._period[c_sym] * self.period_ns
            bars["open"][:k] = self._open[c_sym]
            bars["high"][:k] = self._high[c_sym]
            bars["low"][:k] = self._low[c_sym]
            bars["close"][:k] = self._close[c_sym]
            bars["ticks"][:k] = self._ticks[c_sym]
            bars["volume"][:k] = self._vol[c_sym] * self._quantum
            bars["sym"][k:] = g_sym[done]
            bars["ts_open"][k:] = g_period[done] * self.period_ns
            bars["open"][k:] = g_open[done]
            bars["high"][k:] = g_high[done]
            bars["low"][k:] = g_low[done]
            bars["close"][k:] = g_close[done]
            bars["ticks"][k:] = g_ticks[done]
            bars["volume"][k:] = g_vol[done] * self._quantum
            bars["period_ns"] = self.period_ns
            by_close = np.argsort(close_idx, kind="stable")
            bars = bars[by_close]
            close_idx = close_idx[by_close]

        # The last group of each symbol is its new partial bar.
        last = np.flatnonzero(g_last)
        ls = g_sym[last]
        self._has[ls] = True
        self._period[ls] = g_period[last]
        self._open[ls] = g_open[last]
        self._high[ls] = g_high[last]
        self._low[ls] = g_low[last]
        self._close[ls] = g_close[last]
        self._ticks[ls] = g_ticks[last]
        self._vol[ls] = g_vol[last]
        return bars, close_idx

    def open_bars(self) -> np.ndarray:
        """The current partial bars, one per symbol that has one, ordered by sym."""
        s = np.flatnonzero(self._has)
        bars = empty_bars(len(s))
        bars["sym"] = s
        bars["period_ns"] = self.period_ns
        bars["ts_open"] = self._period[s] * self.period_ns
        bars["open"] = self._open[s]
        bars["high"] = self._high[s]
        bars["low"] = self._low[s]
        bars["close"] = self._close[s]
        bars["ticks"] = self._ticks[s]
        bars["volume"] = self._vol[s] * self._quantum
        return bars

    @staticmethod
    def _monotone_per_symbol(sym: np.ndarray, period: np.ndarray) -> None:
        """Fold late ticks into the symbol's current period (running max per symbol)."""
        bounds = np.flatnonzero(np.diff(sym)) + 1
        for seg in np.split(np.arange(len(sym)), bounds):
            period[seg] = np.maximum.accumulate(period[seg])


class CandleSet:
    """Builders for several periods fed from one sort of each batch (M1 and M5 together)."""

    def __init__(self, n_symbols: int, periods: list[int], *, volume_quantum: float = 1e-8):
        self.builders = {
            p: CandleBuilder(n_symbols, p, volume_quantum=volume_quantum) for p in periods
        }

    def update(self, ticks: np.ndarray) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """period -> (closed bars, close_idx), as CandleBuilder.update gives for each."""
        if len(ticks) == 0:
            return {p: b.update(ticks) for p, b in self.builders.items()}
        by_symbol = _BySymbol(ticks)
        return {p: b._update(by_symbol) for p, b in self.builders.items()}

    def open_bars(self) -> dict[int, np.ndarray]:
        return {p: b.open_bars() for p, b in self.builders.items()}
