"""Counting problems: totals, one-second buckets, the last problem, and a score per symbol.

Score per symbol, in 0..1:

    score = exp(-(0.10 R + 0.10 S + 0.25 G + 0.25 F + 0.02 L + 0.05 K + 0.05 W + 0.25 Q))

where R, S, G, F, L, K, W count the rejects, spikes, gaps, stale episodes, latency breaches,
locked quotes and wide spreads of the last `window_s`, each weighted by (1 - age / window_s) so
a problem fades out linearly (ages are taken from the 1-second bucket of the stream time at
which the problem was seen), and Q is 1 while the symbol is silent (no tick for more than
`max_gap_s` of open market before `now_ns`: the time its market was closed does not count, see
flags.py). A clean feed scores exactly 1.0; a burst of three rejects just now gives about
0.74; a clean window after the last problem brings it back to 1.0.

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
WEIGHTS = (0.10, 0.10, 0.25, 0.25, 0.02, 0.05, 0.05)
SILENT_WEIGHT = 0.25
# which message wins when one tick has several problems (higher wins)
_RANK = {LATENCY: 0, SPREAD: 1, LOCKED: 2, STALE: 3, GAP: 4, SPIKE: 5, REJECT: 6}
_BUCKET_NS = NS_PER_SECOND
_FEW_EVENTS = 64  # problems in a batch counted in plain Python

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
    ) -> list[SymbolQuality]:
        """Quality per symbol seen so far, ordered by sym (see the module docstring).

        `has_last` and `last_ts` say whether and when each symbol last ticked (for silence);
        `latency_ms(sym)` is its median latency.
        """
        out = []
        window = self._window_ns
        for s in np.flatnonzero(self.seen).tolist():
            penalty = 0.0
            for key, counts in sorted(self._buckets[s].items()):
                age = now_ns - (key * _BUCKET_NS + _BUCKET_NS // 2)
                fade = 1.0 - max(age, 0) / window
                if fade > 0:
                    penalty += fade * sum(w * c for w, c in zip(WEIGHTS, counts, strict=True))
            problem, problem_ts = self._last_problem[s], self._last_problem_ts[s]
            if has_last[s]:
                silent = now_ns - int(last_ts[s])
                if silent > self._max_gap_ns and self._fx is not None and self._fx[s]:
                    silent -= closed_ns(int(last_ts[s]), now_ns)
                if silent > self._max_gap_ns:
                    penalty += SILENT_WEIGHT
                    problem, problem_ts = f"silent {silent / NS_PER_SECOND:.0f}s", now_ns
            totals = self.totals[s]
            out.append(
                SymbolQuality(
                    sym=s,
                    score=math.exp(-penalty),
                    ticks=int(self.ticks[s]),
                    rejects=int(totals[REJECT]),
                    spikes=int(totals[SPIKE]),
                    gaps=int(totals[GAP]),
                    latency_ms=latency_ms(s),
                    last_problem=problem,
                    last_problem_ts=problem_ts,
                )
            )
        return out
