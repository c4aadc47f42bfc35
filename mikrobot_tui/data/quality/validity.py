"""The rejects: which ticks go no further, and why.

Rejected (returned as `Reject` values, counted, they go no further):
- "NaN price" / "infinite price": bid or ask not finite;
- "non-positive price": bid or ask zero or below;
- "crossed quote": bid above ask. A locked quote (bid == ask) is accepted but flagged
  (flags.py): its mid is well defined, a broker's quote should not be locked;
- "absurd price": the ask above PRICE_CEILING (1e12, far above any instrument's price; it also
  keeps (bid + ask) / 2 from overflowing), so not even a symbol's first tick can be absurd;
- "bad trade price" (last present but not a positive number up to PRICE_CEILING), "bad volume"
  (volume present but negative or not finite);
- "timestamp in the future": ts_event later than ts_recv by more than `future_tolerance_s` (a
  feed's clock, or the configured server-clock offset, is wrong). Such a tick moves neither the
  symbol's latest good timestamp nor the stream time past ts_recv + the tolerance;
- "timestamp from the past": ts_event earlier than the symbol's last accepted tick;
- "price jump": the mid more than `max_price_jump` times above, or below 1 / `max_price_jump`
  of, the mid of the symbol's last accepted tick. So no absurd price reaches the spike
  estimator. A new level is accepted when REANCHOR ticks in a row jump to it (each within the
  factor of the one before): a symbol whose last accepted price was itself wrong, or that really
  moved that far, is not locked out for ever. Its first tick there is marked `anchored`: its
  return from the old level means nothing and is not fed to the spike estimator;
- "duplicate tick": the same ts_event, bid, ask, last and volume as the symbol's previous accepted
  tick (ts_recv is ignored: a message delivered twice is still one tick).

The static checks look at one tick alone; the others compare a tick with the symbol's past,
which this room keeps: the latest good timestamp, the last accepted tick of each symbol and a
level that jumped ticks are pointing to.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mikrobot_tui.data.quality.segments import Segments

_MIN = np.iinfo(np.int64).min
PRICE_CEILING = 1e12
REANCHOR = 5  # ticks in a row at a new level that make it the symbol's price

REASONS = (
    "",
    "NaN price",
    "infinite price",
    "non-positive price",
    "crossed quote",
    "bad trade price",
    "bad volume",
    "timestamp from the past",
    "duplicate tick",
    "absurd price",
    "price jump",
    "timestamp in the future",
)
PAST, DUP, ABSURD, JUMP, FUTURE = 7, 8, 9, 10, 11


@dataclass(frozen=True)
class Reject:
    ts_event: int
    ts_recv: int
    sym: int
    reason: str
    raw: str  # the tick's fields as compact text


def raw_text(t: np.void) -> str:
    return (
        f"ts={int(t['ts_event'])} recv={int(t['ts_recv'])} sym={int(t['sym'])} "
        f"bid={float(t['bid'])!r} ask={float(t['ask'])!r} "
        f"last={float(t['last'])!r} vol={float(t['volume'])!r}"
    )


def static_reason(t: np.void, future_ns: int) -> int:
    """The reason (an index into REASONS) a tick that failed the static checks gets (a bad
    price wins over a timestamp in the future, which wins over a bad trade price or volume)."""
    bid, ask, last = (float(t[k]) for k in ("bid", "ask", "last"))
    if math.isnan(bid) or math.isnan(ask):
        return 1
    if math.isinf(bid) or math.isinf(ask):
        return 2
    if bid <= 0 or ask <= 0:
        return 3
    if bid > ask:
        return 4
    if ask > PRICE_CEILING:
        return ABSURD
    if int(t["ts_event"]) - int(t["ts_recv"]) > future_ns:
        return FUTURE
    if not math.isnan(last) and (last > PRICE_CEILING or last <= 0):
        return 5
    return 6


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a == b) | (np.isnan(a) & np.isnan(b))


class LastAccepted:
    """Each symbol's last accepted tick: whether there is one, its ts_event and its fields."""

    __slots__ = ("fields", "has", "ts")

    def __init__(self, n_symbols: int) -> None:
        self.has = np.zeros(n_symbols, dtype=bool)
        self.ts = np.full(n_symbols, _MIN, dtype=np.int64)
        self.fields = np.full((n_symbols, 4), np.nan)  # bid, ask, last, volume

    def remember(
        self,
        seg: Segments,
        ts: np.ndarray,
        bid: np.ndarray,
        ask: np.ndarray,
        order: np.ndarray,
        ticks: np.ndarray,
    ) -> None:
        """Keep the last of the accepted ticks (symbol order; `order` maps into `ticks`)."""
        ls = seg.sym
        last_at = seg.last
        last_j = order[last_at]
        self.ts[ls] = ts[last_at]
        self.has[ls] = True
        fields = self.fields
        fields[ls, 0] = bid[last_at]
        fields[ls, 1] = ask[last_at]
        fields[ls, 2] = ticks["last"][last_j]
        fields[ls, 3] = ticks["volume"][last_j]

    def remember_one(self, s: int, t: int, fields: tuple[float, float, float, float]) -> None:
        """`remember` for one accepted tick: symbol s, ts_event t, (bid, ask, last, volume)."""
        self.ts[s] = t
        self.has[s] = True
        self.fields[s] = fields


