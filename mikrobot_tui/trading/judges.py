"""Judges that drive breakers from market time: the feed's, second by second, and each
symbol's data quality, at its decision points. Both rule only on what happened before the time
they judge, so their breakers change identically whatever the batch size."""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from mikrobot_tui.config import BreakerSettings
from mikrobot_tui.domain.market import NS_PER_SECOND
from mikrobot_tui.trading.breakers import BreakerChange, BreakerState, CircuitBreaker

_SMALL = 16  # batches up to this many ticks are noted tick by tick


class FeedJudge:
    """Drives a feed's breaker one second of stream time at a time.

    A second in which the feed delivered ticks is a failure when any of them had a data
    problem, a success otherwise; a second without ticks is not judged (the gap shows up as a
    problem on the tick that ends it). `note` records what a batch covered; `until(ts)` judges
    every noted second that ended by `ts`. The engine calls `until` right before anything at
    a later time happens (a fill, an exit, a decision), so the breaker never knows the future
    of its batch and its changes fall in the same place in the event log whatever the batch
    size. While the breaker is closed and clean, a run of clean seconds changes nothing and is
    skipped in one go.

    A live feed's own failures (a dropped or stale connection, a frame it had to reject) are
    problems too: `fail(ts, reason)` marks the second of `ts` (or, when the stream is already
    past it, the stream's latest second) as failed and has it judged even without ticks in it.
    A replay has no connections and never calls it, so its event log does not change.
    """

    SECOND_NS = NS_PER_SECOND

    def __init__(self, breaker: CircuitBreaker) -> None:
        self.breaker = breaker
        self._pending: deque[int] = deque()  # seconds seen, not yet judged, ascending
        self._bad: set[int] = set()
        self._why: dict[int, str] = {}  # a failed second's reason, when not the data's
        self._noted = -1
        self._stream = 0  # running maximum of the event times seen

    def note(self, ts_event: np.ndarray, problem_ts: np.ndarray) -> None:
        """A batch's tick times (arrival order) and the stream times of its problems."""
        if 0 < len(ts_event) <= _SMALL:  # a quiet live feed's batch: Python is cheaper
            top, noted = self._stream, self._noted
            for t in ts_event.tolist():
                top = max(top, t)
                if top // self.SECOND_NS > noted:
                    noted = top // self.SECOND_NS
                    self._pending.append(noted)
            self._stream, self._noted = top, noted
        elif len(ts_event):
            stream = np.maximum.accumulate(ts_event)
            np.maximum(stream, self._stream, out=stream)
            self._stream = int(stream[-1])
            seconds = stream // self.SECOND_NS  # ascending
            firsts = seconds[np.r_[0, np.flatnonzero(np.diff(seconds)) + 1]]
            new = firsts[firsts > self._noted]
            if len(new):
                self._pending.extend(new.tolist())
                self._noted = int(new[-1])
        if len(problem_ts):
            self._bad.update(t // self.SECOND_NS for t in problem_ts.tolist())

    def fail(self, ts: int, reason: str) -> int:
        """A failure of the feed itself at wall time `ts`; the second it is judged in."""
        second = max(ts // self.SECOND_NS, self._noted)
        if not self._pending or self._pending[-1] < second:
            self._pending.append(second)
        self._noted = max(self._noted, second)
        self._bad.add(second)
        self._why.setdefault(second, reason)
        return second

    def until(self, ts: int) -> list[BreakerChange]:
        """Judge every noted second that ended at or before `ts`; the breaker's changes.

        Seconds whose judgement cannot change anything are passed over in one go: clean ones
        while the breaker is closed with no failures, and any while it is open and its retry
        time has not come (an open breaker ignores both outcomes).
        """
        cut = ts // self.SECOND_NS
        pending, bad, breaker = self._pending, self._bad, self.breaker
        changes: list[BreakerChange] = []
        while pending and pending[0] < cut:
            state = breaker.state
            if state is BreakerState.CLOSED and breaker.failures == 0:
                limit = min(cut, min(bad)) if bad else cut  # up to the first bad second
                while pending and pending[0] < limit:
                    pending.popleft()
                if not pending or pending[0] >= cut:
                    break
            elif state is BreakerState.OPEN and breaker.retry_ts is not None:
                limit = min(cut, breaker.retry_ts // self.SECOND_NS - 1)  # ends before retry
                while pending and pending[0] < limit:
                    gone = pending.popleft()
                    bad.discard(gone)
                    self._why.pop(gone, None)
                if not pending or pending[0] >= cut:
                    break
            second = pending.popleft()
            failed = second in bad
            bad.discard(second)
            why = self._why.pop(second, "data-quality problems") if self._why else None
            end = (second + 1) * self.SECOND_NS
            for change in (breaker.poll(end), self._record(end, failed, why)):
                if change is not None:
                    changes.append(change)
        return changes

    def _record(self, end: int, failed: bool, why: str | None = None) -> BreakerChange | None:
        if self.breaker.state is BreakerState.OPEN:
            return None
        if failed:
            return self.breaker.record_failure(end, why or "data-quality problems")
        return self.breaker.record_success(end)


class QualityJudge:
    """One breaker per symbol, `quality:<SYMBOL>`, driven by the symbol's data-quality score.

    The score is the quality monitor's (data/quality/score.py): each problem weighs its kind's
    weight, fading linearly over the window from the middle of its one-second bucket, and the
    score is exp(-sum). Here it is taken at a decision point's time T over the problems seen
    at stream times strictly before T, never from the rest of the batch, so it is the same
    whatever the batch size (the monitor's own score is taken at the end of a batch). The
    silence term is left out: a symbol is judged at one of its own ticks, so it is not silent.

    `judge(sym, T)` is called at each decision point of the symbol (a bar it closed, a
    signal on it), at most once per point: a score under `min_quality` is a failure, and one
    failure opens the breaker (the score already sums a window of problems); at or above it,
    a success. The breaker's own rules do the rest: OPEN until `reset_timeout_s` has passed,
    then HALF_OPEN, closed by `success_threshold` good scores in a row, reopened by a bad one.
    While it is OPEN the symbol takes no new orders; orders that close positions (a bracket's
    stop and target, a flatten) never pass a breaker. `min_quality` 0 turns it off.
    """

    SECOND_NS = NS_PER_SECOND

    def __init__(self, symbols: list[str], settings: BreakerSettings, window_ns: int) -> None:
        self.symbols = list(symbols)
        self.min_quality = float(settings.min_quality)
        self.window_ns = int(window_ns)
        reset = round(settings.reset_timeout_s * NS_PER_SECOND)
        self.breakers = [
            CircuitBreaker(f"quality:{s}", 1, reset, settings.success_threshold)
            for s in self.symbols
        ]
        n = len(self.symbols)
        # per symbol: (stream time, middle of its one-second bucket, weight), in stream order
        self._problems: list[deque[tuple[int, int, float]]] = [deque() for _ in range(n)]
        # per symbol: no tick of it from here on is earlier (problems that faded out by then
        # can go)
        self._floor = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
        self._judged: list[int | None] = [None] * n

    @property
    def enabled(self) -> bool:
        return self.min_quality > 0

    def note(
        self,
        problem_ts: np.ndarray,
        problem_sym: np.ndarray,
        problem_weight: np.ndarray,
        accepted_until: np.ndarray,
    ) -> None:
        """A batch's problems (stream times, symbols, weights) and, per symbol, the latest
        tick time after it (QualityMonitor.accepted_until)."""
        if not self.enabled:
            return
        if len(problem_ts):
            second, window, n = self.SECOND_NS, self.window_ns, len(self._problems)
            order = np.argsort(problem_ts, kind="stable")
            touched = set()
            for t, s, w in zip(
                problem_ts[order].tolist(),
                problem_sym[order].tolist(),
                problem_weight[order].tolist(),
                strict=True,
            ):
                if 0 <= s < n:
                    self._problems[s].append((t, t // second * second + second // 2, w))
                    touched.add(s)
            for s in touched:  # what faded out before the symbol's next tick can go
                q, floor = self._problems[s], int(self._floor[s])
                while q and q[0][1] + window <= floor:
                    q.popleft()
        self._floor = accepted_until

    def score(self, sym: int, ts: int) -> float:
        """The symbol's score at stream time `ts`, from the problems seen before it.

        A symbol is judged at its own accepted ticks, whose times never go back (validity
        rejects a tick from the past), so a problem that has faded out by `ts` stays faded
        for every later call and goes now: the scan covers the window, not everything noted
        since the batch began (a sparse feed notes a gap at almost every tick)."""
        penalty, window = 0.0, self.window_ns
        problems = self._problems[sym]
        while problems and problems[0][1] + window <= ts:
            problems.popleft()
        for t, mid, w in problems:
            if t >= ts:
                break
            fade = 1.0 - max(ts - mid, 0) / window
            if fade > 0:
                penalty += fade * w
        return math.exp(-penalty)

    def judge(self, sym: int, ts: int) -> list[BreakerChange]:
        """Judge the symbol's score at a decision point at `ts`; the breaker's changes."""
        if not self.enabled or self._judged[sym] == ts:
            return []
        self._judged[sym] = ts
        breaker = self.breakers[sym]
        changes = [breaker.poll(ts)]
        if breaker.state is not BreakerState.OPEN:
            score = self.score(sym, ts)
            if score < self.min_quality:
                reason = f"quality score {score:.3f} < {self.min_quality:g}"
                changes.append(breaker.record_failure(ts, reason))
            else:
                changes.append(breaker.record_success(ts))
        return [c for c in changes if c is not None]
