"""The account limits on the paper venue, tick by tick: a trader long EURUSD watches the price
fall through FTMO's daily loss. At 80% of the allowance the account goes REDUCING, below the
floor it is HALTED (and flattened when configured), at the tick it happens in any batching."""

from __future__ import annotations

import numpy as np
import pytest
from venue_harness import T0, Bench

from mikrobot_tui.domain.events import EventKind
from mikrobot_tui.domain.market import NS_PER_MS, TICK_DTYPE
from mikrobot_tui.domain.orders import Order, OrderIntent, Side, TradingState

# 10,000 start: daily loss 5% = 500, REDUCING from 400 lost. Long 1 lot EURUSD from the ask
# 1.10005 ($10 a pip) and 0.1 lot USDJPY flat: at step i the bid is 1.1000 - i pips, so the
# loss is 5 + 10 i, plus 3.85 of commissions and 0.67 of USDJPY's spread: 400 is first passed
# at i = 40, 500 at i = 50.
REDUCING_AT, BREACH_AT = 40, 50


def falling(b: Bench, steps: range) -> np.ndarray:
    out = np.zeros(len(steps), dtype=TICK_DTYPE)
    for j, i in enumerate(steps):
        b.ms += 1
        ts = T0 + b.ms * NS_PER_MS
        bid = round(1.1000 - i * 0.0001, 5)
        out[j] = (ts, ts, b.quotes.index["EURUSD"], bid, round(bid + 0.00005, 5), np.nan, np.nan)
    return out


def long_eurusd(tmp_path, **risk) -> tuple[Bench, dict[int, int]]:
    b = Bench(tmp_path, accounts={"A": {"balance": 10_000.0}})
    b.with_limits(**risk)
    b.tick(("EURUSD", 1.10000, 1.10005), ("USDJPY", 150.00, 150.01))
    b.submit("EURUSD", Side.BUY, 1.0)
    b.submit("USDJPY", Side.BUY, 0.1)
    b.tick(("EURUSD", 1.10000, 1.10005), ("USDJPY", 150.00, 150.01))
    assert len(b.account.positions) == 2
    return b, {}


def step_ts(b_ms_before: int, i: int) -> int:
    """The time of falling step i when the fall started after millisecond `b_ms_before`."""
    return T0 + (b_ms_before + i) * NS_PER_MS


@pytest.mark.parametrize("batch", [1, 7, 1000])
def test_a_loss_through_the_daily_floor_goes_reducing_then_halted_and_flattens(
    tmp_path, batch
) -> None:
    b, _ = long_eurusd(tmp_path, flatten_on_breach=True)
    start = b.ms
    b.run(falling(b, range(1, 61)), batch)

    limit = [
        e for e in b.events() if e.kind in (EventKind.LIMIT_VIOLATION, EventKind.ACCOUNT_STATE)
    ]
    assert [(str(e.kind), e.payload.get("severity") or e.payload["to"]) for e in limit] == [
        ("limit_violation", "warning"),
        ("account_state", "REDUCING"),
        ("limit_violation", "breach"),
        ("account_state", "HALTED"),
    ]
    warning, reducing, breach, halted = limit
    assert warning.ts == reducing.ts == step_ts(start, REDUCING_AT)
    assert breach.ts == halted.ts == step_ts(start, BREACH_AT)
    assert warning.payload["kind"] == "daily_loss" and warning.payload["account"] == "A"
    assert 0.8 <= warning.payload["value"] < 0.82  # the first tick past 80% used
    assert breach.payload["limit"] == pytest.approx(9_500.0)
    assert breach.payload["value"] < 9_500.0
    assert reducing.payload == {
        "account": "A",
        "from": "ACTIVE",
        "to": "REDUCING",
        "reason": warning.payload["message"],
    }
    # flatten_on_breach: both positions closed at market through the operator's flatten path
    flatten = b.events(EventKind.FLATTEN)
    assert [(e.ts, e.account, e.payload) for e in flatten] == [
        (halted.ts, "A", {"positions": 2, "source": "limits"})
    ]
    closes = [
        e
        for e in b.events(EventKind.ORDER_SUBMITTED)
        if e.payload["intent"] == "close" and e.ts == halted.ts
    ]
    assert len(closes) == 2 and {c.payload["strategy"] for c in closes} == {"flatten"}
    b.tick(("USDJPY", 150.00, 150.01))  # USDJPY's close fills at its next tick
    assert not b.account.positions
    assert b.account.trading_state is TradingState.HALTED
    assert b.refold().accounts["A"].trading_state is TradingState.HALTED


def test_the_same_fall_gives_the_same_events_in_any_batching(tmp_path) -> None:
    logs = []
    for batch in (1, 5, 1000):
        b, _ = long_eurusd(tmp_path / str(batch), flatten_on_breach=True)
        b.run(falling(b, range(1, 61)), batch)
        logs.append([(e.seq, e.ts, e.kind, e.account, e.payload) for e in b.events()])
    assert logs[0] == logs[1] == logs[2]
    assert any(e[2] is EventKind.ACCOUNT_STATE for e in logs[0])