class Validity:
    """The static checks, timestamps from the past and duplicates, with the state they need."""

    def __init__(self, n_symbols: int, max_price_jump: float, future_ns: int) -> None:
        self.future_ns = future_ns
        # running max of the statically good ts_event of each symbol: a tick before it is late
        self.last_ts = np.full(n_symbols, _MIN, dtype=np.int64)
        self.last = LastAccepted(n_symbols)
        self.max_jump = max_price_jump
        # the mid of the latest tick rejected as a jump, and how many in a row agree with it
        self._level = np.full(n_symbols, np.nan)
        self._level_n = np.zeros(n_symbols, dtype=np.int64)

    def static_ok(
        self,
        ticks: np.ndarray,
        order: np.ndarray,
        bid: np.ndarray,
        ask: np.ndarray,
        future: np.ndarray | None,
    ) -> np.ndarray | None:
        """Mask (symbol order) of ticks with good prices, volume and time, or None when all
        are; `future` (batch order) marks the timestamps in the future, None when none is."""
        ok = bid > 0
        if future is not None:
            ok &= ~np.take(future, order)
        ok &= ask >= bid
        ok &= ask <= PRICE_CEILING
        # trade price and volume: NaN is fine; fmin/fmax skip NaN, so they say if any is bad
        last, vol = ticks["last"].copy(), ticks["volume"].copy()
        l_min, l_max = np.fmin.reduce(last), np.fmax.reduce(last)
        v_min, v_max = np.fmin.reduce(vol), np.fmax.reduce(vol)
        if l_min <= 0 or l_max > PRICE_CEILING or v_min < 0 or v_max == np.inf:
            last, vol = np.take(last, order), np.take(vol, order)
            ok &= ~((last <= 0) | (last > PRICE_CEILING) | (vol < 0) | (vol == np.inf))
        return None if ok.all() else ok

    def passes_one(self, s: int, t: int, t_recv: int, fields: tuple[float, ...]) -> bool:
        """Whether one tick (symbol s, ts_event t, received t_recv, (bid, ask, last, volume))
        surely passes every check: good prices and volume, not in the future, not from the
        past, no jump (nor a level pending), not a duplicate. Reads state, changes none; False
        also for what only the batch path decides (values near int64's limits)."""
        bid, ask, last, vol = fields
        # NaN fails every comparison, as in static_ok
        if not (bid > 0 and bid <= ask <= PRICE_CEILING) or last <= 0 or last > PRICE_CEILING:
            return False
        if vol < 0 or vol == math.inf or abs(t - t_recv) >= 1 << 62:
            return False
        if t - t_recv > self.future_ns or t < self.last_ts[s] or self._level_n[s]:
            return False
        prev = self.last
        if prev.has[s] and t == prev.ts[s]:
            return False  # maybe a duplicate
        ref = (float(prev.fields[s, 0]) + float(prev.fields[s, 1])) * 0.5
        if ref != ref:  # NaN: the symbol's first tick, nothing to jump from
            return True
        return 1.0 / self.max_jump <= ((bid + ask) * 0.5) / ref <= self.max_jump

    def past(self, seg: Segments, ts: np.ndarray, ok: np.ndarray | None) -> np.ndarray | None:
        """Mask of ticks (symbol order) earlier than the running max of the statically good
        earlier ticks of their symbol, or None when there is none; moves `last_ts` on."""
        carry = self.last_ts[seg.sym]
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
            self.last_ts[seg.sym] = new_last
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
        self.last_ts[seg.sym] = new_last
        return past if past.any() else None

    def jumps(
        self, c_seg: Segments, c_bid: np.ndarray, c_ask: np.ndarray
    ) -> tuple[np.ndarray | None, list[int]]:
        """Mask of candidates (symbol order) whose mid jumps too far from the symbol's last
        accepted mid, or None when there is none; and the positions where a new level was
        accepted (see REANCHOR)."""
        lo, hi = 1.0 / self.max_jump, self.max_jump
        fs, first = c_seg.sym, c_seg.first
        mid = c_bid + c_ask
        mid *= 0.5
        carried = self.last.fields[fs]
        ref0 = (carried[:, 0] + carried[:, 1]) * 0.5  # NaN before a symbol's first tick
        # each mid over the one before it, or over the carried one
        q = np.empty_like(mid)
        np.divide(mid[1:], mid[:-1], out=q[1:])
        q[first] = mid[first] / ref0
        near = bool(np.fmax.reduce(q) <= hi and np.fmin.reduce(q) >= lo)  # NaN is skipped
        far = None if near else (q > hi) | (q < lo)
        pending = self._level_n[fs] > 0
        if far is None and not pending.any():
            return None, []
        # the symbols with a jump (or a level pending from earlier batches), one tick at a time:
        # a rejected tick leaves the reference where it was
        hit = pending.copy()
        if far is not None:
            hit[np.searchsorted(first, np.flatnonzero(far), side="right") - 1] = True
        jump = np.zeros(len(mid), dtype=bool)
        anchored: list[int] = []
        for j in np.flatnonzero(hit).tolist():
            s, a, b = int(fs[j]), int(first[j]), int(c_seg.last[j]) + 1
            ref = float(ref0[j])
            level, n = float(self._level[s]), int(self._level_n[s])
            for i, m in enumerate(mid[a:b].tolist(), a):
                if ref != ref or lo <= m / ref <= hi:  # no reference yet, or near it
                    ref, n = m, 0
                    continue
                n = n + 1 if n and lo <= m / level <= hi else 1
                level = m
                if n >= REANCHOR:
                    anchored.append(i)
                    ref, n = m, 0
                else:
                    jump[i] = True
            self._level[s], self._level_n[s] = level, n
        return (jump if jump.any() else None), anchored

    def duplicates(
        self, c_seg: Segments, c_ts: np.ndarray, c_order: np.ndarray, ticks: np.ndarray
    ) -> np.ndarray | None:
        """Mask of candidates (symbol order) that repeat the previous candidate of their symbol
        exactly, or None when there is none."""
        fs = c_seg.sym
        last = self.last
        same_ts = c_ts[1:] == c_ts[:-1]
        same_ts[c_seg.first[1:] - 1] = False
        f_same = last.has[fs] & (c_ts[c_seg.first] == last.ts[fs])
        if not (f_same.any() or same_ts.any()):
            return None
        firsts = dict(zip(c_seg.first[f_same].tolist(), fs[f_same].tolist(), strict=True))
        js = sorted([*firsts, *(np.flatnonzero(same_ts) + 1).tolist()])
        dup = np.zeros(len(c_ts), dtype=bool)
        for j in js:
            row = ticks[c_order[j]]
            if j in firsts:
                prev = last.fields[firsts[j]]
            else:
                p = ticks[c_order[j - 1]]
                prev = np.array([p["bid"], p["ask"], p["last"], p["volume"]])
            here = np.array([row["bid"], row["ask"], row["last"], row["volume"]])
            dup[j] = bool(_same(here, prev).all())
        return dup if dup.any() else None
