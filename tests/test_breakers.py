"""Circuit breakers: every transition, with explicit timestamps."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mikrobot_tui.config import BreakerSettings
from mikrobot_tui.trading.breakers import BreakerChange, BreakerState, CircuitBreaker
from mikrobot_tui.trading.judges import FeedJudge

S = 1_000_000_000
T0 = 1_700_000_000 * S
TIMEOUT = 30 * S


def breaker() -> CircuitBreaker:
    return CircuitBreaker.from_settings("feed:sim", BreakerSettings())


def opened(at: int = T0) -> CircuitBreaker:
    b = breaker()
    for i in range(5):
        b.record_failure(at - (4 - i) * S, "timeout")
    assert b.state is BreakerState.OPEN
    return b


def half_open(at: int = T0) -> CircuitBreaker:
    b = opened(at)
    allowed, change = b.allow(at + TIMEOUT)
    assert allowed and change is not None
    return b


def test_defaults_come_from_breaker_settings() -> None:
    b = breaker()
    assert (b.failure_threshold, b.reset_timeout_ns, b.success_threshold) == (5, TIMEOUT, 3)
    assert b.state is BreakerState.CLOSED
    assert b.allow(T0) == (True, None)
    custom = CircuitBreaker.from_settings(
        "x", BreakerSettings(failure_threshold=2, reset_timeout_s=0.5, success_threshold=1)
    )
    assert (custom.failure_threshold, custom.reset_timeout_ns, custom.success_threshold) == (
        2,
        S // 2,
        1,
    )


def test_five_consecutive_failures_open_it() -> None:
    b = breaker()
    for i in range(4):
        assert b.record_failure(T0 + i * S, f"error {i}") is None
        assert b.state is BreakerState.CLOSED
    assert b.failures == 4
    change = b.record_failure(T0 + 4 * S, "connection reset")
    assert change == BreakerChange(
        name="feed:sim",
        old_state=BreakerState.CLOSED,
        new_state=BreakerState.OPEN,
        ts=T0 + 4 * S,
        failures=5,
        retry_ts=T0 + 4 * S + TIMEOUT,
        reason="5 consecutive failures; last: connection reset",
    )
    assert b.state is BreakerState.OPEN
    assert b.opened_ts == T0 + 4 * S
    assert b.retry_ts == T0 + 34 * S
    assert b.allow(T0 + 5 * S) == (False, None)


def test_a_success_while_closed_resets_the_failure_count() -> None:
    b = breaker()
    for i in range(4):
        b.record_failure(T0 + i, "e")
    assert b.record_success(T0 + 10) is None
    assert b.failures == 0
    for i in range(4):
        assert b.record_failure(T0 + 20 + i, "e") is None
    assert b.state is BreakerState.CLOSED  # 4 + 4 failures, never 5 in a row


def test_open_refuses_until_the_retry_time_then_goes_half_open() -> None:
    b = opened(T0)
    assert b.allow(T0 + TIMEOUT - 1) == (False, None)
    assert b.poll(T0 + TIMEOUT - 1) is None
    assert b.state is BreakerState.OPEN
    allowed, change = b.allow(T0 + TIMEOUT)  # exactly at the retry time
    assert allowed
    assert change is not None
    assert (change.old_state, change.new_state) == (BreakerState.OPEN, BreakerState.HALF_OPEN)
    assert change.ts == T0 + TIMEOUT
    assert change.retry_ts is None
    assert change.failures == 5
    assert "retry after 30 s" in change.reason
    assert b.state is BreakerState.HALF_OPEN
    assert b.opened_ts == T0  # kept through HALF_OPEN
    assert b.allow(T0 + TIMEOUT + 1) == (True, None)  # no second change


def test_poll_makes_the_time_based_move_without_a_call() -> None:
    b = opened(T0)
    change = b.poll(T0 + TIMEOUT + 5 * S)  # later than the retry time is fine too
    assert change is not None and change.new_state is BreakerState.HALF_OPEN
    assert b.poll(T0 + TIMEOUT + 6 * S) is None


def test_late_outcomes_while_open_change_nothing() -> None:
    b = opened(T0)
    assert b.record_success(T0 + S) is None
    assert b.record_failure(T0 + 2 * S, "late") is None
    assert b.state is BreakerState.OPEN
    assert b.retry_ts == T0 + TIMEOUT  # not extended by the late failure
    assert b.failures == 6
    assert b.last_reason == "late"


def test_three_successes_while_half_open_close_it() -> None:
    b = half_open(T0)
    t = T0 + TIMEOUT
    assert b.record_success(t + 1) is None
    assert b.record_success(t + 2) is None
    assert b.successes == 2
    change = b.record_success(t + 3)
    assert change is not None
    assert (change.old_state, change.new_state) == (BreakerState.HALF_OPEN, BreakerState.CLOSED)
    assert change.ts == t + 3
    assert change.failures == 0
    assert change.retry_ts is None
    assert change.reason == "3 consecutive successes while half-open"
    assert b.state is BreakerState.CLOSED
    assert (b.failures, b.successes, b.opened_ts, b.retry_ts) == (0, 0, None, None)
    # closed again: it takes five fresh failures to open it
    for i in range(4):
        assert b.record_failure(t + 10 + i, "e") is None


def test_a_failure_while_half_open_reopens_with_a_new_timeout() -> None:
    b = half_open(T0)
    t = T0 + TIMEOUT
    b.record_success(t + 1)
    b.record_success(t + 2)
    change = b.record_failure(t + 3, "bad frame")
    assert change is not None
    assert (change.old_state, change.new_state) == (BreakerState.HALF_OPEN, BreakerState.OPEN)
    assert change.retry_ts == t + 3 + TIMEOUT
    assert change.reason == "failure while half-open: bad frame"
    assert b.state is BreakerState.OPEN
    assert b.opened_ts == t + 3
    assert b.successes == 0
    assert b.allow(t + 3 + TIMEOUT - 1) == (False, None)
    allowed, again = b.allow(t + 3 + TIMEOUT)
    assert allowed and again is not None and again.new_state is BreakerState.HALF_OPEN
    # the earlier two successes do not count: three new ones are needed
    assert b.record_success(t + 3 + TIMEOUT + 1) is None
    assert b.record_success(t + 3 + TIMEOUT + 2) is None
    assert b.record_success(t + 3 + TIMEOUT + 3) is not None


def test_restore_from_the_last_change_event_payload() -> None:
    b2 = half_open(T0)
    reopen = b2.record_failure(T0 + TIMEOUT + 1, "bad")
    assert reopen is not None
    payload = json.loads(json.dumps(reopen.to_payload()))  # through the event log's JSON
    assert BreakerChange.from_payload(payload) == reopen

    fresh = breaker()
    fresh.restore(BreakerChange.from_payload(payload))
    assert fresh.state is BreakerState.OPEN
    assert fresh.retry_ts == T0 + TIMEOUT + 1 + TIMEOUT
    assert fresh.opened_ts == T0 + TIMEOUT + 1
    assert fresh.failures == reopen.failures
    assert fresh.allow(fresh.retry_ts - 1) == (False, None)
    assert fresh.allow(fresh.retry_ts)[0] is True

    closed = breaker()
    closed.restore(
        BreakerChange("feed:sim", BreakerState.HALF_OPEN, BreakerState.CLOSED, T0, 0, None, "")
    )
    assert closed.state is BreakerState.CLOSED and closed.retry_ts is None

    with pytest.raises(ValueError, match="strategy:A"):
        breaker().restore(
            BreakerChange("strategy:A", BreakerState.CLOSED, BreakerState.OPEN, T0, 5, T0, "")
        )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"failure_threshold": 0}, "failure_threshold"),
        ({"success_threshold": 0}, "success_threshold"),
        ({"reset_timeout_ns": 0}, "reset_timeout_ns"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, int], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        CircuitBreaker("x", **kwargs)


# --- FeedJudge: the feed breaker, one second of stream time at a time -----------------------


SEC = 1_000_000_000


def judged(problem_seconds: list[int], seconds: range, until: int):
    judge = FeedJudge(CircuitBreaker("feed:test", 3, 30 * SEC, 2))
    ts = np.array([s * SEC + 1 for s in seconds], dtype=np.int64)
    judge.note(ts, np.array([s * SEC + 5 for s in problem_seconds], dtype=np.int64))
    return judge, judge.until(until * SEC)


def test_three_bad_seconds_in_a_row_open_the_feed_breaker_at_the_end_of_the_third() -> None:
    _, changes = judged([10, 11, 12], range(0, 20), until=20)
    assert [(c.new_state, c.ts) for c in changes] == [(BreakerState.OPEN, 13 * SEC)]


def test_a_second_is_not_judged_before_it_has_ended() -> None:
    judge, changes = judged([10, 11, 12], range(0, 20), until=12)  # second 12 still running
    assert changes == [] and judge.breaker.failures == 2
    assert [c.new_state for c in judge.until(13 * SEC)] == [BreakerState.OPEN]


def test_a_clean_second_between_bad_ones_resets_the_count() -> None:
    judge, changes = judged([10, 11, 13, 14], range(0, 20), until=20)
    assert changes == [] and judge.breaker.failures == 0


def test_the_breaker_half_opens_after_its_timeout_and_closes_on_clean_seconds() -> None:
    _, changes = judged([10, 11, 12], range(0, 60), until=60)
    assert [(c.new_state, c.ts) for c in changes] == [
        (BreakerState.OPEN, 13 * SEC),
        (BreakerState.HALF_OPEN, 43 * SEC),  # second 42 ends at 13 + 30: probe it
        (BreakerState.CLOSED, 44 * SEC),  # seconds 42 and 43 clean: two successes
    ]


def test_noting_in_pieces_judges_the_same_as_at_once() -> None:
    _, expected = judged([3, 4, 5, 40], range(0, 80), until=80)
    judge = FeedJudge(CircuitBreaker("feed:test", 3, 30 * SEC, 2))
    got = []
    for s in range(0, 80):
        bad = [s * SEC + 5] if s in (3, 4, 5, 40) else []
        judge.note(np.array([s * SEC + 1]), np.array(bad, dtype=np.int64))
        got += judge.until(s * SEC + 1)
    got += judge.until(80 * SEC)
    assert got == expected
