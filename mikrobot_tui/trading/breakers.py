"""Circuit breakers: stop calling a feed, a strategy, a symbol with bad data or the order path
that keeps failing, then probe it again.

CLOSED    traffic flows; `failure_threshold` consecutive failures open the breaker (a success
          resets the count).
OPEN      traffic is refused until `retry_ts` = opened_ts + reset_timeout. The first allow() or
          poll() at or after retry_ts moves it to HALF_OPEN.
HALF_OPEN traffic flows as probes; `success_threshold` consecutive successes close it, any
          failure re-opens it with a fresh timeout.

A breaker never reads a clock: every call takes `now_ns`. Only allow() and poll() make the
time-based OPEN -> HALF_OPEN move, so call one of them before recording an outcome; a success or
failure recorded while OPEN is counted but changes nothing (a late answer to a call made before
the breaker opened).

Every state change returns a BreakerChange; the engine appends it as a `breaker_changed` event
(`change.to_payload()`) and, on restart, rebuilds the breaker with `restore(change)` from the
last one. Counts inside a state (failures while CLOSED, successes while HALF_OPEN) are not
events, so a restart forgets them: a restored HALF_OPEN breaker starts its probe count from 0.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from mikrobot_tui.config import BreakerSettings
from mikrobot_tui.domain.market import NS_PER_SECOND

__all__ = ["BreakerChange", "BreakerState", "CircuitBreaker", "FeedJudge", "QualityJudge"]


class BreakerState(StrEnum):
    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"


@dataclass(frozen=True, slots=True)
class BreakerChange:
    name: str  # "feed:sim", "strategy:A"
    old_state: BreakerState
    new_state: BreakerState
    ts: int  # ns, when the change happened
    failures: int  # consecutive failures at the change
    retry_ts: int | None  # when an OPEN breaker lets a probe through; None otherwise
    reason: str

    def to_payload(self) -> dict[str, Any]:
        """JSON-able dict for the `breaker_changed` event."""
        return {
            "name": self.name,
            "old_state": str(self.old_state),
            "new_state": str(self.new_state),
            "ts": self.ts,
            "failures": self.failures,
            "retry_ts": self.retry_ts,
            "reason": self.reason,
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> BreakerChange:
        retry = payload.get("retry_ts")
        return cls(
            name=str(payload["name"]),
            old_state=BreakerState(payload["old_state"]),
            new_state=BreakerState(payload["new_state"]),
            ts=int(payload["ts"]),
            failures=int(payload["failures"]),
            retry_ts=None if retry is None else int(retry),
            reason=str(payload.get("reason", "")),
        )


class CircuitBreaker:
    """One breaker per feed and per strategy; see the module docstring for the states."""

    __slots__ = (
        "_failures",
        "_last_reason",
        "_opened_ts",
        "_retry_ts",
        "_state",
        "_successes",
        "failure_threshold",
        "name",
        "reset_timeout_ns",
        "success_threshold",
    )

    def __init__(
        self,
        name: str,
        failure_threshold: int = 5,
        reset_timeout_ns: int = 30 * NS_PER_SECOND,
        success_threshold: int = 3,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be >= 1, got {failure_threshold}")
        if success_threshold < 1:
            raise ValueError(f"success_threshold must be >= 1, got {success_threshold}")
        if reset_timeout_ns <= 0:
            raise ValueError(f"reset_timeout_ns must be > 0, got {reset_timeout_ns}")
        self.name = name
        self.failure_threshold = int(failure_threshold)
        self.reset_timeout_ns = int(reset_timeout_ns)
        self.success_threshold = int(success_threshold)
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._successes = 0
        self._opened_ts: int | None = None
        self._retry_ts: int | None = None
        self._last_reason = ""

    @classmethod
    def from_settings(cls, name: str, settings: BreakerSettings) -> CircuitBreaker:
        return cls(
            name,
            failure_threshold=settings.failure_threshold,
            reset_timeout_ns=round(settings.reset_timeout_s * NS_PER_SECOND),
            success_threshold=settings.success_threshold,
        )

    # --- read-only state -------------------------------------------------------------------

    @property
    def state(self) -> BreakerState:
        return self._state

    @property
    def failures(self) -> int:
        """Consecutive failures (reset by a success while CLOSED and by closing)."""
        return self._failures

    @property
    def successes(self) -> int:
        """Consecutive successes while HALF_OPEN."""
        return self._successes

    @property
    def opened_ts(self) -> int | None:
        """When the breaker last opened; kept through HALF_OPEN, None once CLOSED."""
        return self._opened_ts

    @property
    def retry_ts(self) -> int | None:
        """When an OPEN breaker will let a probe through; None in the other states."""
        return self._retry_ts

    @property
    def last_reason(self) -> str:
        """The reason given with the last recorded failure."""
        return self._last_reason

    # --- transitions -----------------------------------------------------------------------

    def _move(self, new: BreakerState, now_ns: int, reason: str) -> BreakerChange:
        old = self._state
        self._state = new
        if new is BreakerState.OPEN:
            self._opened_ts = now_ns
            self._retry_ts = now_ns + self.reset_timeout_ns
            self._successes = 0
        elif new is BreakerState.HALF_OPEN:
            self._retry_ts = None
            self._successes = 0
        else:
            self._opened_ts = None
            self._retry_ts = None
            self._failures = 0
            self._successes = 0
        return BreakerChange(
            name=self.name,
            old_state=old,
            new_state=new,
            ts=now_ns,
            failures=self._failures,
            retry_ts=self._retry_ts,
            reason=reason,
        )

    def poll(self, now_ns: int) -> BreakerChange | None:
        """Time-based transition only: OPEN -> HALF_OPEN once now_ns >= retry_ts."""
        if (
            self._state is BreakerState.OPEN
            and self._retry_ts is not None
            and now_ns >= self._retry_ts
        ):
            waited = (now_ns - (self._opened_ts or now_ns)) / NS_PER_SECOND
            return self._move(
                BreakerState.HALF_OPEN, now_ns, f"retry after {waited:g} s open: probing"
            )
        return None

    def allow(self, now_ns: int) -> tuple[bool, BreakerChange | None]:
        """Whether a call may go through now, and the OPEN -> HALF_OPEN change if one happened."""
        change = self.poll(now_ns)
        return self._state is not BreakerState.OPEN, change

    def record_success(self, now_ns: int) -> BreakerChange | None:
        if self._state is BreakerState.CLOSED:
            self._failures = 0
            return None
        if self._state is BreakerState.HALF_OPEN:
            self._successes += 1
            if self._successes >= self.success_threshold:
                n = self._successes
                return self._move(
                    BreakerState.CLOSED, now_ns, f"{n} consecutive successes while half-open"
                )
        return None  # OPEN: a late success changes nothing

    def record_failure(self, now_ns: int, reason: str) -> BreakerChange | None:
        self._last_reason = reason
        self._failures += 1
        if self._state is BreakerState.CLOSED:
            if self._failures >= self.failure_threshold:
                return self._move(
                    BreakerState.OPEN,
                    now_ns,
                    f"{self._failures} consecutive failures; last: {reason}",
                )
            return None
        if self._state is BreakerState.HALF_OPEN:
            return self._move(BreakerState.OPEN, now_ns, f"failure while half-open: {reason}")
        return None  # OPEN: counted, but the timeout is not extended

    # --- persistence -----------------------------------------------------------------------

    def restore(self, change: BreakerChange) -> None:
        """Put the breaker in the state a BreakerChange (the last event) left it in."""
        if change.name != self.name:
            raise ValueError(f"change for {change.name!r} cannot restore breaker {self.name!r}")
        self._state = change.new_state
        self._failures = change.failures
        self._successes = 0
        if change.new_state is BreakerState.OPEN:
            self._opened_ts = change.ts
            self._retry_ts = (
                change.retry_ts
                if change.retry_ts is not None
                else change.ts + self.reset_timeout_ns
            )
        else:
            self._opened_ts = None
            self._retry_ts = None

    def __repr__(self) -> str:
        return (
            f"CircuitBreaker({self.name!r}, {self._state}, failures={self._failures}, "
            f"successes={self._successes}, retry_ts={self._retry_ts})"
        )


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
        if len(ts_event):
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
            self._bad.update((problem_ts // self.SECOND_NS).tolist())

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
        """The symbol's score at stream time `ts`, from the problems seen before it."""
        penalty, window = 0.0, self.window_ns
        for t, mid, w in self._problems[sym]:
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
