"""The data-quality monitor: which ticks go on, which are rejected, and a score per symbol.

`QualityMonitor.check` takes one batch through the rooms of this package, in order:
- validity.py: the rejects (bad prices or volume, timestamps in the future or from the past,
  duplicates);
- flags.py: what is flagged but passed on: spikes (spikes.py, against a robust EWMA of the
  variance, ewma.py), gaps (the closed market excused, per symbol's hours), stale quotes,
  latency, locked quotes, wide spreads (spreads.py, against an EWMA of the spread);
- score.py: problems counted into totals and one-second buckets, the last problem, the score
  formula;
- segments.py: the batch sorted by symbol and cut into one run per symbol, which they all share.

Batch independence: every result (clean ticks, rejects, flags, counters, scores) is the same
however the stream is cut into batches. Every room carries its per-symbol state from batch to
batch; event times are the stream time (the running maximum of ts_event), never the batch's.
The hot path is vectorised over the batch (one stable sort by symbol); Python runs per symbol
and per problem.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from mikrobot_tui.config import QualitySettings
from mikrobot_tui.data.quality.flags import Flags
from mikrobot_tui.data.quality.score import (
    GAP,
    LATENCY,
    LOCKED,
    N_KINDS,
    REJECT,
    SILENT_WEIGHT,
    SPIKE,
    SPREAD,
    STALE,
    WEIGHTS,
    Found,
    Score,
    SymbolQuality,
)
from mikrobot_tui.data.quality.segments import Segments, select
from mikrobot_tui.data.quality.spikes import EWMA_ALPHA, SPIKE_WARMUP
from mikrobot_tui.data.quality.validity import (
    DUP,
    JUMP,
    PAST,
    REASONS,
    Reject,
    Validity,
    raw_text,
    static_reason,
)
from mikrobot_tui.domain.market import NS_PER_MS, NS_PER_SECOND, TICK_DTYPE

__all__ = [
    "EWMA_ALPHA",
    "GAP",
    "LATENCY",
    "LOCKED",
    "N_KINDS",
    "REJECT",
    "SILENT_WEIGHT",
    "SPIKE",
    "SPIKE_WARMUP",
    "SPREAD",
    "STALE",
    "WEIGHTS",
    "QualityMonitor",
    "QualityResult",
    "Reject",
    "SymbolQuality",
]

_MIN = np.iinfo(np.int64).min
_NO_TS, _NO_SYM, _NO_WEIGHT = np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0)


def _drop(
    gone: np.ndarray, seg: Segments, *arrays: np.ndarray
) -> tuple[Segments, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The segments and the arrays (symbol order) without the positions where `gone` is set."""
    keep = ~gone
    order, ts, bid, ask = (a[keep] for a in arrays)
    return seg.without(np.flatnonzero(gone)), order, ts, bid, ask


@dataclass(frozen=True)
class QualityResult:
    clean: np.ndarray  # accepted ticks, TICK_DTYPE, in their original order
    rejects: list[Reject]
    # every symbol present in the batch -> its problems (rejects and every kind of flag)
    problems_by_sym: dict[int, int]
    # stream time (running max of ts_event) of each problem in the batch, in no set order: the
    # engine's feed breaker judges fixed seconds of stream time, whatever the batching
    problem_ts: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    # aligned with `clean`: ticks flagged as return spikes. They are stored and counted, but
    # the engine keeps them out of candles and order matching (a bad print must not fill a
    # stop or widen a bar); None when there is none
    spikes: np.ndarray | None = None
    # aligned with `problem_ts`: each problem's symbol and its weight in the score (WEIGHTS),
    # so a symbol's score can be judged at any stream time (trading/judges.QualityJudge)
    problem_sym: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    problem_weight: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.float64))


