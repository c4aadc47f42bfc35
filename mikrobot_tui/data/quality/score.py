"""Counting problems: totals, one-second buckets, the last problem, and a score per symbol.

Score per symbol, in 0..1, the product of five parts:

    score = validity x spikes x gaps x latency x completeness
    validity = exp(-(0.10 R + 0.05 K + 0.05 W))      spikes  = exp(-0.10 S)
    gaps     = exp(-(0.25 G + 0.25 F + 0.25 Q))      latency = exp(-0.02 L)
    completeness = min(of ticks, of bars)
    of ticks = min(1, received / (0.75 expected - 3 sqrt(expected)))   (Score.completeness)
    of bars  = min(1, minutes with a tick / (0.75 E - 3 sqrt(V)))      (Score.bar_completeness)

where R, S, G, F, L, K, W count the rejects, spikes, gaps, stale episodes, latency breaches,
locked quotes and wide spreads of the last `window_s`, each weighted by (1 - age / window_s) so
a problem fades out linearly (ages are taken from the 1-second bucket of the stream time at
which the problem was seen), and Q is 1 while the symbol is silent (no tick for more than
`max_gap_s` of open market before `now_ns`: the time its market was closed does not count, see
flags.py). Without completeness this is exp(-(0.10 R + 0.10 S + 0.25 G + 0.25 F + 0.02 L + 0.05
K + 0.05 W + 0.25 Q)), the penalty the engine's quality judge sums (less Q). Completeness
compares the ticks received over the window with the symbol's own rate over the BASELINE_S (600
s) before it, open market only; a quarter short (tick rates swing that much within minutes,
with the session or the regime) and three standard deviations of a Poisson count cost nothing.
After a long silence the baseline empties and completeness returns to 1 (the silence itself
still counts in Q); right after a weekend it is 1 until 10 s of open market form a baseline.
The bars' completeness looks at the last BAR_WINDOW_MIN (60) whole minutes: the M1 bars a
symbol made (minutes with at least one tick) against those its baseline rate r expects, a
minute with o open seconds holding a tick with probability p = 1 - exp(-r o), E the sum of p
and V of p (1 - p) (a count of independent minutes): a feed whose ticks come in bursts, with
whole minutes missing between them, loses here while its tick count may look whole. A
clean feed scores exactly 1.0; a burst of three rejects just now gives about 0.74; a clean
window after the last problem brings it back to 1.0.

`latency_ms` is the median latency of the symbol's last 64 accepted ticks.

The last problem of a symbol is the one on its latest tick; when one tick has several, the
most telling kind wins (a reject, then a spike, a gap, a stale quote, a locked quote, a wide
spread, latency).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mikrobot_tui.data.quality.validity import REASONS
from mikrobot_tui.domain.hours import closed_ns
from mikrobot_tui.domain.market import NS_PER_SECOND

# problem kinds: index into the weights and the per-bucket counts
REJECT, SPIKE, GAP, STALE, LATENCY, LOCKED, SPREAD = range(7)
N_KINDS = 7
# the parts of the score each kind of problem lowers
VALIDITY, SPIKES, GAPS, LATENCY_PART = range(4)
PART_OF = (VALIDITY, SPIKES, GAPS, GAPS, LATENCY_PART, VALIDITY, VALIDITY)
BASELINE_S = 600  # the recent past a symbol's usual tick rate is taken from
BAR_WINDOW_MIN = 60  # whole minutes the bars' completeness looks back over
_MINUTE_S = 60
SLACK = 0.75  # the share of its usual rate a symbol may fall to at no cost (Poisson noise aside)
_MIN_BASELINE_NS = 10 * 1_000_000_000  # less open baseline than this: completeness 1
_MIN = np.iinfo(np.int64).min
WEIGHTS = (0.10, 0.10, 0.25, 0.25, 0.02, 0.05, 0.05)
SILENT_WEIGHT = 0.25
# which message wins when one tick has several problems (higher wins)
_RANK = {LATENCY: 0, SPREAD: 1, LOCKED: 2, STALE: 3, GAP: 4, SPIKE: 5, REJECT: 6}
_BUCKET_NS = NS_PER_SECOND
_FEW_EVENTS = 64  # problems in a batch counted in plain Python
_MINUTES_KEPT = 2 * BAR_WINDOW_MIN + 2  # past this many minutes, the old ones are dropped

# (kind, positions in the batch, value for the message) of one kind of problem
Found = tuple[int, np.ndarray, np.ndarray]


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
    # the score's parts (score = their product, see the module docstring)
    validity: float = 1.0
    spikes_part: float = 1.0
    gaps_part: float = 1.0
    latency_part: float = 1.0
    completeness: float = 1.0  # the lesser of the ticks' and the bars' completeness
    expected_ticks: float = 0.0  # over the window, from the symbol's own baseline rate
    window_ticks: int = 0  # received over the window
    bar_completeness: float = 1.0  # M1 bars made / expected over the last BAR_WINDOW_MIN
    expected_bars: float = 0.0  # minutes of those expected to hold a tick, from the rate
    window_bars: int = 0  # minutes of those that held one
    # process capability of latency against quality.latency_limit_ms (flags.py); None
    # before two latencies or when they do not vary
    latency_cp: float | None = None
    latency_cpk: float | None = None


def message(kind: int, value: float) -> str:
    if kind == REJECT:
        return REASONS[int(value)]
    if kind == SPIKE:
        return f"spike {value:.1f}σ"
    if kind == GAP:
        return f"gap {value:.1f}s"
    if kind == STALE:
        return f"stale {value:.0f}s"
    if kind == LOCKED:
        return "locked quote"
    if kind == SPREAD:
        return f"spread {value:.1f}x usual"
    return f"latency {value:.0f}ms"


class Score:
    """Per symbol: ticks seen, problem totals, problems per 1-second bucket, the last problem."""

    def __init__(
        self, n_symbols: int, window_ns: int, max_gap_ns: int, fx_hours: np.ndarray | None = None
    ) -> None:
        n = n_symbols
        # per symbol: trades Sunday 17:00 to Friday 17:00 New York (its silence while closed
        # is not counted); None: every symbol always open
        self._fx = fx_hours
        self._window_ns = window_ns
        self._max_gap_ns = max_gap_ns
        self.seen = np.zeros(n, dtype=bool)
        self.ticks = np.zeros(n, dtype=np.int64)
        self.totals = np.zeros((n, N_KINDS), dtype=np.int64)
        self._last_problem = [""] * n
        self._last_problem_ts: list[int | None] = [None] * n
        self._buckets: list[dict[int, list[int]]] = [{} for _ in range(n)]
        # ticks received per 1-second bucket of their arrival time, and each symbol's first
        self._arrivals: list[dict[int, int]] = [{} for _ in range(n)]
        # ticks received per whole minute (an M1 bar's), for the bars' completeness
        self._minutes: list[dict[int, int]] = [{} for _ in range(n)]
        self._first_ts = np.full(n, _MIN, dtype=np.int64)
        self._keep_s = 2 * (window_ns // NS_PER_SECOND + BASELINE_S + 2)

    def arrive(self, sym_raw: np.ndarray, stream: np.ndarray, firsts: np.ndarray) -> None:
        """Count each received tick in its symbol's 1-second bucket of its arrival time
        (`stream`: the event time capped at the stream time); `firsts` are the positions of
        each symbol's first tick in the batch."""
        fs = sym_raw[firsts]
        new = self._first_ts[fs] == _MIN
        if new.any():
            self._first_ts[fs[new]] = stream[firsts[new]]
        if len(sym_raw) == 1:
            self._arrive_after_first(int(sym_raw[0]), int(stream[0]))
            return
        keys, counts = np.unique(
            (stream // _BUCKET_NS) * 65536 + sym_raw.astype(np.int64), return_counts=True
        )
        # per symbol, its seconds ascending (as the sorted keys met them one by one)
        syms, seconds = keys % 65536, keys // 65536
        order = np.argsort(syms, kind="stable")
        syms, seconds, counts = syms[order], seconds[order], counts[order]
        cuts = np.flatnonzero(syms[1:] != syms[:-1]) + 1
        minute_s = _MINUTE_S
        for a, b in zip([0, *cuts.tolist()], [*cuts.tolist(), len(syms)], strict=True):
            s = int(syms[a])
            secs, c = seconds[a:b], counts[a:b]
            _merge(self._arrivals[s], secs, c, self._keep_s, self._keep_s // 2)
            minutes = secs // minute_s
            starts = np.flatnonzero(np.append(True, minutes[1:] != minutes[:-1]))
            per_minute = np.add.reduceat(c, starts)
            _merge(self._minutes[s], minutes[starts], per_minute, _MINUTES_KEPT, BAR_WINDOW_MIN + 1)

    def arrive_one(self, s: int, t: int) -> None:
        """`arrive` for a batch of one tick: symbol s arriving at t."""
        if self._first_ts[s] == _MIN:
            self._first_ts[s] = t
        self._arrive_after_first(s, t)

    def _arrive_after_first(self, s: int, t: int) -> None:
        key = t // _BUCKET_NS
        store = self._arrivals[s]
        store[key] = store.get(key, 0) + 1
        if len(store) > self._keep_s:
            self._prune_arrivals(s, key)
        self._add_minute(s, key // _MINUTE_S, 1)

    def _add_minute(self, s: int, minute: int, count: int) -> None:
        store = self._minutes[s]
        store[minute] = store.get(minute, 0) + count
        if len(store) > _MINUTES_KEPT:
            for k in [k for k in store if k < minute - BAR_WINDOW_MIN - 1]:
                del store[k]

    def _prune_arrivals(self, s: int, key: int) -> None:
        store = self._arrivals[s]
        horizon = key - self._keep_s // 2
        for k in [k for k in store if k < horizon]:
            del store[k]

    def _open_ns(self, s: int, lo: int, hi: int) -> int:
        if hi <= lo:
            return 0
        if self._fx is not None and self._fx[s]:
            return hi - lo - closed_ns(lo, hi)
        return hi - lo

    def completeness(self, s: int, now_ns: int) -> tuple[float, float, int]:
        """(completeness, expected, received) of ticks over the window (see `_ticks`)."""
        return self._ticks(s, now_ns)[:3]

    def _ticks(self, s: int, now_ns: int) -> tuple[float, float, int, float | None]:
        """(completeness, expected, received) over the window, in whole seconds of stream time.

        The window is the `window_s` seconds before the current (unfinished) one; the baseline
        the BASELINE_S seconds before the window, from the symbol's first full second on. The
        symbol's rate is its baseline ticks over the baseline's open time, the expected ticks
        that rate times the window's open time, and

            completeness = min(1, received / (SLACK expected - 3 sqrt(expected)))

        so a rate a quarter below the baseline's, and a Poisson count's usual shortfall (three
        standard deviations), cost nothing. 1 when
        there is no baseline yet (under 10 s of open market) or the floor is not positive.
        The fourth value is the baseline rate (ticks per open second), None without one."""
        sec = _BUCKET_NS
        now_key = now_ns // sec
        w_keys = self._window_ns // sec
        win_lo = now_key - w_keys  # first key of the window
        first_full = int(self._first_ts[s]) // sec + 1
        base_lo = max(win_lo - BASELINE_S, first_full)
        got = base = 0
        for key, c in self._arrivals[s].items():
            if win_lo <= key < now_key:
                got += c
            elif base_lo <= key < win_lo:
                base += c
        open_base = self._open_ns(s, base_lo * sec, win_lo * sec)
        if base == 0 or open_base < _MIN_BASELINE_NS:
            return 1.0, 0.0, got, None
        rate = base / open_base
        expected = rate * self._open_ns(s, max(win_lo, first_full) * sec, now_key * sec)
        floor = SLACK * expected - 3.0 * math.sqrt(expected)
        if floor <= 0:
            return 1.0, expected, got, rate
        return min(1.0, got / floor), expected, got, rate

    def bar_completeness(
        self, s: int, now_ns: int, rate_per_ns: float | None
    ) -> tuple[float, float, int]:
        """(completeness, expected, made) of M1 bars over the last BAR_WINDOW_MIN whole
        minutes from the symbol's first whole minute on (module docstring); 1 without a
        baseline rate or when the floor is not positive."""
        minute_ns = _MINUTE_S * _BUCKET_NS
        now_min = now_ns // minute_ns
        first = int(self._first_ts[s]) // minute_ns + 1
        lo = max(now_min - BAR_WINDOW_MIN, first)
        store = self._minutes[s]
        made = sum(1 for m, c in store.items() if lo <= m < now_min and c)
        if rate_per_ns is None or lo >= now_min:
            return 1.0, 0.0, made
        if self._open_ns(s, lo * minute_ns, now_min * minute_ns) == (now_min - lo) * minute_ns:
            p = -math.expm1(-rate_per_ns * minute_ns)  # every minute wholly open: the same p
            expected, variance = (now_min - lo) * p, (now_min - lo) * p * (1.0 - p)
        else:
            expected = variance = 0.0
            for m in range(lo, now_min):
                p = -math.expm1(-rate_per_ns * self._open_ns(s, m * minute_ns, (m + 1) * minute_ns))
                expected += p
                variance += p * (1.0 - p)
        floor = SLACK * expected - 3.0 * math.sqrt(variance)
        if floor <= 0:
            return 1.0, expected, made
        return min(1.0, made / floor), expected, made

    def record(
        self,
        pos_kind: list[Found],
        sym_raw: np.ndarray,
        stream: np.ndarray,
        seg_sym: np.ndarray,
        stream_ts: int,
    ) -> dict[int, int]:
        """Count problems (totals, score buckets, last problem); return problems per symbol."""
        problems = dict.fromkeys(seg_sym.tolist(), 0)
        pos_kind = [pk for pk in pos_kind if len(pk[1])]
        if not pos_kind:
            return problems
        if sum(len(p) for _, p, _ in pos_kind) <= _FEW_EVENTS:
            return self._record_few(pos_kind, sym_raw, stream, problems, stream_ts)
        idx = np.concatenate([p for _, p, _ in pos_kind])
        kind = np.concatenate([np.full(len(p), kd, dtype=np.int64) for kd, p, _ in pos_kind])
        val = np.concatenate([v for _, _, v in pos_kind])
        ev_sym = sym_raw[idx].astype(np.int64)
        np.add.at(self.totals, (ev_sym, kind), 1)
        syms, counts = np.unique(ev_sym, return_counts=True)
        problems.update(zip(syms.tolist(), counts.tolist(), strict=True))
        bucket = stream[idx] // _BUCKET_NS
        key = (bucket * 8 + kind) * 65536 + ev_sym
        keys, counts = np.unique(key, return_counts=True)
        for kk, c in zip(keys.tolist(), counts.tolist(), strict=True):
            s, kd, bk = kk % 65536, (kk // 65536) % 8, kk // (65536 * 8)
            self._buckets[s].setdefault(bk, [0] * N_KINDS)[kd] += c
        # the last problem of each symbol: latest tick, then the most telling kind
        rank = np.array([_RANK[i] for i in range(N_KINDS)])[kind]
        o = np.lexsort((rank, idx, ev_sym))
        ends = np.flatnonzero(np.append(ev_sym[o][1:] != ev_sym[o][:-1], True))
        for j in o[ends].tolist():
            s = int(ev_sym[j])
            self._last_problem[s] = message(int(kind[j]), float(val[j]))
            self._last_problem_ts[s] = int(stream[idx[j]])
            self._prune(s, stream_ts)
        return problems

    def _record_few(
        self,
        pos_kind: list[Found],
        sym_raw: np.ndarray,
        stream: np.ndarray,
        problems: dict[int, int],
        stream_ts: int,
    ) -> dict[int, int]:
        """record() for a handful of problems: the same counts, in plain Python."""
        totals, buckets = self.totals, self._buckets
        last: dict[int, tuple[int, int, int, float]] = {}  # sym -> (idx, rank, kind, value)
        for kd, p, v in pos_kind:
            rank = _RANK[kd]
            for i, s, t, x in zip(
                p.tolist(), sym_raw[p].tolist(), stream[p].tolist(), v.tolist(), strict=True
            ):
                totals[s, kd] += 1
                problems[s] += 1
                buckets[s].setdefault(t // _BUCKET_NS, [0] * N_KINDS)[kd] += 1
                best = last.get(s)
                if best is None or (i, rank) > best[:2]:
                    last[s] = (i, rank, kd, x)
        for s, (i, _, kd, x) in last.items():
            self._last_problem[s] = message(kd, x)
            self._last_problem_ts[s] = int(stream[i])
            self._prune(s, stream_ts)
        return problems

    def _prune(self, s: int, stream_ts: int) -> None:
        store = self._buckets[s]
        horizon = (stream_ts - self._window_ns) // _BUCKET_NS - 1
        for key in [key for key in store if key < horizon]:
            del store[key]

    def scores(
        self,
        now_ns: int,
        has_last: np.ndarray,
        last_ts: np.ndarray,
        latency_ms: Callable[[int], float],
        capability: Callable[[int], tuple[float | None, float | None]] | None = None,
    ) -> list[SymbolQuality]:
        """Quality per symbol seen so far, ordered by sym (see the module docstring).

        `has_last` and `last_ts` say whether and when each symbol last ticked (for silence);
        `latency_ms(sym)` is its median latency.
        """
        out = []
        window = self._window_ns
        for s in np.flatnonzero(self.seen).tolist():
            part = [0.0, 0.0, 0.0, 0.0]  # the penalty of each part
            for key, counts in sorted(self._buckets[s].items()):
                age = now_ns - (key * _BUCKET_NS + _BUCKET_NS // 2)
                fade = 1.0 - max(age, 0) / window
                if fade > 0:
                    for kd, c in enumerate(counts):
                        if c:
                            part[PART_OF[kd]] += fade * WEIGHTS[kd] * c
            problem, problem_ts = self._last_problem[s], self._last_problem_ts[s]
            if has_last[s]:
                silent = now_ns - int(last_ts[s])
                if silent > self._max_gap_ns and self._fx is not None and self._fx[s]:
                    silent -= closed_ns(int(last_ts[s]), now_ns)
                if silent > self._max_gap_ns:
                    part[GAPS] += SILENT_WEIGHT
                    problem, problem_ts = f"silent {silent / NS_PER_SECOND:.0f}s", now_ns
            totals = self.totals[s]
            validity, spikes, gaps, latency = (math.exp(-p) for p in part)
            ticks_part, expected, got, rate = self._ticks(s, now_ns)
            bars_part, expected_bars, made = self.bar_completeness(s, now_ns, rate)
            complete = min(ticks_part, bars_part)
            cp, cpk = (None, None) if capability is None else capability(s)
            out.append(
                SymbolQuality(
                    sym=s,
                    score=validity * spikes * gaps * latency * complete,
                    ticks=int(self.ticks[s]),
                    rejects=int(totals[REJECT]),
                    spikes=int(totals[SPIKE]),
                    gaps=int(totals[GAP]),
                    latency_ms=latency_ms(s),
                    last_problem=problem,
                    last_problem_ts=problem_ts,
                    validity=validity,
                    spikes_part=spikes,
                    gaps_part=gaps,
                    latency_part=latency,
                    completeness=complete,
                    expected_ticks=expected,
                    window_ticks=got,
                    bar_completeness=bars_part,
                    expected_bars=expected_bars,
                    window_bars=made,
                    latency_cp=cp,
                    latency_cpk=cpk,
                )
            )
        return out


def _merge(
    store: dict[int, int], keys: np.ndarray, counts: np.ndarray, limit: int, back: int
) -> None:
    """Add `counts` at `keys` (ascending, unique) to `store`, as adding them one by one would:
    whenever the store holds more than `limit` keys after an addition at key k, the keys
    before k - `back` go. A batch adds hundreds of keys and crosses the limit once in a while,
    so the keys go in by slices between the additions that prune."""
    klist, clist = keys.tolist(), counts.tolist()
    old = store.keys() & klist  # keys that add to a count: they leave the size as it is
    if len(store) + len(klist) - len(old) <= limit:  # no addition crosses the limit
        _add(store, klist, clist, old)
        return
    new = np.ones(len(klist), dtype=np.int64)
    if old:
        new[np.searchsorted(keys, np.fromiter(old, dtype=np.int64, count=len(old)))] = 0
    grown = np.cumsum(new)  # the store's growth after each addition
    i = 0
    while i < len(klist):
        # the first addition after which the store holds more than `limit` keys
        over = np.flatnonzero(len(store) + grown[i:] - (grown[i - 1] if i else 0) > limit)
        j = len(klist) if len(over) == 0 else i + int(over[0]) + 1
        _add(store, klist[i:j], clist[i:j], old)
        if len(over):
            _drop_before(store, klist[j - 1] - back)
        i = j


def _drop_before(store: dict[int, int], horizon: int) -> None:
    """The keys before `horizon` out of `store`; the rest keep their order."""
    n = len(store)
    keys = np.fromiter(store.keys(), dtype=np.int64, count=n)
    keep = keys >= horizon
    if keep.all():
        return
    counts = np.fromiter(store.values(), dtype=np.int64, count=n)
    store.clear()
    store.update(zip(keys[keep].tolist(), counts[keep].tolist(), strict=True))


def _add(store: dict[int, int], keys: list[int], counts: list[int], old: set[int]) -> None:
    add = dict(zip(keys, counts, strict=True))
    for k in old & add.keys():
        add[k] += store[k]
    store.update(add)
