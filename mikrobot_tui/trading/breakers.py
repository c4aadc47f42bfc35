"""Circuit breakers: stop calling a feed, a strategy, a symbol with bad data or the order path
that keeps failing, then probe it again. What fails a feed's or a symbol's breaker is judged
in trading/judges.py.

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

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from mikrobot_tui.config import BreakerSettings
from mikrobot_tui.domain.market import NS_PER_SECOND

__all__ = ["BreakerChange", "BreakerState", "CircuitBreaker"]


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


def __getattr__(name: str) -> object:
    """The judges moved to trading/judges.py; replay checkpoints pickled before still name
    them here."""
    if name in ("FeedJudge", "QualityJudge"):
        from mikrobot_tui.trading import judges

        return getattr(judges, name)
    raise AttributeError(name)