class QualityMonitor:
    def __init__(
        self,
        n_symbols: int,
        settings: QualitySettings,
        *,
        min_sigma: float = 1e-6,
        fx_hours: Sequence[bool] | None = None,
    ) -> None:
        """`fx_hours[sym]`: the symbol trades Sunday 17:00 to Friday 17:00 New York, so the
        closed market is neither a gap nor silence (QualitySettings.always_open says which);
        None: every symbol always open."""
        self.n_symbols = n_symbols
        self.settings = settings
        self.min_sigma = min_sigma
        self._stream_ts = _MIN
        self._future_ns = round(settings.future_tolerance_s * NS_PER_SECOND)
        self._validity = Validity(n_symbols, settings.max_price_jump, self._future_ns)
        fx = None if fx_hours is None else np.asarray(fx_hours, dtype=bool)
        self._flags = Flags(n_symbols, settings, min_sigma, fx)
        self._score = Score(
            n_symbols,
            window_ns=round(settings.window_s * NS_PER_SECOND),
            max_gap_ns=round(settings.max_gap_s * NS_PER_SECOND),
            fx_hours=fx,
        )

    def check(self, ticks: np.ndarray) -> QualityResult:
        n = len(ticks)
        if n == 0:
            return QualityResult(ticks[:0].copy(), [], {})
        if ticks.dtype != TICK_DTYPE:
            raise TypeError(f"ticks must be TICK_DTYPE, got {ticks.dtype}")
        if n == 1 and self.min_sigma > 0:  # Flags.one applies
            one = self._check_one(ticks)
            if one is not None:
                return one
        validity, score = self._validity, self._score
        # every column is read once into a contiguous array (the rows are 50 bytes, unaligned)
        ts_raw = ticks["ts_event"].copy()
        recv_raw = ticks["ts_recv"]
        # timestamps in the future: rejected, and their stream time capped at receipt + tolerance
        ahead = ts_raw - recv_raw
        future = None
        if int(ahead.max()) > self._future_ns:
            future = ahead > self._future_ns
            stream = np.maximum.accumulate(np.where(future, recv_raw + self._future_ns, ts_raw))
        else:
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
        seg = Segments.of(sym)
        seg_sym = seg.sym
        score.seen[seg_sym] = True
        score.ticks[seg_sym] += seg.length
        # a tick arrives at its own event time (capped at the stream time: not in the future)
        score.arrive(sym_raw, np.minimum(ts_raw, stream), order[seg.first])

        # the rejects: a reason per tick (0 for none), batch order
        ok = validity.static_ok(ticks, order, bid, ask, future)
        all_ok = ok is None
        reason = np.zeros(n, dtype=np.int8)
        if not all_ok:
            for i in order[~ok].tolist():
                reason[i] = static_reason(ticks[i], self._future_ns)
        past = validity.past(seg, ts, ok)
        if past is not None:
            reason[order[past]] = PAST
            cand = ok & ~past if not all_ok else ~past
        else:
            cand = ok  # None: every tick is a candidate
        # the candidates (neither bad nor from the past), then the accepted ticks: compressed
        # only when something was rejected
        a_order, a_seg, a_ts, a_bid, a_ask = order, seg, ts, bid, ask
        if cand is not None:
            a_order, a_ts, a_bid, a_ask = order[cand], ts[cand], bid[cand], ask[cand]
            a_seg = seg.without(np.flatnonzero(~cand))
        jump, anchored = validity.jumps(a_seg, a_bid, a_ask) if len(a_order) else (None, [])
        fresh = None  # batch order: ticks that start a symbol's new price level
        if anchored:
            fresh = np.zeros(n, dtype=bool)
            fresh[a_order[anchored]] = True
        if jump is not None:
            reason[a_order[jump]] = JUMP
            a_seg, a_order, a_ts, a_bid, a_ask = _drop(jump, a_seg, a_order, a_ts, a_bid, a_ask)
        dup = validity.duplicates(a_seg, a_ts, a_order, ticks) if len(a_order) else None
        if dup is not None:
            reason[a_order[dup]] = DUP
            a_seg, a_order, a_ts, a_bid, a_ask = _drop(dup, a_seg, a_order, a_ts, a_bid, a_ask)
        all_acc = cand is None and jump is None and dup is None

        # the flags of the accepted ticks
        pos_kind: list[Found] = []  # (kind, original idx, value)
        if len(a_order):
            a_recv = np.take(ticks["ts_recv"], a_order)
            a_fresh = None if fresh is None else fresh[a_order]
            flagged = self._flags.check(a_seg, a_ts, a_recv, a_bid, a_ask, validity.last, a_fresh)
            for kind, p, v in flagged:
                pos_kind.append((kind, a_order[p], v))
            validity.last.remember(a_seg, a_ts, a_bid, a_ask, a_order, ticks)

        if not all_acc:
            rej = np.flatnonzero(reason)
            pos_kind.append((REJECT, rej, reason[rej].astype(np.float64)))
        problems = score.record(pos_kind, sym_raw, stream, seg_sym, self._stream_ts)
        found = [(kd, p) for kd, p, _ in pos_kind if len(p)]
        if found:
            at = found[0][1] if len(found) == 1 else np.concatenate([p for _, p in found])
            problem_ts, problem_sym = stream[at], sym_raw[at].astype(np.int64)
            problem_weight = np.concatenate([np.full(len(p), WEIGHTS[kd]) for kd, p in found])
        else:
            problem_ts = np.empty(0, dtype=np.int64)
            problem_sym = np.empty(0, dtype=np.int64)
            problem_weight = np.empty(0, dtype=np.float64)

        spiked = [p for kd, p, _ in pos_kind if kd == SPIKE]
        if all_acc:
            clean, keep, rejects = ticks, None, []
        else:
            keep = reason == 0
            clean = select(ticks, keep)
            rejects = [
                Reject(
                    int(ts_raw[i]),
                    int(recv_raw[i]),
                    int(sym_raw[i]),
                    REASONS[reason[i]],
                    raw_text(ticks[i]),
                )
                for i in rej.tolist()
            ]
        spikes = None
        if spiked:
            mask = np.zeros(n, dtype=bool)
            mask[spiked[0]] = True
            spikes = mask if keep is None else mask[keep]
        return QualityResult(
            clean, rejects, problems, problem_ts, spikes, problem_sym, problem_weight
        )

    def _check_one(self, ticks: np.ndarray) -> QualityResult | None:
        """`check` for a batch of one tick that passes every validity check, the usual live
        batch: the same state changes and result in Python scalars, without the sort, the
        segments and a dozen numpy calls. None (nothing changed) when the tick may be
        rejected: the batch path decides those."""
        t, t_recv, s, *fields = ticks[0].item()
        validity, score = self._validity, self._score
        if s >= self.n_symbols or not validity.passes_one(s, t, t_recv, fields):
            return None
        stream = max(t, self._stream_ts)
        self._stream_ts = stream
        score.seen[s] = True
        score.ticks[s] += 1
        score.arrive_one(s, t)  # its own event time: not after the stream time
        validity.last_ts[s] = t
        latency = float(t_recv - t) / NS_PER_MS
        bid, ask = fields[0], fields[1]
        found = self._flags.one(s, t, latency, bid, ask, validity.last, False)
        validity.last.remember_one(s, t, fields)
        if not found:  # most ticks: the empty arrays shared (nothing can be written to them)
            return QualityResult(ticks, [], {s: 0}, _NO_TS, None, _NO_SYM, _NO_WEIGHT)
        sym_raw, at = ticks["sym"], np.array([stream], dtype=np.int64)
        problems = score.record(found, sym_raw, at, sym_raw, stream)
        problem_ts = np.concatenate([at[p] for _, p, _ in found])
        problem_weight = np.concatenate([np.full(len(p), WEIGHTS[kd]) for kd, p, _ in found])
        spikes = None
        if found[0][0] == SPIKE:  # the spike, if any, comes first
            spikes = np.ones(1, dtype=bool)
        return QualityResult(
            ticks,
            [],
            problems,
            problem_ts,
            spikes,
            np.full(len(problem_ts), s, dtype=np.int64),
            problem_weight,
        )

    def scores(self, now_ns: int) -> list[SymbolQuality]:
        """Quality per symbol seen so far, ordered by sym (see score.py)."""
        v = self._validity
        f = self._flags
        return self._score.scores(now_ns, v.last.has, v.last_ts, f.latency_ms, f.latency_capability)

    def accepted_until(self) -> np.ndarray:
        """Per symbol, the latest event time of its ticks so far: no tick of the symbol
        accepted from now on is earlier (timestamps from the past are rejected)."""
        return self._validity.last_ts.copy()

    def start_session(self) -> None:
        """Count from now: the totals, tick counts and last problems the pane shows start
        again (the warm-up's history is not the session's), while the score's windows keep what
        they saw as the baseline a new session needs."""
        score = self._score
        score.ticks[:] = 0
        score.totals[:] = 0
        n = len(score.ticks)
        score._last_problem, score._last_problem_ts = [""] * n, [None] * n

    def counters(self) -> np.ndarray:
        """Totals per symbol: columns rejects, spikes, gaps, stale, latency breaches, locked
        quotes, wide spreads (the kinds of score.py, in that order)."""
        return self._score.totals.copy()
