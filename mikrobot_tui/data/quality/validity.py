"""The rejects: which ticks go no further, and why.

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

The static checks look at one tick alone; the other two compare a tick with the symbol's past,
which this room keeps: the latest good timestamp and the last accepted tick of each symbol.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mikrobot_tui.data.quality.segments import Segments

_MIN = np.iinfo(np.int64).min

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
)
PAST, DUP = 7, 8


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


def static_reason(t: np.void) -> int:
    """The reason (an index into REASONS) a tick that failed the static checks gets."""
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


class Validity:
    """The static checks, timestamps from the past and duplicates, with the state they need."""

    def __init__(self, n_symbols: int) -> None:
        # running max of the statically good ts_event of each symbol: a tick before it is late
        self.last_ts = np.full(n_symbols, _MIN, dtype=np.int64)
        self.last = LastAccepted(n_symbols)

    @staticmethod
    def static_ok(
        ticks: np.ndarray, order: np.ndarray, bid: np.ndarray, ask: np.ndarray
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
