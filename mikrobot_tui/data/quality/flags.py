"""Flagged but passed on: spikes, gaps, stale quotes and latency among the accepted ticks.

They lower the score and set `last_problem`:
- spike: the log return of the mid against the symbol's previous accepted mid is beyond
  `spike_sigma` standard deviations of a robust EWMA estimate (spikes.py);
- gap: consecutive accepted ticks of a symbol further apart than `max_gap_s` of open market
  (counted once, on the tick that ends it). A symbol on "fx" hours (Sunday 17:00 to Friday
  17:00 New York, domain/hours.py) does not count the time its market was closed: a weekend
  without ticks is no gap, a silent open market is; its message gives the open seconds;
- stale: the quote (bid and ask) unchanged for longer than `max_gap_s` while ticks keep coming
  (counted once per episode; ticks further apart than `max_gap_s`, the market open or not,
  restart the clock);
- latency: ts_recv - ts_event above `max_latency_ms` (counted per tick);
- locked quote: bid == ask (counted per tick). Kept, not rejected: its mid is well defined and
  a locked book does happen for an instant on real venues, but a CFD broker's quote always has
  a spread, so a trader wants to see it: a feed that keeps locking is broken, and a fill at a
  zero spread is too good to be true;
- wide spread: the spread above `spread_k` times the symbol's usual spread (spreads.py).

Each check carries its state from batch to batch, so the flags do not depend on batching.
"""

from __future__ import annotations

import math

import numpy as np

from mikrobot_tui.config import QualitySettings
from mikrobot_tui.data.quality.score import GAP, LATENCY, LOCKED, STALE, Found
from mikrobot_tui.data.quality.segments import Segments
from mikrobot_tui.data.quality.spikes import Spikes
from mikrobot_tui.data.quality.spreads import Spreads
from mikrobot_tui.data.quality.validity import LastAccepted
from mikrobot_tui.domain.hours import closed_ns
from mikrobot_tui.domain.market import NS_PER_MS, NS_PER_SECOND

_LAT_RING = 64
_RING_BACK = np.arange(1 - _LAT_RING, 1)
_MIN = np.iinfo(np.int64).min


