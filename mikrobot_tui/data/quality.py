"""The data-quality monitor: which ticks go on, which are rejected, and a score per symbol.

Rejected (returned as `Reject` values, counted, they go no further):
- "NaN price" / "infinite price": bid or ask not finite;
- "non-positive price": bid or ask zero or below;
- "crossed quote": bid above ask. A locked quote (bid == ask) is accepted: it happens on real
  venues and its mid is well defined;
- "bad trade price" (last present but not a positive finite number), "bad volume" (volume present
  but negative or not finite);
- "timestamp from the past": ts_event earlier than the symbol's last accepted tick;
- "duplicate tick": the same ts_event, bid, ask, last and volume as the symbol's previous accepted
  tick (ts_recv is ignored: a message delivered twice is still one tick).

Flagged but passed on (they lower the score and set `last_problem`):
- spike: the log return of the mid against the symbol's previous accepted mid is beyond
  `spike_sigma` standard deviations. The variance is an EWMA of squared returns over accepted
  ticks (alpha 2 / 101, bias-corrected, the sigma before the tick's own return, floored at
  `min_sigma`), flagged only after `SPIKE_WARMUP` returns. A flagged return that follows a
  flagged return of the opposite sign is the way back from the same spike and is not counted
  again;
- gap: consecutive accepted ticks of a symbol further apart than `max_gap_s` (counted once, on
  the tick that ends it);
- stale: the quote (bid and ask) unchanged for longer than `max_gap_s` while ticks keep coming
  (counted once per episode; a gap restarts the clock);
- latency: ts_recv - ts_event above `max_latency_ms` (counted per tick).

Score per symbol, in 0..1:

    score = exp(-(0.10 R + 0.10 S + 0.25 G + 0.25 F + 0.02 L + 0.25 Q))

where R, S, G, F, L count the rejects, spikes, gaps, stale episodes and latency breaches of the
last `window_s`, each weighted by (1 - age / window_s) so a problem fades out linearly (ages are
taken from the 1-second bucket of the stream time at which the problem was seen), and Q is 1 while
the symbol is silent (no tick for more than `max_gap_s` before `now_ns`). A clean feed scores
exactly 1.0; a burst of three rejects just now gives about 0.74; a clean window after the last
problem brings it back to 1.0.

`latency_ms` is the median latency of the symbol's last 64 accepted ticks.

Batch independence: every result (clean ticks, rejects, flags, counters, scores) is the same
however the stream is cut into batches. The variance EWMA runs through scipy.signal.lfilter with
the filter state carried between batches, which repeats the sequential arithmetic exactly; event
times are the stream time (the running maximum of ts_event), never the batch's. The hot path is
vectorised over the batch (one stable sort by symbol); Python runs per symbol and per problem.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.signal import lfilter

try:  # what lfilter calls for a first-order filter with zi, without its per-call checks
    from scipy.signal._sigtools import _linear_filter
except ImportError:  # pragma: no cover - another scipy layout: the public route, same numbers
    _linear_filter = None

from mikrobot_tui.config import QualitySettings
from mikrobot_tui.domain.market import NS_PER_MS, NS_PER_SECOND, TICK_DTYPE

EWMA_ALPHA = 2.0 / 101.0  # for the variance of returns, per accepted tick
SPIKE_WARMUP = 20
_BUCKET_NS = NS_PER_SECOND
_LAT_RING = 64
_RING_BACK = np.arange(1 - _LAT_RING, 1)
_FEW_EVENTS = 64  # problems in a batch counted in plain Python
# 1 / (1 - (1 - alpha)^n): the EWMA's bias correction after n returns (0 for n = 0; 1 beyond)
_DEBIAS = np.concatenate(([0.0], 1.0 / (1.0 - (1.0 - EWMA_ALPHA) ** np.arange(1, 2048)), [1.0]))
_MIN = np.iinfo(np.int64).min
# the EWMA as a filter: y[n] = alpha x[n] + (1 - alpha) y[n - 1]
_FILTER_B = np.array([EWMA_ALPHA])
_FILTER_A = np.array([1.0, -(1.0 - EWMA_ALPHA)])
# r^2 > _LOOSE spike_sigma^2 max(var, min_sigma^2) holds for every spike, rounding included
_LOOSE = 0.9

# problem kinds: index into the weights and the per-bucket counts
REJECT, SPIKE, GAP, STALE, LATENCY = range(5)
WEIGHTS = (0.10, 0.10, 0.25, 0.25, 0.02)
SILENT_WEIGHT = 0.25
# which message wins when one tick has several problems (higher wins)
_RANK = {LATENCY: 0, STALE: 1, GAP: 2, SPIKE: 3, REJECT: 4}

_REASONS = (
    "",
    "NaN price",
    "infinite price",
    "non-positive price",
    "crossed quote",
    "bad trade price",
    "bad volume",
    "timestamp from the past",
    "duplicate tick",
)
_PAST, _DUP = 7, 8


@dataclass(frozen=True)
class Reject:
    ts_event: int
    ts_recv: int
    sym: int
    reason: str
    raw: str  # the tick's fields as compact text


@dataclass(frozen=True)
class QualityResult:
    clean: np.ndarray  # accepted ticks, TICK_DTYPE, in their original order
    rejects: list[Reject]
    # every symbol present in the batch -> rejects + spikes + gaps + stale + latency breaches
    problems_by_sym: dict[int, int]
    # stream time (running max of ts_event) of each problem in the batch, in no set order: the
    # engine's feed breaker judges fixed seconds of stream time, whatever the batching
    problem_ts: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    # aligned with `clean`: ticks flagged as return spikes. They are stored and counted, but
    # the engine keeps them out of candles and order matching (a bad print must not fill a
    # stop or widen a bar); None when there is none
    spikes: np.ndarray | None = None


@dataclass(frozen=True)
class SymbolQuality:
    sym: int
    score: float
    ticks: int  # ticks received, rejected ones included
    rejects: int
    spikes: int
    gaps: int
    latency_ms: float  # median of ts_recv - ts_event over the last 64 accepted ticks
    last_problem: str
    last_problem_ts: int | None  # stream time when it was seen


def _raw(t: np.void) -> str:
    return (
        f"ts={int(t['ts_event'])} recv={int(t['ts_recv'])} sym={int(t['sym'])} "
        f"bid={float(t['bid'])!r} ask={float(t['ask'])!r} "
        f"last={float(t['last'])!r} vol={float(t['volume'])!r}"
    )


def _select(ticks: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """ticks[mask], ten times faster: structured rows copied as opaque bytes."""
    if not ticks.flags.c_contiguous:
        return ticks[mask]
    raw = ticks.view(np.dtype((np.void, ticks.dtype.itemsize)))
    return raw[mask].view(ticks.dtype)


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a == b) | (np.isnan(a) & np.isnan(b))


def _static_reason(t: np.void) -> int:
    bid, ask, last = (float(t[k]) for k in ("bid", "ask", "last"))
    if math.isnan(bid) or math.isnan(ask):
        return 1
    if math.isinf(bid) or math.isinf(ask):
        return 2
    if bid <= 0 or ask <= 0:
        return 3
    if bid > ask:
        return 4
    if not math.isnan(last) and (math.isinf(last) or last <= 0):
        return 5
    return 6


class _Segments:
    """The runs of one symbol in an array sorted by symbol: first and last position of each."""

    __slots__ = ("first", "last", "sym")

    def __init__(self, sym: np.ndarray, first: np.ndarray, last: np.ndarray) -> None:
        self.sym, self.first, self.last = sym, first, last

    @classmethod
    def of(cls, sym: np.ndarray) -> _Segments:
        bounds = np.flatnonzero(sym[1:] != sym[:-1])
        first = np.empty(len(bounds) + 1, dtype=np.int64)
        first[0] = 0
        np.add(bounds, 1, out=first[1:])
        last = np.empty_like(first)
        last[:-1] = bounds
        last[-1] = len(sym) - 1
        return cls(sym[first], first, last)

    @property
    def length(self) -> np.ndarray:
        return self.last - self.first + 1

    def without(self, gone: np.ndarray) -> _Segments:
        """The segments once the positions `gone` (ascending) are taken out, empty ones dropped."""
        lo = self.first - np.searchsorted(gone, self.first)
        hi = self.last - np.searchsorted(gone, self.last, side="right")
        keep = hi >= lo
        if keep.all():
            return _Segments(self.sym, lo, hi)
        return _Segments(self.sym[keep], lo[keep], hi[keep])


class QualityMonitor:
    def __init__(
        self, n_symbols: int, settings: QualitySettings, *, min_sigma: float = 1e-6
    ) -> None:
        self.n_symbols = n_symbols
        self.settings = settings
        self.min_sigma = min_sigma
        self._max_gap_ns = round(settings.max_gap_s * NS_PER_SECOND)
        self._window_ns = round(settings.window_s * NS_PER_SECOND)
        self._stream_ts = _MIN
        n = n_symbols
        self._seen = np.zeros(n, dtype=bool)
        self._has_last = np.zeros(n, dtype=bool)
        self._last_ts = np.full(n, _MIN, dtype=np.int64)  # last accepted ts_event
        self._last_fields = np.full((n, 4), np.nan)  # bid, ask, last, volume
        self._var_y = np.zeros(n)  # the EWMA after the symbol's last return
        self._n_ret = np.zeros(n, dtype=np.int64)
        self._prev_spike = np.zeros(n, dtype=np.int8)  # sign of a flagged last return, or 0
        self._lat_ring = np.zeros((n, _LAT_RING))  # latencies of the last accepted ticks
        self._lat_pos = np.zeros(n, dtype=np.int64)  # next slot to write, circular
        self._n_lat = np.zeros(n, dtype=np.int64)
        self._acc_ts = np.full(n, _MIN, dtype=np.int64)  # ts_event of the last accepted tick
        self._change_ts = np.full(n, _MIN, dtype=np.int64)
        self._stale = np.zeros(n, dtype=bool)
        self._ticks = np.zeros(n, dtype=np.int64)
        self._totals = np.zeros((n, 5), dtype=np.int64)
        self._last_problem = [""] * n
        self._last_problem_ts: list[int | None] = [None] * n
        self._buckets: list[dict[int, list[int]]] = [{} for _ in range(n)]

    # ------------------------------------------------------------------ check
    def check(self, ticks: np.ndarray) -> QualityResult:
        n = len(ticks)
        if n == 0:
            return QualityResult(ticks[:0].copy(), [], {})
        if ticks.dtype != TICK_DTYPE:
            raise TypeError(f"ticks must be TICK_DTYPE, got {ticks.dtype}")
        # every column is read once into a contiguous array (the rows are 50 bytes, unaligned)
        ts_raw = ticks["ts_event"].copy()
        stream = np.maximum.accumulate(ts_raw)
        np.maximum(stream, self._stream_ts, out=stream)
        self._stream_ts = int(stream[-1])
        sym_raw = ticks["sym"]

        # everything below runs in symbol order (stable: arrival order within a symbol);
        # `order` maps back to the batch
        order = np.argsort(sym_raw, kind="stable")
        sym = np.take(sym_raw, order)
        ts = np.take(ts_raw, order)
        bid = np.take(ticks["bid"], order)
        ask = np.take(ticks["ask"], order)
        seg = _Segments.of(sym)
        seg_sym = seg.sym
        self._seen[seg_sym] = True
        self._ticks[seg_sym] += seg.length

        ok = self._static_ok(ticks, order, bid, ask)
        all_ok = ok is None
        reason = np.zeros(n, dtype=np.int8)
        if not all_ok:
            for i in order[~ok].tolist():
                reason[i] = _static_reason(ticks[i])
        past = self._past(seg, ts, ok)
        if past is not None:
            reason[order[past]] = _PAST
            cand = ok & ~past if not all_ok else ~past
        else:
            cand = ok  # None: every tick is a candidate
        # the candidates (neither bad nor from the past), then the accepted ticks: compressed
        # only when something was rejected
        a_order, a_seg, a_ts, a_bid, a_ask = order, seg, ts, bid, ask
        if cand is not None:
            a_order, a_ts, a_bid, a_ask = order[cand], ts[cand], bid[cand], ask[cand]
            a_seg = seg.without(np.flatnonzero(~cand))
        dup = self._duplicates(a_seg, a_ts, a_order, ticks) if len(a_order) else None
        if dup is not None:
            reason[a_order[dup]] = _DUP
            a_seg = a_seg.without(np.flatnonzero(dup))
            keep = ~dup
            a_order, a_ts, a_bid, a_ask = a_order[keep], a_ts[keep], a_bid[keep], a_ask[keep]
        all_acc = cand is None and dup is None

        pos_kind: list[tuple[int, np.ndarray, np.ndarray]] = []  # (kind, original idx, value)
        if len(a_order):
            a_recv = np.take(ticks["ts_recv"], a_order)
            for kind, p, v in self._flags(a_seg, a_ts, a_recv, a_bid, a_ask):
                pos_kind.append((kind, a_order[p], v))
            ls = a_seg.sym
            last_j = a_order[a_seg.last]
            self._has_last[ls] = True
            fields = self._last_fields
            fields[ls, 0] = a_bid[a_seg.last]
            fields[ls, 1] = a_ask[a_seg.last]
            fields[ls, 2] = ticks["last"][last_j]
            fields[ls, 3] = ticks["volume"][last_j]

        if not all_acc:
            rej = np.flatnonzero(reason)
            pos_kind.append((REJECT, rej, reason[rej].astype(np.float64)))
        problems = self._record(pos_kind, sym_raw, stream, seg_sym)
        where = [p for _, p, _ in pos_kind if len(p)]
        if len(where) == 1:
            problem_ts = stream[where[0]]
        elif where:
            problem_ts = stream[np.concatenate(where)]
        else:
            problem_ts = np.empty(0, dtype=np.int64)

        spiked = [p for kd, p, _ in pos_kind if kd == SPIKE]
        if all_acc:
            clean, keep, rejects = ticks, None, []
        else:
            keep = reason == 0
            clean = _select(ticks, keep)
            recv_raw = ticks["ts_recv"]
            rejects = [
                Reject(
                    int(ts_raw[i]),
                    int(recv_raw[i]),
                    int(sym_raw[i]),
                    _REASONS[reason[i]],
                    _raw(ticks[i]),
                )
                for i in rej.tolist()
            ]
        spikes = None
        if spiked:
            mask = np.zeros(n, dtype=bool)
            mask[spiked[0]] = True
            spikes = mask if keep is None else mask[keep]
        return QualityResult(clean, rejects, problems, problem_ts, spikes)

    def _static_ok(
        self, ticks: np.ndarray, order: np.ndarray, bid: np.ndarray, ask: np.ndarray
    ) -> np.ndarray | None:
        """Mask (symbol order) of ticks with good prices and volume, or None when all are."""
        ok = bid > 0
        ok &= ask >= bid
        ok &= ask < np.inf
        # trade price and volume: NaN is fine; fmin/fmax skip NaN, so they say if any is bad
        last, vol = ticks["last"].copy(), ticks["volume"].copy()
        l_min, l_max = np.fmin.reduce(last), np.fmax.reduce(last)
        v_min, v_max = np.fmin.reduce(vol), np.fmax.reduce(vol)
        if l_min <= 0 or l_max == np.inf or v_min < 0 or v_max == np.inf:
            last, vol = np.take(last, order), np.take(vol, order)
            ok &= ~((last <= 0) | (last == np.inf) | (vol < 0) | (vol == np.inf))
        return None if ok.all() else ok

    def _past(self, seg: _Segments, ts: np.ndarray, ok: np.ndarray | None) -> np.ndarray | None:
        """Mask of ticks (symbol order) earlier than the running max of the statically good
        earlier ticks of their symbol, or None when there is none; moves `_last_ts` on."""
        carry = self._last_ts[seg.sym]
        # a symbol's ticks that never go back in time (rejected ones included) have no past
        back = ts[1:] < ts[:-1]
        back[seg.first[1:] - 1] = False
        late = ts[seg.first] < carry
        if ok is None:
            new_last = ts[seg.last]
        else:
            cand_ts = np.where(ok, ts, _MIN)
            new_last = np.maximum(np.maximum.reduceat(cand_ts, seg.first), carry)
        if not (late.any() or back.any()):
            self._last_ts[seg.sym] = new_last
            return None
        if ok is None:
            cand_ts = ts
        hit = np.zeros(len(seg.sym), dtype=bool)
        hit[late] = True
        hit[np.searchsorted(seg.first, np.flatnonzero(back) + 1, side="right") - 1] = True
        past = np.zeros(len(ts), dtype=bool)
        for j in np.flatnonzero(hit).tolist():
            a, b = int(seg.first[j]), int(seg.last[j]) + 1
            c = carry[j]
            run = np.maximum.accumulate(cand_ts[a:b])
            np.maximum(run, c, out=run)
            prevmax = np.empty(b - a, dtype=np.int64)
            prevmax[0] = c
            prevmax[1:] = run[:-1]
            p = ts[a:b] < prevmax
            if ok is not None:
                p &= ok[a:b]
            past[a:b] = p
            new_last[j] = run[-1]
        self._last_ts[seg.sym] = new_last
        return past if past.any() else None

    def _duplicates(
        self, c_seg: _Segments, c_ts: np.ndarray, c_order: np.ndarray, ticks: np.ndarray
    ) -> np.ndarray | None:
        """Mask of candidates (symbol order) that repeat the previous candidate of their symbol
        exactly, or None when there is none."""
        fs = c_seg.sym
        same_ts = c_ts[1:] == c_ts[:-1]
        same_ts[c_seg.first[1:] - 1] = False
        f_same = self._has_last[fs] & (c_ts[c_seg.first] == self._acc_ts[fs])
        if not (f_same.any() or same_ts.any()):
            return None
        firsts = dict(zip(c_seg.first[f_same].tolist(), fs[f_same].tolist(), strict=True))
        js = sorted([*firsts, *(np.flatnonzero(same_ts) + 1).tolist()])
        dup = np.zeros(len(c_ts), dtype=bool)
        for j in js:
            row = ticks[c_order[j]]
            if j in firsts:
                prev = self._last_fields[firsts[j]]
            else:
                p = ticks[c_order[j - 1]]
                prev = np.array([p["bid"], p["ask"], p["last"], p["volume"]])
            here = np.array([row["bid"], row["ask"], row["last"], row["volume"]])
            dup[j] = bool(_same(here, prev).all())
        return dup if dup.any() else None

    def _flags(
        self, seg: _Segments, ts: np.ndarray, recv: np.ndarray, bid: np.ndarray, ask: np.ndarray
    ) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """Spikes, gaps, stale episodes and latency breaches among accepted ticks (symbol order).

        Returns (kind, positions into these arrays, value for the message) per kind.
        """
        st = self.settings
        k = len(ts)
        f_at, last_at, fs = seg.first, seg.last, seg.sym
        f_has = self._has_last[fs]
        # each tick's previous accepted tick is the one before it, except for a symbol's first
        # tick in the batch: that one is carried (or, for a symbol's very first tick, itself)
        carried = self._last_fields[fs]
        f_bid = np.where(f_has, carried[:, 0], bid[f_at])
        f_ask = np.where(f_has, carried[:, 1], ask[f_at])
        f_pts = np.where(f_has, self._acc_ts[fs], ts[f_at])
        self._acc_ts[fs] = ts[last_at]

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
        lat = (recv - ts) / NS_PER_MS

        # the EWMA of squared returns, per symbol through lfilter, started from the carried
        # state (1 - alpha) * last EWMA, which is exactly what lfilter carries itself
        seg_len = last_at - f_at + 1
        r0 = f_at + (~f_has).astype(np.int64)  # position of the first return of each segment
        n_r = last_at + 1 - r0
        old_var = self._var_y[fs]
        zi = (1.0 - EWMA_ALPHA) * old_var
        r2 = np.square(r)
        v = np.zeros(k)
        ends = (last_at + 1).tolist()
        run = _linear_filter or (lambda b, a, x, axis, zi: lfilter(b, a, x, axis, zi))
        for i, (a, b, s) in enumerate(zip(r0.tolist(), ends, fs.tolist(), strict=True)):
            if b > a:
                y = run(_FILTER_B, _FILTER_A, r2[a:b], -1, zi[i : i + 1])[0]
                v[a:b] = y
                self._var_y[s] = y[-1]
        prior_v = np.empty(k)
        prior_v[1:] = v[:-1]
        prior_v[f_at] = old_var
        warm = bool((self._n_ret[fs] >= len(_DEBIAS)).all())
        if not warm:
            n_prior = np.arange(k) + np.repeat(self._n_ret[fs] - r0, seg_len)
            np.clip(n_prior, 0, len(_DEBIAS) - 1, out=n_prior)
            prior_v *= np.take(_DEBIAS, n_prior)
        self._n_ret[fs] += n_r

        # latency: the last _LAT_RING values per symbol in a circular buffer (only the set of
        # values counts: its median)
        if (seg_len >= _LAT_RING).all():  # every symbol fills its ring: oldest first at 0
            self._lat_ring[fs] = lat[last_at[:, None] + _RING_BACK]
            self._lat_pos[fs] = 0
        else:
            self._lat_write(fs, seg_len, last_at, lat)
        self._n_lat[fs] += seg_len

        out = []
        # spikes: |r| against the sigma before the tick's own return, z = |r| / sigma. Only the
        # ticks that pass a looser test on r^2 (a sure superset) get the exact one
        ms = self.min_sigma
        if ms >= 1e-150:
            bound = np.maximum(prior_v, ms * ms)
            bound *= _LOOSE * st.spike_sigma * st.spike_sigma
            cand = np.flatnonzero(r2 > bound)
        else:
            cand = np.arange(k)
        z = np.abs(r[cand]) / np.maximum(np.sqrt(prior_v[cand]), ms)
        raw = z > st.spike_sigma
        if not warm:
            raw &= n_prior[cand] >= SPIKE_WARMUP
        at = cand[raw]
        seg_at = np.searchsorted(f_at, at, side="right") - 1
        is_first = f_at[seg_at] == at
        if is_first.any():  # a symbol's very first tick has no return
            keep = ~is_first | f_has[seg_at]
            at, seg_at, is_first, z_at = at[keep], seg_at[keep], is_first[keep], z[raw][keep]
        else:
            z_at = z[raw]
        if len(at):
            sign = np.zeros(k, dtype=np.int8)
            sg = np.sign(r[at]).astype(np.int8)
            sign[at] = sg
            p_sign = sign[at - 1]
            p_sign[is_first] = self._prev_spike[fs[seg_at[is_first]]]
            back = p_sign == -sg  # the way back from the spike before
            self._prev_spike[fs] = sign[last_at]
            if back.any():
                at, z_at = at[~back], z_at[~back]
            if len(at):
                out.append((SPIKE, at, z_at))
        else:
            self._prev_spike[fs] = 0

        if gap.any():
            p = np.flatnonzero(gap)
            out.append((GAP, p, dt[p] / NS_PER_SECOND))

        # stale: quote unchanged for longer than max_gap while ticks keep coming; the clock is
        # the time of the last change (a gap counts as one), or of the symbol's first tick
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
        if stale.any():
            p_stale = np.empty(k, dtype=bool)
            p_stale[1:] = stale[:-1]
            p_stale[f_at] = self._stale[fs]
            self._stale[fs] = stale[last_at]
            p = np.flatnonzero(stale & ~p_stale)
            if len(p):
                out.append((STALE, p, age[p] / NS_PER_SECOND))
        else:
            self._stale[fs] = False

        breach = lat > st.max_latency_ms
        if breach.any():
            p = np.flatnonzero(breach)
            out.append((LATENCY, p, lat[p]))
        return out

    def _lat_write(
        self, fs: np.ndarray, seg_len: np.ndarray, last_at: np.ndarray, lat: np.ndarray
    ) -> None:
        take_n = np.minimum(seg_len, _LAT_RING)
        offs = np.arange(int(take_n.sum())) - np.repeat(np.cumsum(take_n) - take_n, take_n)
        pos = self._lat_pos[fs]
        self._lat_ring[np.repeat(fs, take_n), (np.repeat(pos, take_n) + offs) % _LAT_RING] = lat[
            np.repeat(last_at + 1 - take_n, take_n) + offs
        ]
        self._lat_pos[fs] = (pos + take_n) % _LAT_RING

    def _record(
        self,
        pos_kind: list[tuple[int, np.ndarray, np.ndarray]],
        sym_raw: np.ndarray,
        stream: np.ndarray,
        seg_sym: np.ndarray,
    ) -> dict[int, int]:
        """Count problems (totals, score buckets, last problem); return problems per symbol."""
        problems = dict.fromkeys(seg_sym.tolist(), 0)
        pos_kind = [pk for pk in pos_kind if len(pk[1])]
        if not pos_kind:
            return problems
        if sum(len(p) for _, p, _ in pos_kind) <= _FEW_EVENTS:
            return self._record_few(pos_kind, sym_raw, stream, problems)
        idx = np.concatenate([p for _, p, _ in pos_kind])
        kind = np.concatenate([np.full(len(p), kd, dtype=np.int64) for kd, p, _ in pos_kind])
        val = np.concatenate([v for _, _, v in pos_kind])
        ev_sym = sym_raw[idx].astype(np.int64)
        np.add.at(self._totals, (ev_sym, kind), 1)
        syms, counts = np.unique(ev_sym, return_counts=True)
        problems.update(zip(syms.tolist(), counts.tolist(), strict=True))
        bucket = stream[idx] // _BUCKET_NS
        key = (bucket * 8 + kind) * 65536 + ev_sym
        keys, counts = np.unique(key, return_counts=True)
        for kk, c in zip(keys.tolist(), counts.tolist(), strict=True):
            s, kd, bk = kk % 65536, (kk // 65536) % 8, kk // (65536 * 8)
            self._buckets[s].setdefault(bk, [0, 0, 0, 0, 0])[kd] += c
        # the last problem of each symbol: latest tick, then the most telling kind
        rank = np.array([_RANK[i] for i in range(5)])[kind]
        o = np.lexsort((rank, idx, ev_sym))
        ends = np.flatnonzero(np.append(ev_sym[o][1:] != ev_sym[o][:-1], True))
        for j in o[ends].tolist():
            s = int(ev_sym[j])
            self._last_problem[s] = _message(int(kind[j]), float(val[j]))
            self._last_problem_ts[s] = int(stream[idx[j]])
            self._prune(s)
        return problems

    def _record_few(
        self,
        pos_kind: list[tuple[int, np.ndarray, np.ndarray]],
        sym_raw: np.ndarray,
        stream: np.ndarray,
        problems: dict[int, int],
    ) -> dict[int, int]:
        """_record for a handful of problems: the same counts, in plain Python."""
        totals, buckets = self._totals, self._buckets
        last: dict[int, tuple[int, int, int, float]] = {}  # sym -> (idx, rank, kind, value)
        for kd, p, v in pos_kind:
            rank = _RANK[kd]
            for i, s, t, x in zip(
                p.tolist(), sym_raw[p].tolist(), stream[p].tolist(), v.tolist(), strict=True
            ):
                totals[s, kd] += 1
                problems[s] += 1
                buckets[s].setdefault(t // _BUCKET_NS, [0, 0, 0, 0, 0])[kd] += 1
                best = last.get(s)
                if best is None or (i, rank) > best[:2]:
                    last[s] = (i, rank, kd, x)
        for s, (i, _, kd, x) in last.items():
            self._last_problem[s] = _message(kd, x)
            self._last_problem_ts[s] = int(stream[i])
            self._prune(s)
        return problems

    def _prune(self, s: int) -> None:
        store = self._buckets[s]
        horizon = (self._stream_ts - self._window_ns) // _BUCKET_NS - 1
        for key in [key for key in store if key < horizon]:
            del store[key]

    # ----------------------------------------------------------------- scores
    def scores(self, now_ns: int) -> list[SymbolQuality]:
        """Quality per symbol seen so far, ordered by sym (see the module docstring)."""
        out = []
        window = self._window_ns
        for s in np.flatnonzero(self._seen).tolist():
            penalty = 0.0
            for key, counts in sorted(self._buckets[s].items()):
                age = now_ns - (key * _BUCKET_NS + _BUCKET_NS // 2)
                fade = 1.0 - max(age, 0) / window
                if fade > 0:
                    penalty += fade * sum(w * c for w, c in zip(WEIGHTS, counts, strict=True))
            problem, problem_ts = self._last_problem[s], self._last_problem_ts[s]
            if self._has_last[s]:
                silent = now_ns - int(self._last_ts[s])
                if silent > self._max_gap_ns:
                    penalty += SILENT_WEIGHT
                    problem, problem_ts = f"silent {silent / NS_PER_SECOND:.0f}s", now_ns
            n_lat = min(int(self._n_lat[s]), _LAT_RING)
            latency = float(np.median(self._lat_ring[s, :n_lat])) if n_lat else 0.0
            totals = self._totals[s]
            out.append(
                SymbolQuality(
                    sym=s,
                    score=math.exp(-penalty),
                    ticks=int(self._ticks[s]),
                    rejects=int(totals[REJECT]),
                    spikes=int(totals[SPIKE]),
                    gaps=int(totals[GAP]),
                    latency_ms=latency,
                    last_problem=problem,
                    last_problem_ts=problem_ts,
                )
            )
        return out

    def counters(self) -> np.ndarray:
        """Totals per symbol: columns rejects, spikes, gaps, stale, latency breaches."""
        return self._totals.copy()


def _message(kind: int, value: float) -> str:
    if kind == REJECT:
        return _REASONS[int(value)]
    if kind == SPIKE:
        return f"spike {value:.1f}σ"
    if kind == GAP:
        return f"gap {value:.1f}s"
    if kind == STALE:
        return f"stale {value:.0f}s"
    return f"latency {value:.0f}ms"
