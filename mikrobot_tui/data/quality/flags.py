"""Flagged but passed on: spikes, gaps, stale quotes and latency among the accepted ticks.

They lower the score and set `last_problem`:
- spike: the log return of the mid against the symbol's previous accepted mid is beyond
  `spike_sigma` standard deviations of a robust EWMA estimate (spikes.py);
- gap: consecutive accepted ticks of a symbol further apart than `max_gap_s` (counted once, on
  the tick that ends it);
- stale: the quote (bid and ask) unchanged for longer than `max_gap_s` while ticks keep coming
  (counted once per episode; a gap restarts the clock);
- latency: ts_recv - ts_event above `max_latency_ms` (counted per tick).

Each check carries its state from batch to batch, so the flags do not depend on batching.
"""

from __future__ import annotations

import numpy as np

from mikrobot_tui.config import QualitySettings
from mikrobot_tui.data.quality.score import GAP, LATENCY, STALE, Found
from mikrobot_tui.data.quality.segments import Segments
from mikrobot_tui.data.quality.spikes import Spikes
from mikrobot_tui.data.quality.validity import LastAccepted
from mikrobot_tui.domain.market import NS_PER_MS, NS_PER_SECOND

_LAT_RING = 64
_RING_BACK = np.arange(1 - _LAT_RING, 1)
_MIN = np.iinfo(np.int64).min