class Flags:
    """The flags of accepted ticks, with what each symbol carries from batch to batch."""

    def __init__(
        self,
        n_symbols: int,
        settings: QualitySettings,
        min_sigma: float,
        fx_hours: np.ndarray | None = None,
    ) -> None:
        n = n_symbols
        self.settings = settings
        self._max_gap_ns = round(settings.max_gap_s * NS_PER_SECOND)
        self._spikes = Spikes(n, settings.spike_sigma, min_sigma)
        self.spreads = Spreads(n, settings.spread_k)
        # per symbol: on "fx" hours (closed time is no gap); None when no symbol is
        self._fx = fx_hours if fx_hours is not None and fx_hours.any() else None
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
            latency = float(((recv - ts) / NS_PER_MS)[0])
            s, t = int(seg.sym[0]), int(ts[0])
            is_fresh = fresh is not None and bool(fresh[0])
            return self.one(s, t, latency, float(bid[0]), float(ask[0]), last, is_fresh)
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
        open_dt = dt
        gap_flag = gap
        if self._fx is not None and gap.any():
            open_dt, gap_flag = self._open_gaps(np.repeat(fs, seg.length), ts, dt, gap)
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
        if gap_flag.any():
            p = np.flatnonzero(gap_flag)
            out.append((GAP, p, open_dt[p] / NS_PER_SECOND))
        stale = self._stale_episodes(seg, ts, bid, ask, f_bid, f_ask, f_has, gap)
        if stale is not None:
            out.append(stale)
        breach = lat > self.settings.max_latency_ms
        if breach.any():
            p = np.flatnonzero(breach)
            out.append((LATENCY, p, lat[p]))
        spread = ask - bid
        locked = spread == 0
        if locked.any():
            p = np.flatnonzero(locked)
            out.append((LOCKED, p, spread[p]))
        wide = self.spreads.check(seg, spread)
        if wide is not None:
            out.append(wide)
        return out

    def _open_gaps(
        self, sym: np.ndarray, ts: np.ndarray, dt: np.ndarray, gap: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The gaps once the closed market is taken out for symbols on fx hours: the open
        time of each tick's gap and which are still gaps."""
        fx = self._fx
        assert fx is not None
        open_dt, flag = dt.copy(), gap.copy()
        for p in np.flatnonzero(gap).tolist():
            if fx[sym[p]]:
                t, d = int(ts[p]), int(dt[p])
                open_dt[p] = d - closed_ns(t - d, t)
                flag[p] = open_dt[p] > self._max_gap_ns
        return open_dt, flag

    def one(
        self,
        s: int,
        t: int,
        latency: float,
        bid: float,
        ask: float,
        last: LastAccepted,
        fresh: bool,
    ) -> list[Found]:
        """`check` for a batch of one tick (symbol s, event time t, latency in ms), the usual
        live batch: the same steps and the same arithmetic on Python scalars (the log stays
        numpy's: libm's may differ in the last bit), the flags in the same order. Only when
        min_sigma > 0 (see Spikes.check)."""
        has = bool(last.has[s])
        p_bid, p_ask, p_ts = bid, ask, t
        if has:
            p_bid, p_ask, p_ts = float(last.fields[s, 0]), float(last.fields[s, 1]), int(last.ts[s])
        dt = t - p_ts
        gap = dt > self._max_gap_ns
        open_dt, gap_flag = dt, gap
        if gap and self._fx is not None and self._fx[s]:
            open_dt = dt - closed_ns(p_ts, t)
            gap_flag = open_dt > self._max_gap_ns
        r = 0.0
        if not fresh:
            r = float(np.log(((bid + ask) * 0.5) / ((p_bid + p_ask) * 0.5)))
        # the ring of _remember_latency, one value
        pos = int(self._lat_pos[s])
        self._lat_ring[s, pos] = latency
        self._lat_pos[s] = (pos + 1) % _LAT_RING
        self._n_lat[s] += 1

        out = []
        spikes = self._spikes.one(s, r, has)
        if spikes is not None:
            out.append(spikes)
        at = np.zeros(1, dtype=np.int64)
        if gap_flag:
            out.append((GAP, at, np.array([open_dt / NS_PER_SECOND])))
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
        spread = ask - bid
        if spread == 0:
            out.append((LOCKED, at, np.array([spread])))
        wide = self.spreads.one(s, spread)
        if wide is not None:
            out.append(wide)
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

    def latency_capability(self, s: int) -> tuple[float | None, float | None]:
        """(Cp, Cpk) of the symbol's last _LAT_RING latencies against `latency_limit_ms`, the
        upper specification limit; latency cannot fall below 0, the natural lower bound:

            Cp = USL / (6 sigma),   Cpk = (USL - mean) / (3 sigma)

        with the sample standard deviation (ddof 1). None with fewer than 2 latencies or none
        spread (sigma 0). The values are sorted first, so the sums do not depend on where the
        ring holds them (nor on batching)."""
        n_lat = min(int(self._n_lat[s]), _LAT_RING)
        if n_lat < 2:
            return None, None
        x = np.sort(self._lat_ring[s, :n_lat])
        mean = float(x.sum()) / n_lat
        sigma = math.sqrt(float(np.square(x - mean).sum()) / (n_lat - 1))
        if sigma == 0:
            return None, None
        usl = self.settings.latency_limit_ms
        return usl / (6 * sigma), (usl - mean) / (3 * sigma)

    def latency_ms(self, s: int) -> float:
        """Median latency of the symbol's last _LAT_RING accepted ticks, 0 before any."""
        n_lat = min(int(self._n_lat[s]), _LAT_RING)
        if not n_lat:
            return 0.0
        # np.median's first call imports numpy.ma (10 ms); the two middle values do the same
        lo, hi = (n_lat - 1) // 2, n_lat // 2
        part = np.partition(self._lat_ring[s, :n_lat], (lo, hi))
        return float((part[lo] + part[hi]) / 2)