def test_an_entry_decided_before_the_halt_is_refused_when_it_arrives(tmp_path) -> None:
    b, _ = long_eurusd(tmp_path)  # no flatten: the account halts, its orders stay working
    b.run(falling(b, range(1, 46)))
    assert b.account.trading_state is TradingState.REDUCING
    late = b.submit("EURUSD", Side.SELL, 0.1, latency_ms=10)  # due at step 55, after the halt
    b.run(falling(b, range(46, 61)))
    assert b.account.trading_state is TradingState.HALTED
    rejected = [e for e in b.events(EventKind.ORDER_REJECTED) if e.payload["order_id"] == late]
    assert [e.payload["reason"] for e in rejected] == ["account A halted by its limits"]
    assert len(b.account.positions) == 2  # without flatten_on_breach the positions stay


def test_an_entry_arriving_while_reducing_is_refused_and_a_close_still_goes(tmp_path) -> None:
    b, _ = long_eurusd(tmp_path)
    b.run(falling(b, range(1, 36)))
    entry = b.submit("EURUSD", Side.BUY, 0.1, latency_ms=10)  # arrives at step 45: REDUCING
    b.run(falling(b, range(36, 46)))
    rejected = {
        e.payload["order_id"]: e.payload["reason"] for e in b.events(EventKind.ORDER_REJECTED)
    }
    assert rejected == {entry: "account A reducing: only orders that reduce exposure"}
    jpy = next(p for p in b.account.positions.values() if p.symbol == "USDJPY")
    b.submit("USDJPY", Side.SELL, 0.1, intent=OrderIntent.CLOSE, position_id=jpy.position_id)
    b.tick(("USDJPY", 150.00, 150.01))
    assert jpy.position_id not in b.account.positions  # reducing orders are never refused


def test_an_operator_resume_lifts_the_accounts_halt_and_the_next_tick_judges_afresh(
    tmp_path,
) -> None:
    b, _ = long_eurusd(tmp_path)
    b.run(falling(b, range(1, 56)))
    assert b.account.trading_state is TradingState.HALTED
    assert "1 account(s) resumed" in b.control.resume("operator")
    states = [e.payload for e in b.events(EventKind.ACCOUNT_STATE)]
    assert states[-1] == {"account": "A", "from": "HALTED", "to": "ACTIVE", "reason": "operator"}
    b.run(falling(b, range(56, 58)))  # still below the floor: halted again at the next tick
    assert b.account.trading_state is TradingState.HALTED
    assert [e.payload["to"] for e in b.events(EventKind.ACCOUNT_STATE)][-1] == "HALTED"


def entry(b: Bench, symbol: str = "EURUSD") -> Order:
    return Order("A-x", "A", symbol, Side.BUY, 0.1, OrderIntent.OPEN, b.ms_ts(b.ms), b.ms_ts(b.ms))


MINUTE_NS = 60_000_000_000


def test_four_violations_in_five_minutes_do_not_halt_the_engine_and_the_fifth_does(
    tmp_path,
) -> None:
    b = Bench(tmp_path, accounts={"A": {"balance": 10_000.0}})
    limits = b.with_limits()
    b.tick(("EURUSD", 1.10000, 1.10005))
    start = b.ms_ts(b.ms)
    # risk 80 against 0.5% of 10,000 (50): one counted violation each, a minute apart
    for minute in range(4):
        why = limits.refusal(entry(b), 80.0, None, 0, start + minute * MINUTE_NS)
        assert why is not None and "risk_per_trade" in why
    assert b.ledger.state.trading_state is TradingState.ACTIVE
    # the first four are now more than five minutes old for a sixth: still no halt
    limits.refusal(entry(b), 80.0, None, 0, start + 6 * MINUTE_NS)
    assert b.ledger.state.trading_state is TradingState.ACTIVE
    for minute in (7, 8, 9):
        limits.refusal(entry(b), 80.0, None, 0, start + minute * MINUTE_NS)
    assert b.ledger.state.trading_state is TradingState.ACTIVE  # 4 within 5 minutes
    limits.refusal(entry(b), 80.0, None, 0, start + 10 * MINUTE_NS)  # 5: minutes 6 to 10
    halted = b.events(EventKind.HALTED)
    assert [(e.ts, e.payload["source"]) for e in halted] == [(start + 10 * MINUTE_NS, "limits")]
    assert "risk 80.00 to the stop" in halted[0].payload["reason"]


def test_violations_of_a_state_or_a_full_book_do_not_count_towards_the_halt(tmp_path) -> None:
    b = Bench(tmp_path, accounts={"A": {"balance": 10_000.0}})
    limits = b.with_limits(max_positions=1)
    b.tick(("EURUSD", 1.10000, 1.10005))
    b.submit("EURUSD", Side.BUY, 0.1)
    b.tick(("EURUSD", 1.10000, 1.10005))
    start = b.ms_ts(b.ms)
    for i in range(6):  # max_positions, six times in a minute: routine
        why = limits.refusal(entry(b), 1.0, None, 0, start + i * NS_PER_MS)
        assert why is not None and "max positions" in why
    b.ledger.emit(
        start,
        EventKind.ACCOUNT_STATE,
        "A",
        {"account": "A", "from": "ACTIVE", "to": "REDUCING", "reason": "test"},
    )
    limits.books["A"].state = TradingState.REDUCING
    for i in range(6):  # reducing (and max positions): the consequence of a state
        limits.refusal(entry(b), 1.0, None, 0, start + i * NS_PER_MS)
    kinds = {e.payload["kind"] for e in b.events(EventKind.LIMIT_VIOLATION)}
    assert kinds == {"max_positions", "reducing"}
    assert b.ledger.state.trading_state is TradingState.ACTIVE
    assert not b.events(EventKind.HALTED)
