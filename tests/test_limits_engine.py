"""The account limits in the real engine: replays through SQLite, as a trader runs them.

The tight setting: risk_per_trade 1% against a daily loss of 1% (both 100 on 10,000). The
limits let the first entry go (every stop hit leaves equity at the floor, not below), but a
stop-out costs the risk plus commissions and spread: the account goes REDUCING as the trade
sinks and HALTED when it passes the floor.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from engine_data import FAST_ACCOUNTS, FULL_RISK, T0, replay, waves
from test_cli import invoke

from mikrobot_tui.clock import ReplayClock
from mikrobot_tui.data.feeds import ReplayFeed
from mikrobot_tui.domain.events import EventKind
from mikrobot_tui.domain.market import NS_PER_SECOND
from mikrobot_tui.domain.orders import TradingState
from mikrobot_tui.engine import Engine
from mikrobot_tui.engine.limits import STORM_WINDOW_NS, UNCOUNTED
from mikrobot_tui.engine.runner import Runner
from mikrobot_tui.paper.portfolio import EngineState, apply
from mikrobot_tui.store import commands
from mikrobot_tui.store.events import read_events

TIGHT = {"risk_per_trade": 0.01, "daily_loss_pct": 1.0, "flatten_on_breach": True}
HOUR = 3600 * NS_PER_SECOND


@pytest.fixture
def tight(make_settings):
    return make_settings(
        orchestrator=FULL_RISK, accounts=FAST_ACCOUNTS, paper={"latency_ms": 50}, risk=TIGHT
    )


def events(engine, *kinds):
    engine.writer.flush()
    return [e for e in read_events(engine.conn) if not kinds or e.kind in kinds]


def test_an_account_losing_through_its_daily_floor_goes_reducing_then_halted_and_flat(
    tight, tmp_path
) -> None:
    engine = replay(tight, waves(3000), tmp_path / "breach", batch=1000)
    for name in ("A", "B"):
        # the trading events: each is followed by the alert it calls for (tested apart)
        mine = [e for e in events(engine) if e.account == name and e.kind is not EventKind.ALERT]
        states = [e.payload["to"] for e in mine if e.kind is EventKind.ACCOUNT_STATE]
        assert states[-1] == "HALTED" and "REDUCING" in states
        halted = next(
            e for e in mine if e.kind is EventKind.ACCOUNT_STATE and e.payload["to"] == "HALTED"
        )
        breach = mine[mine.index(halted) - 1]
        assert breach.kind is EventKind.LIMIT_VIOLATION and breach.ts == halted.ts
        assert breach.payload["severity"] == "breach" and breach.payload["value"] < 9_900.0
        flatten = mine[mine.index(halted) + 1]
        assert (flatten.kind, flatten.ts, flatten.payload["source"]) == (
            EventKind.FLATTEN,
            halted.ts,
            "limits",
        )
        # no entry after the halt; every later signal refused as halted
        later = mine[mine.index(halted) + 1 :]
        entries = [
            e
            for e in later
            if e.kind is EventKind.ORDER_SUBMITTED and e.payload["intent"] == "open"
        ]
        assert not entries
        assert all(
            e.payload["kind"] == "halted" for e in later if e.kind is EventKind.LIMIT_VIOLATION
        )
        assert not engine.state.accounts[name].positions
        assert engine.state.accounts[name].trading_state is TradingState.HALTED
    # the engine itself goes on: only the accounts halted, and halted is not counted
    assert engine.trading_state is TradingState.ACTIVE


def test_the_breach_is_the_same_in_any_batch_size(make_settings, tmp_path) -> None:
    logs = []
    for batch in (7, 1000):
        db = tmp_path / f"b{batch}.db"
        settings = make_settings(
            orchestrator=FULL_RISK,
            accounts=FAST_ACCOUNTS,
            paper={"latency_ms": 50},
            risk=TIGHT,
            engine={"db": db},
        )
        engine = replay(settings, waves(2000), tmp_path / f"b{batch}", batch=batch)
        logs.append([(e.ts, e.kind, e.account, e.payload) for e in events(engine)])
        engine.close()
    assert logs[0] == logs[1]
    assert any(e[1] is EventKind.ACCOUNT_STATE for e in logs[0])


def test_a_restarted_engine_keeps_the_halt_and_the_days_figures(tight, tmp_path) -> None:
    ticks = waves(4000)
    engine = replay(tight, ticks[:3000], tmp_path / "first", batch=1000)
    ts = engine.state.last_ts
    before = {
        name: engine.limits.book(acct, ts).status() for name, acct in engine.state.accounts.items()
    }
    assert {s.trading_state for s in before.values()} == {TradingState.HALTED}
    assert all(s.trades_today > 0 for s in before.values())
    engine.close()  # as after kill -9: nothing but the database survives

    again = replay(tight, ticks[3000:], tmp_path / "second", batch=1000)  # a new file
    for name, was in before.items():
        acct = again.state.accounts[name]
        assert acct.trading_state is TradingState.HALTED
        now = again.limits.book(acct, ts).status()
        assert now.day_start_balance == was.day_start_balance == 10_000.0
        assert now.trades_today == was.trades_today  # a halted account enters nothing
        assert now.trading_state is TradingState.HALTED
    new = [e for e in events(again) if e.ts > ts]
    assert not [e for e in new if e.kind is EventKind.POSITION_OPENED]


def test_a_replay_resumed_from_its_checkpoint_keeps_the_day(tight, tmp_path) -> None:
    ticks = waves(3000)
    engine = replay(tight, ticks, tmp_path / "run", batch=1000)
    figures = {
        n: engine.limits.book(a, engine.state.last_ts).status()
        for n, a in engine.state.accounts.items()
    }
    engine.close()
    feed = ReplayFeed(tmp_path / "run.npz", batch_size=1000)
    resumed = Engine(tight, feed=feed, clock=ReplayClock())
    assert resumed.resumed_at == len(ticks)
    for n, a in resumed.state.accounts.items():
        status = resumed.limits.book(a, resumed.state.last_ts).status()
        assert (status.trading_state, status.day_start_balance, status.trades_today) == (
            figures[n].trading_state,
            figures[n].day_start_balance,
            figures[n].trades_today,
        )
    resumed.close()


def across_prague_midnight(n: int) -> np.ndarray:
    """`waves` moved to start at 21:00 UTC on 1 January: Prague's midnight (CET, UTC+1) is
    23:00 UTC, two hours in."""
    ticks = waves(n)
    shift = 21 * HOUR
    ticks["ts_event"] += shift
    ticks["ts_recv"] += shift
    return ticks


def test_the_ftmo_day_starts_at_midnight_in_prague_with_that_moments_balance(
    make_settings, tmp_path
) -> None:
    settings = make_settings(
        orchestrator=FULL_RISK,
        accounts=FAST_ACCOUNTS,
        paper={"latency_ms": 50},
        risk={"max_trades_per_day": 10_000},
    )
    engine = replay(settings, across_prague_midnight(6000), tmp_path / "day", batch=1000)
    midnight = T0 + 23 * HOUR
    before = EngineState()
    for e in events(engine):
        if e.ts < midnight:
            apply(before, e)
    for name, acct in engine.state.accounts.items():
        at_midnight = before.accounts[name].balance
        assert at_midnight != 10_000.0  # it traded (and paid) before midnight
        status = engine.limits.book(acct, engine.state.last_ts).status()
        assert status.day_start_ns == midnight
        assert status.day_start_balance == pytest.approx(at_midnight)
        assert status.daily_floor == pytest.approx(at_midnight - 500.0)
        entries = [
            e
            for e in events(engine, EventKind.ORDER_SUBMITTED)
            if e.account == name
            and e.ts >= midnight
            and e.payload["intent"] == "open"
            and e.payload.get("parent_id") is None
        ]
        assert status.trades_today == len(entries) > 0


def test_five_violations_within_five_minutes_halt_the_engine_and_four_do_not(
    make_settings, tmp_path
) -> None:
    # a daily loss of 0.1% (10): every entry's worst case breaks it, so each signal is a
    # violation on record; the fifth within five minutes of market time halts the engine
    settings = make_settings(
        orchestrator=FULL_RISK, accounts=FAST_ACCOUNTS, risk={"daily_loss_pct": 0.1}
    )
    engine = replay(settings, waves(2000), tmp_path / "storm", batch=1000)
    log = events(engine)
    halts = [e for e in log if e.kind is EventKind.HALTED]
    assert [h.payload["source"] for h in halts] == ["limits"]
    counted = [
        e
        for e in log
        if e.kind is EventKind.LIMIT_VIOLATION
        and e.payload["kind"] not in UNCOUNTED
        and e.seq < halts[0].seq
    ]
    spans = [counted[j].ts - counted[j - 4].ts for j in range(4, len(counted))]
    # the halt came at the first violation that made five within the window, never earlier
    assert spans[-1] <= STORM_WINDOW_NS
    assert all(span > STORM_WINDOW_NS for span in spans[:-1])
    assert halts[0].ts == counted[-1].ts
    assert "5 limit violations within 5 minutes" in halts[0].payload["reason"]
    assert counted[-1].payload["message"] in halts[0].payload["reason"]
    assert engine.trading_state is TradingState.HALTED


def test_reduce_lets_only_reducing_orders_go_and_resume_lifts_it(make_settings, tmp_path) -> None:
    settings = make_settings(
        orchestrator=FULL_RISK, accounts=FAST_ACCOUNTS, paper={"latency_ms": 50}
    )
    ticks = waves(4000)
    engine = replay(settings, ticks[:1000], tmp_path / "reduce", batch=500)
    sent = commands.send(engine.conn, commands.Command.REDUCE, ts=time.time_ns())
    assert engine.control.handle_commands() == 1
    assert "reducing" in commands.get(engine.conn, sent).result
    assert engine.trading_state is TradingState.REDUCING
    n = engine.ledger.log.last_seq
    Runner(engine).replay(iter([ticks[1000:2500]]))
    new = [e for e in events(engine) if e.seq > n]
    opened = [
        e for e in new if e.kind is EventKind.ORDER_SUBMITTED and e.payload["intent"] == "open"
    ]
    assert not [e for e in opened if e.payload.get("parent_id") is None]  # no entries
    refused = [e for e in new if e.kind is EventKind.ORDER_REFUSED]
    assert refused and all("reducing" in e.payload["reason"] for e in refused)
    assert "resumed" in engine.control.resume("operator")
    assert engine.trading_state is TradingState.ACTIVE
    n = engine.ledger.log.last_seq
    Runner(engine).replay(iter([ticks[2500:]]))
    assert any(
        e.kind is EventKind.ORDER_SUBMITTED and e.payload["intent"] == "open"
        for e in events(engine)
        if e.seq > n
    )


def test_resume_lifts_halted_accounts_and_they_trade_again(make_settings, tmp_path) -> None:
    # halted by a breach, resumed by the operator: equity is above a new day's floor, so the
    # next judgement leaves it ACTIVE and it trades again
    settings = make_settings(
        orchestrator=FULL_RISK, accounts=FAST_ACCOUNTS, paper={"latency_ms": 50}, risk=TIGHT
    )
    ticks = waves(3000)
    engine = replay(settings, ticks[:2000], tmp_path / "resume", batch=1000)
    assert all(a.trading_state is TradingState.HALTED for a in engine.state.accounts.values())
    answer = engine.control.resume("operator")
    assert answer == "already active; 2 account(s) resumed from their limits"
    resumed = [e for e in events(engine, EventKind.ACCOUNT_STATE) if e.payload["to"] == "ACTIVE"]
    assert {(e.account, e.payload["from"], e.payload["reason"]) for e in resumed[-2:]} == {
        ("A", "HALTED", "operator"),
        ("B", "HALTED", "operator"),
    }


def test_status_json_shows_each_accounts_state_and_limits(tight, tmp_path) -> None:
    engine = replay(tight, waves(3000), tmp_path / "status", batch=1000)
    engine.read_side.write()
    engine.writer.flush()
    db = tight.engine.db
    doc = json.loads(invoke("--db", str(db), "status", "--json").output)
    accounts = {a["name"]: a for a in doc["accounts"]}
    for name, acct in engine.state.accounts.items():
        row = accounts[name]
        assert row["trading_state"] == "HALTED"
        assert row["daily_loss_limit"] == 100.0  # 1% of 10,000
        assert row["daily_floor"] == 9_900.0
        assert row["overall_floor"] == 9_000.0
        assert row["daily_loss_used"] == pytest.approx(10_000.0 - acct.balance, abs=0.01)
        assert row["daily_loss_used"] > 100.0  # through the floor
        assert row["heat"] == 0.0  # flat
        assert row["trades_today"] >= 1
    plain = invoke("--db", str(db), "status").output
    assert "HALTED" in plain


def test_an_entry_moving_with_a_symbol_held_is_refused_by_the_correlation_limit(
    make_settings, tmp_path
) -> None:
    """The candidate's M1 returns against each symbol held, from the corridor's bar history:
    with the limit near 0, an entry whose symbol moves the way a held position does is refused,
    one that moves against it is not (the correlation counts negated)."""
    settings = make_settings(
        orchestrator=FULL_RISK,
        accounts=FAST_ACCOUNTS,
        risk={"max_correlation": 0.05, "correlation_window": 30},
    )
    engine = replay(settings, waves(8000), tmp_path / "corr", batch=1000)
    found = [
        e.payload
        for e in events(engine, EventKind.LIMIT_VIOLATION)
        if e.payload["kind"] == "correlation"
    ]
    assert found, "both symbols held in turn: some entry moved with the other"
    assert all(v["value"] > 0.05 and "moves with" in v["message"] for v in found)
    refused = [e.payload["reason"] for e in events(engine, EventKind.ORDER_REFUSED)]
    assert any("correlation" in r for r in refused)


def test_m1_returns_align_every_symbol_on_the_minutes_they_share() -> None:
    from mikrobot_tui.domain.market import Bar
    from mikrobot_tui.engine.limits import m1_returns
    from mikrobot_tui.trading.timeframes import BarHistory

    history = BarHistory(50)
    minute = 60 * NS_PER_SECOND
    for i in range(10):
        history.push(Bar("EURUSD", "M1", i * minute, 1, 1, 1, 1.0 + i / 100, 1, 0))
        if i != 4:  # GBPUSD has no bar at minute 4
            history.push(Bar("GBPUSD", "M1", i * minute, 1, 1, 1, 2.0 + i / 100, 1, 0))
    got = m1_returns(history, ["EURUSD", "GBPUSD"], window=5)
    assert len(got["EURUSD"]) == len(got["GBPUSD"]) == 5  # the last 6 shared minutes: 4..9 less 4
    assert got["EURUSD"][0] == pytest.approx(np.log(1.05 / 1.03))  # across the missing minute