class Flags:
    """The flags of accepted ticks, with what each symbol carries from batch to batch."""

    def __init__(self, n_symbols: int, settings: QualitySettings, min_sigma: float) -> None:
        n = n_symbols
        self.settings = settings
        self._max_gap_ns = round(settings.max_gap_s * NS_PER_SECOND)
        self._spikes = Spikes(n, settings.spike_sigma, min_sigma)
        self._lat_ring = np.zeros((n, _LAT_RING))  # latencies of the last accepted ticks
        self._lat_pos = np.zeros(n, dtype=np.int64)  # next slot to write, circular
        self._n_lat = np.zeros(n, dtype=np.int64)
        self._change_ts = np.full(n, _MIN, dtype=np.int64)
        self._stale = np.zeros(n, dtype=bool)

    def check(
        self,
        seg: Segments,
        ts: np.ndarray,
        recv: np.ndarray,
        bid: np.ndarray,
        ask: np.ndarray,
        last: LastAccepted,
        fresh: np.ndarray | None = None,
    ) -> list[Found]:
        """Spikes, gaps, stale episodes and latency breaches among accepted ticks (symbol order).

        `last` is each symbol's last accepted tick before these; `fresh` marks ticks that start
        a new price level (their return from the old one is not one). Returns (kind, positions
        into these arrays, value for the message) per kind.
        """
        k = len(ts)
        if k == 1 and self._spikes.min_sigma > 0:  # see Spikes.check
            return self._one(seg, ts, recv, float(bid[0]), float(ask[0]), last, fresh)
        f_at, fs = seg.first, seg.sym
        f_has = last.has[fs]
        # each tick's previous accepted tick is the one before it, except for a symbol's first
        # tick in the batch: that one is carried (or, for a symbol's very first tick, itself)
        carried = last.fields[fs]
        f_bid = np.where(f_has, carried[:, 0], bid[f_at])
        f_ask = np.where(f_has, carried[:, 1], ask[f_at])
        f_pts = np.where(f_has, last.ts[fs], ts[f_at])

        dt = np.empty(k, dtype=np.int64)
        np.subtract(ts[1:], ts[:-1], out=dt[1:])
        dt[f_at] = ts[f_at] - f_pts
        gap = dt > self._max_gap_ns
        mid = bid + ask
        mid *= 0.5
        r = np.empty(k)
        np.divide(mid[1:], mid[:-1], out=r[1:])
        r[f_at] = mid[f_at] / ((f_bid + f_ask) * 0.5)
        np.log(r, out=r)
        if fresh is not None:
            r[fresh] = 0.0
        lat = (recv - ts) / NS_PER_MS
        self._remember_latency(seg, lat)

        out = []
        spikes = self._spikes.check(seg, r, f_has)
        if spikes is not None:
            out.append(spikes)
        if gap.any():
            p = np.flatnonzero(gap)
            out.append((GAP, p, dt[p] / NS_PER_SECOND))
        stale = self._stale_episodes(seg, ts, bid, ask, f_bid, f_ask, f_has, gap)
        if stale is not None:
            out.append(stale)
        breach = lat > self.settings.max_latency_ms
        if breach.any():
            p = np.flatnonzero(breach)
            out.append((LATENCY, p, lat[p]))
        return out

    def _one(
        self,
        seg: Segments,
        ts: np.ndarray,
        recv: np.ndarray,
        bid: float,
        ask: float,
        last: LastAccepted,
        fresh: np.ndarray | None,
    ) -> list[Found]:
        """`check` for a batch of one tick, the usual live batch: the same steps and the same
        arithmetic on Python scalars (the log stays numpy's: libm's may differ in the last
        bit), the flags in the same order."""
        s, t = int(seg.sym[0]), int(ts[0])
        has = bool(last.has[s])
        p_bid, p_ask, p_ts = bid, ask, t
        if has:
            p_bid, p_ask, p_ts = float(last.fields[s, 0]), float(last.fields[s, 1]), int(last.ts[s])
        dt = t - p_ts
        gap = dt > self._max_gap_ns
        r = 0.0
        if fresh is None or not fresh[0]:
            r = float(np.log(((bid + ask) * 0.5) / ((p_bid + p_ask) * 0.5)))
        lat = (recv - ts) / NS_PER_MS
        self._remember_latency(seg, lat)
        latency = float(lat[0])

        out = []
        spikes = self._spikes.one(s, r, has)
        if spikes is not None:
            out.append(spikes)
        at = np.zeros(1, dtype=np.int64)
        if gap:
            out.append((GAP, at, np.array([dt / NS_PER_SECOND])))
        # stale: a changed quote (or a gap, or a symbol's first tick) restarts the clock
        changed = bid != p_bid or ask != p_ask or gap or not has
        since = t if changed else int(self._change_ts[s])
        self._change_ts[s] = since
        age = t - since
        if age > self._max_gap_ns:
            if not self._stale[s]:
                out.append((STALE, at, np.array([age / NS_PER_SECOND])))
            self._stale[s] = True
        else:
            self._stale[s] = False
        if latency > self.settings.max_latency_ms:
            out.append((LATENCY, at, np.array([latency])))
        return out

    def _stale_episodes(
        self,
        seg: Segments,
        ts: np.ndarray,
        bid: np.ndarray,
        ask: np.ndarray,
        f_bid: np.ndarray,
        f_ask: np.ndarray,
        f_has: np.ndarray,
        gap: np.ndarray,
    ) -> Found | None:
        """The starts of stale episodes, or None.

        Stale: the quote unchanged for longer than max_gap while ticks keep coming; the clock is
        the time of the last change (a gap counts as one), or of the symbol's first tick.
        """
        k = len(ts)
        f_at, last_at, fs = seg.first, seg.last, seg.sym
        changed = np.empty(k, dtype=bool)
        np.not_equal(bid[1:], bid[:-1], out=changed[1:])
        changed[1:] |= ask[1:] != ask[:-1]
        changed |= gap
        f_changed = (bid[f_at] != f_bid) | (ask[f_at] != f_ask) | gap[f_at] | ~f_has
        cts = ts.copy()
        cts[f_at] = np.where(f_changed, ts[f_at], self._change_ts[fs])
        changed[f_at] = True  # a symbol's first tick carries its clock
        same = np.flatnonzero(~changed)
        if len(same):  # unchanged ticks take the clock of the changed tick before their run
            start = np.empty(len(same), dtype=bool)
            start[0] = True
            np.not_equal(same[1:] - 1, same[:-1], out=start[1:])
            cts[same] = cts[(same[start] - 1)[np.cumsum(start) - 1]]
        self._change_ts[fs] = cts[last_at]
        age = ts - cts
        stale = age > self._max_gap_ns
        if not stale.any():
            self._stale[fs] = False
            return None
        p_stale = np.empty(k, dtype=bool)
        p_stale[1:] = stale[:-1]
        p_stale[f_at] = self._stale[fs]
        self._stale[fs] = stale[last_at]
        p = np.flatnonzero(stale & ~p_stale)
        return (STALE, p, age[p] / NS_PER_SECOND) if len(p) else None

    # ---------------------------------------------------------------- latency
    def _remember_latency(self, seg: Segments, lat: np.ndarray) -> None:
        """The last _LAT_RING latencies per symbol in a circular buffer (only the set of values
        counts: its median)."""
        fs, last_at = seg.sym, seg.last
        seg_len = seg.length
        if (seg_len >= _LAT_RING).all():  # every symbol fills its ring: oldest first at 0
            self._lat_ring[fs] = lat[last_at[:, None] + _RING_BACK]
            self._lat_pos[fs] = 0
        elif len(fs) == 1:  # one symbol, fewer than _LAT_RING ticks: the usual live batch
            s, n, end = int(fs[0]), int(seg_len[0]), int(last_at[0]) + 1
            pos = int(self._lat_pos[s])
            if pos + n <= _LAT_RING:
                self._lat_ring[s, pos : pos + n] = lat[end - n : end]
            else:
                self._lat_ring[s, (pos + np.arange(n)) % _LAT_RING] = lat[end - n : end]
            self._lat_pos[s] = (pos + n) % _LAT_RING
        else:
            take_n = np.minimum(seg_len, _LAT_RING)
            offs = np.arange(int(take_n.sum())) - np.repeat(np.cumsum(take_n) - take_n, take_n)
            pos = self._lat_pos[fs]
            ring_at = (np.repeat(fs, take_n), (np.repeat(pos, take_n) + offs) % _LAT_RING)
            self._lat_ring[ring_at] = lat[np.repeat(last_at + 1 - take_n, take_n) + offs]
            self._lat_pos[fs] = (pos + take_n) % _LAT_RING
        self._n_lat[fs] += seg_len

    def latency_ms(self, s: int) -> float:
        """Median latency of the symbol's last _LAT_RING accepted ticks, 0 before any."""
        n_lat = min(int(self._n_lat[s]), _LAT_RING)
        if not n_lat:
            return 0.0
        # np.median's first call imports numpy.ma (10 ms); the two middle values do the same
        lo, hi = (n_lat - 1) // 2, n_lat // 2
        part = np.partition(self._lat_ring[s, :n_lat], (lo, hi))
        return float((part[lo] + part[hi]) / 2)
