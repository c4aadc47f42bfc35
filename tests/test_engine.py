"""The engine end to end on replayed ticks: determinism, batch independence, event sourcing."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from engine_data import FAST_ACCOUNTS, FULL_RISK, replay, waves

from mikrobot_tui.domain.events import EventKind
from mikrobot_tui.domain.orders import TradingState
from mikrobot_tui.engine.runner import Runner
from mikrobot_tui.paper.portfolio import fold
from mikrobot_tui.store import commands
from mikrobot_tui.store.events import raw_events, read_events
from mikrobot_tui.store.tickstore import count_ticks, read_ticks


@pytest.fixture
def settings(make_settings):
    return make_settings(
        accounts=FAST_ACCOUNTS,
        engine={"store_ticks": True},
        paper={"latency_ms": 50},
    )


def kinds(engine) -> list[str]:
    return [k for (k,) in engine.conn.execute("SELECT kind FROM events ORDER BY seq")]


def test_a_replay_trades_and_every_fill_lands_as_events(settings, tmp_path) -> None:
    engine = replay(settings, waves(6000), tmp_path / "run", batch=1000)
    k = kinds(engine)
    assert k.count("account_opened") == 2
    assert k.count("position_opened") >= 10
    assert k.count("position_closed") >= 5
    trades = engine.conn.execute("SELECT COUNT(*) FROM trades").fetchone()[0]
    assert trades == k.count("position_closed")
    bars = engine.conn.execute("SELECT COUNT(*) FROM bars WHERE timeframe='M1'").fetchone()[0]
    assert bars >= 2 * 240  # two symbols, 250 minutes of ticks
    assert count_ticks(engine.conn) == 6000


def test_same_data_and_seed_give_a_byte_identical_event_log(make_settings, tmp_path) -> None:
    logs = []
    for run in ("one", "two"):
        s = make_settings(
            accounts=FAST_ACCOUNTS, engine={"db": tmp_path / f"{run}.db", "store_ticks": False}
        )
        engine = replay(s, waves(4000), tmp_path / run, batch=500)
        logs.append(raw_events(engine.conn))
        engine.close()
    assert len(logs[0]) > 20
    assert logs[0] == logs[1]


@pytest.mark.parametrize("latency_ms", [0, 50, 7000])
def test_batch_size_1_and_10000_give_the_same_events(make_settings, tmp_path, latency_ms) -> None:
    logs = []
    for batch in (1, 10_000):
        s = make_settings(
            accounts=FAST_ACCOUNTS,
            engine={"db": tmp_path / f"b{batch}.db", "store_ticks": False},
            paper={"latency_ms": latency_ms},
        )
        engine = replay(s, waves(2500), tmp_path / f"b{batch}", batch=batch)
        logs.append(raw_events(engine.conn))
        engine.close()
    assert sum(1 for e in logs[0] if e[2] == "order_filled") >= 5
    assert logs[0] == logs[1]


def test_an_order_fills_at_the_first_tick_at_or_after_decision_plus_latency(
    settings, tmp_path
) -> None:
    ticks = waves(3000)
    engine = replay(settings, ticks, tmp_path / "lat", batch=777)
    events = list(read_events(engine.conn))
    submitted = {e.payload["order_id"]: e for e in events if e.kind is EventKind.ORDER_SUBMITTED}
    fills = [e for e in events if e.kind is EventKind.ORDER_FILLED]
    assert fills
    sym_of = {"EURUSD": 0, "USDJPY": 1}
    entries = [f for f in fills if "parent_id" not in submitted[f.payload["order_id"]].payload]
    assert entries
    latencies = set()
    for fill in entries:
        sub = submitted[fill.payload["order_id"]]
        due = sub.payload["due_ts"]
        latencies.add(due - sub.ts)
        assert 50_000_000 <= due - sub.ts <= 200_000_000  # uniform 50 to 200 ms by default
        same = ticks[ticks["sym"] == sym_of[sub.payload["symbol"]]]
        first = same[same["ts_event"] >= due][0]
        assert fill.ts == first["ts_event"]
        # at the touch plus slippage: never better, and within a spread of it here
        buy = sub.payload["side"] == "BUY"
        touch, spread = (first["ask"] if buy else first["bid"]), first["ask"] - first["bid"]
        worse = (fill.payload["price"] - touch) * (1 if buy else -1)
        assert -1e-9 <= worse <= spread
    assert len(latencies) > 1  # drawn per order


def test_the_stored_log_rebuilds_the_accounts_and_their_books_balance(settings, tmp_path) -> None:
    engine = replay(settings, waves(5000), tmp_path / "fold", batch=640)
    live = engine.state
    engine.close()
    from mikrobot_tui.data.feeds import ReplayFeed
    from mikrobot_tui.engine import Engine

    fresh = Engine(settings, feed=ReplayFeed(tmp_path / "fold.npz", 640))  # a new process would
    assert fresh.state.accounts.keys() == live.accounts.keys()
    for name, acct in live.accounts.items():
        again = fresh.state.accounts[name]
        assert (again.balance, again.positions, again.trades) == (
            acct.balance,
            acct.positions,
            acct.trades,
        )
        # the books balance, computed from the trades table and the open positions alone
        closed = fresh.conn.execute(
            "SELECT COALESCE(SUM(pnl - commission), 0), COUNT(*) FROM trades WHERE account = ?",
            [name],
        ).fetchone()
        open_fees = sum(p.entry_commission for p in again.positions.values())
        assert closed[1] == len(again.trades) > 0
        assert again.balance == pytest.approx(10_000 + closed[0] - open_fees, abs=0.011)
        shown = fresh.conn.execute("SELECT balance FROM accounts WHERE name = ?", [name])
        assert shown.fetchone()[0] == pytest.approx(again.balance, abs=0.005)
    fresh.conn.close()


def test_a_restart_continues_from_the_database_without_losing_or_repeating_fills(
    settings, tmp_path
) -> None:
    ticks = waves(6000)
    first = replay(settings, ticks[:3000], tmp_path / "first", batch=1000)
    before = {
        n: (a.balance, dict(a.positions), len(a.trades)) for n, a in first.state.accounts.items()
    }
    last_seq = first.ledger.log.last_seq
    first.close()

    second = replay(settings, ticks[3000:], tmp_path / "second", batch=1000)
    events = list(read_events(second.conn))
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert sum(e.kind is EventKind.ACCOUNT_OPENED for e in events) == 2  # not opened again
    restarted = fold(e for e in events if e.seq <= last_seq)
    for name, (balance, positions, n_trades) in before.items():
        assert restarted.accounts[name].balance == balance
        assert restarted.accounts[name].positions == positions
        assert len(restarted.accounts[name].trades) == n_trades
    closed = [e.payload["position_id"] for e in events if e.kind is EventKind.POSITION_CLOSED]
    assert len(closed) == len(set(closed))
    opened = {e.payload["position_id"] for e in events if e.kind is EventKind.POSITION_OPENED}
    assert set(closed) <= opened
    assert len(closed) > before["A"][2] + before["B"][2]  # it kept trading


def test_halt_refuses_new_orders_and_resume_allows_them_again(settings, tmp_path) -> None:
    ticks = waves(6000)
    engine = replay(settings, ticks[:1000], tmp_path / "halt", batch=500)
    assert "halted" in engine.control.halt("test")
    assert engine.trading_state is TradingState.HALTED
    assert engine.control.halt("test") == "already halted"
    n = engine.ledger.log.last_seq
    Runner(engine).replay(iter([ticks[1000:3000]]))
    new = [e for e in read_events(engine.conn, after_seq=n)]
    assert not any(e.kind is EventKind.ORDER_SUBMITTED for e in new)
    refused = [e for e in new if e.kind is EventKind.ORDER_REFUSED]
    assert refused and all("halted" in e.payload["reason"] for e in refused)
    engine.control.resume("test")
    n = engine.ledger.log.last_seq
    Runner(engine).replay(iter([ticks[3000:]]))
    assert any(e.kind is EventKind.ORDER_SUBMITTED for e in read_events(engine.conn, after_seq=n))


def test_flatten_through_the_commands_table_closes_every_position(settings, tmp_path) -> None:
    ticks = waves(6000)
    engine = replay(settings, ticks[:1500], tmp_path / "flat", batch=500)
    cut = 1500
    while not any(a.positions for a in engine.state.accounts.values()):
        Runner(engine).replay(iter([ticks[cut : cut + 50]]))
        cut += 50
    halt = commands.send(engine.conn, commands.Command.HALT, ts=time.time_ns())
    flat = commands.send(engine.conn, commands.Command.FLATTEN, ts=time.time_ns())
    assert engine.control.handle_commands() == 2
    assert commands.get(engine.conn, halt).status == "done"
    assert "closing" in commands.get(engine.conn, flat).result
    Runner(engine).replay(iter([ticks[cut : cut + 20]]))
    assert all(not a.positions for a in engine.state.accounts.values())
    assert engine.conn.execute("SELECT COUNT(*) FROM positions").fetchone()[0] == 0
    reasons = [
        e.payload["reason"] for e in read_events(engine.conn) if e.kind is EventKind.POSITION_CLOSED
    ]
    assert "close" in reasons


def test_bad_ticks_are_stored_in_rejects_and_the_engine_goes_on(settings, tmp_path) -> None:
    ticks = waves(400)
    ticks["bid"][10] = np.nan
    ticks["bid"][20], ticks["ask"][20] = ticks["ask"][20] + 0.01, ticks["bid"][20]  # crossed
    ticks["ask"][30] = -1.0
    engine = replay(settings, ticks, tmp_path / "bad", batch=64)
    rows = engine.conn.execute("SELECT symbol, reason FROM rejects ORDER BY id").fetchall()
    assert len(rows) == 3
    assert engine.corridor.counts.ticks_clean == 397
    text = " ".join(r for _, r in rows).lower()
    assert "nan" in text and "crossed" in text


def test_the_simulated_market_starts_with_warm_strategies_and_no_trades(make_settings) -> None:
    from mikrobot_tui.engine import build_engine

    engine = build_engine(make_settings(sim={"warmup_minutes": 30}))
    engine.start()
    bars = engine.conn.execute("SELECT COUNT(*) FROM bars WHERE timeframe = 'M1'").fetchone()[0]
    assert bars >= 6 * 28  # half an hour of history for six symbols
    assert engine.conn.execute("SELECT COUNT(*) FROM ticks").fetchone()[0] == 0  # not stored
    traded = {EventKind.ORDER_SUBMITTED, EventKind.ORDER_REFUSED, EventKind.POSITION_OPENED}
    assert not [e for e in read_events(engine.conn) if e.kind in traded]
    assert abs(engine.quotes.market_now - time.time_ns()) < 5 * 1_000_000_000  # history ends now
    engine.close()


def test_a_spike_is_stored_but_never_fills_a_stop_or_makes_a_bar(settings, tmp_path) -> None:
    ticks = waves(4000)
    eur = np.flatnonzero(ticks["sym"] == 0)
    bad = eur[1500]
    ticks["bid"][bad] *= 0.97  # a bad print 3% below the market
    ticks["ask"][bad] *= 0.97
    engine = replay(settings, ticks, tmp_path / "spike", batch=333)
    low = engine.conn.execute("SELECT MIN(low) FROM bars WHERE symbol = 'EURUSD'").fetchone()[0]
    assert low > ticks["bid"][bad] * 1.02
    assert (read_ticks(engine.conn, "EURUSD")["bid"] == ticks["bid"][bad]).sum() == 1
    prices = [
        e.payload.get("exit_price", e.payload.get("price"))
        for e in read_events(engine.conn)
        if e.kind in (EventKind.ORDER_FILLED, EventKind.POSITION_CLOSED)
    ]
    assert prices
    assert not {float(ticks["bid"][bad]), float(ticks["ask"][bad])} & set(prices)
    quality = engine.conn.execute("SELECT spikes FROM quality WHERE symbol='EURUSD'").fetchone()
    assert quality[0] >= 1


@pytest.mark.parametrize("absurd", [1.7e308, 5.0])  # an overflow, and 5x: a spike, no jump
def test_after_an_absurd_tick_a_real_spike_is_still_flagged_and_never_builds_a_bar(
    settings, tmp_path, absurd: float
) -> None:
    ticks = waves(4000)
    eur = np.flatnonzero(ticks["sym"] == 0)
    price = absurd if absurd > 10 else ticks["bid"][eur[500]] * absurd
    ticks["bid"][eur[500]] = ticks["ask"][eur[500]] = price
    bad = eur[530]
    ticks["bid"][bad] *= 0.97  # a real bad print, 3% below the market, soon after
    ticks["ask"][bad] *= 0.97
    engine = replay(settings, ticks, tmp_path / "absurd", batch=333)
    low, high = engine.conn.execute(
        "SELECT MIN(low), MAX(high) FROM bars WHERE symbol = 'EURUSD'"
    ).fetchone()
    assert low > ticks["bid"][bad] * 1.02 and high < 1.2
    spikes = engine.conn.execute("SELECT spikes FROM quality WHERE symbol='EURUSD'").fetchone()
    assert spikes[0] == (1 if absurd > 10 else 2)  # the 5x tick is flagged, not rejected
    engine.close()


def test_a_first_tick_at_an_absurd_price_is_rejected_and_stores_no_bar(settings, tmp_path) -> None:
    ticks = waves(400)
    ticks["bid"][0] = ticks["ask"][0] = 1.7e308
    engine = replay(settings, ticks, tmp_path / "first", batch=100)
    (high,) = engine.conn.execute("SELECT MAX(high) FROM bars WHERE symbol = 'EURUSD'").fetchone()
    assert high < 1.2
    reasons = engine.conn.execute("SELECT reason FROM rejects").fetchall()
    assert reasons == [("absurd price",)]
    engine.close()


def test_bar_records_and_bar_values_line_up_field_for_field() -> None:
    from dataclasses import fields

    from mikrobot_tui.domain.market import BAR_DTYPE, Bar

    assert [f.name for f in fields(Bar)][2:] == list(BAR_DTYPE.names)[2:]
    assert list(BAR_DTYPE.names)[:2] == ["sym", "period_ns"]


def test_warm_up_history_never_closes_positions_from_the_last_session(make_settings) -> None:
    from mikrobot_tui.engine import build_engine

    # limits wide open: a random session that hits the day's trade quota or loss would halt
    # the engine and could end flat, which is not what this test is about
    risk = {"max_positions": 5, "max_trades_per_day": 100_000, "daily_loss_pct": 50.0}
    settings = make_settings(
        accounts=FAST_ACCOUNTS,
        sim={"warmup_minutes": 0, "speed": 1},
        risk={**risk, "overall_loss_pct": 100.0},
    )
    engine = build_engine(settings)
    engine.start()
    market = engine.feed.market
    ticks = market.advance(market.now_ns + 3 * 3600 * 1_000_000_000)
    Runner(engine).replay(iter([ticks]))
    open_before = {p for a in engine.state.accounts.values() for p in a.positions}
    assert open_before, "the session should end with open positions"
    engine.close()

    again = build_engine(make_settings(accounts=FAST_ACCOUNTS, sim={"warmup_minutes": 120}))
    again.start()  # two hours of fresh simulated history: none of it may trade
    assert {p for a in again.state.accounts.values() for p in a.positions} == open_before
    again.close()


def faulty_stream(n_ticks: int) -> tuple[np.ndarray, list[str]]:
    """The simulated market with frequent faults: spikes, gaps, crossed and stale quotes."""
    from mikrobot_tui.config import SimSettings
    from mikrobot_tui.data.sim import generate_ticks
    from mikrobot_tui.domain.instruments import default_instruments

    symbols = ["EURUSD", "USDJPY"]
    catalogue = default_instruments()
    sim = SimSettings(symbols=symbols, seed=11, faults=True, fault_rate=0.03)
    start = 1_767_225_600 * 1_000_000_000
    return generate_ticks([catalogue[s] for s in symbols], sim, start, n_ticks), symbols


def test_batch_size_does_not_change_events_on_faulty_data(make_settings, tmp_path) -> None:
    ticks, symbols = faulty_stream(12_000)
    logs, rejects = [], []
    for batch in (1, 10_000):
        s = make_settings(
            accounts=FAST_ACCOUNTS,
            engine={"db": tmp_path / f"f{batch}.db", "store_ticks": False},
            breakers={"failure_threshold": 2, "reset_timeout_s": 20},
        )
        engine = replay(s, ticks, tmp_path / f"f{batch}", batch=batch, symbols=symbols)
        logs.append(raw_events(engine.conn))
        rejects.append(engine.conn.execute("SELECT * FROM rejects ORDER BY id").fetchall())
        engine.close()
    kinds = [e[2] for e in logs[0]]
    assert kinds.count("breaker_changed") >= 3 and kinds.count("order_filled") >= 3
    assert any("circuit breaker" in e[4] for e in logs[0] if e[2] == "order_refused")
    assert logs[0] == logs[1]
    assert rejects[0] == rejects[1]


def test_a_simulated_market_never_restarts_before_its_last_event(make_settings) -> None:
    from mikrobot_tui.engine import build_engine

    settings = make_settings(sim={"warmup_minutes": 0})
    engine = build_engine(settings)
    engine.start()
    ahead = time.time_ns() + 3600 * 1_000_000_000  # as if it had run at ten times speed
    engine.control.halt("test")
    engine.ledger.log.append(ahead, EventKind.RESUMED, None, {"source": "test"})
    engine.close()
    again = build_engine(settings)
    assert again.feed.market.now_ns >= ahead
    again.conn.close()


def test_a_position_on_a_symbol_the_feed_no_longer_carries_does_not_stop_the_engine(
    settings, make_settings, tmp_path
) -> None:
    ticks = waves(6000)
    engine = replay(settings, ticks[:2250], tmp_path / "two", batch=1000)
    held = {p.symbol for a in engine.state.accounts.values() for p in a.positions.values()}
    assert "USDJPY" in held
    engine.close()
    eur_only = ticks[2250:][ticks[2250:]["sym"] == 0]
    again = replay(settings, eur_only, tmp_path / "one", batch=500, symbols=["EURUSD"])
    rows = again.conn.execute("SELECT symbol, mark FROM positions").fetchall()
    assert all(mark is None for sym, mark in rows if sym == "USDJPY")
    assert "flatten" in again.control.flatten("test")
    again.close()


def test_a_flatten_interrupted_by_a_crash_still_closes_after_the_restart(
    settings, tmp_path
) -> None:
    ticks = waves(4000)
    engine = replay(settings, ticks[:2250], tmp_path / "a", batch=1000)
    held = {p for a in engine.state.accounts.values() for p in a.positions}
    assert held
    engine.control.flatten("test")
    engine.writer.flush()
    engine.conn.close()  # gone before any tick filled the close orders, like kill -9
    again = replay(settings, ticks[2250:2300], tmp_path / "b", batch=10)
    still = {p for a in again.state.accounts.values() for p in a.positions}
    assert not held & still  # strategies warm from stored bars may open new ones at once
    closed = {
        e.payload["position_id"]: e.payload["reason"]
        for e in read_events(again.conn)
        if e.kind is EventKind.POSITION_CLOSED
    }
    assert all(closed[p] == "close" for p in held)


def test_changing_an_accounts_parameters_on_the_same_database_is_refused(
    settings, make_settings, tmp_path
) -> None:
    from mikrobot_tui.config import ConfigError

    replay(settings, waves(500), tmp_path / "a", batch=500).close()
    changed = [dict(FAST_ACCOUNTS[0], params={"fast": 3, "slow": 4, "atr_period": 3})]
    changed.append(FAST_ACCOUNTS[1])
    with pytest.raises(ConfigError, match=r"accounts\[0\] \(A\).*new name or use a new --db"):
        replay(make_settings(accounts=changed), waves(500), tmp_path / "b", batch=500)


def test_a_stop_out_loses_about_the_risk_budget(make_settings, tmp_path) -> None:
    # the sizing's check: no modelled slippage (the latency still moves the price)
    no_slip = {"slippage_spread": 0.0, "slippage_volatility": 0.0, "impact_k": 0.0}
    settings = make_settings(accounts=FAST_ACCOUNTS, paper=no_slip, orchestrator=FULL_RISK)
    engine = replay(settings, waves(6000), tmp_path / "r", batch=1000)
    stops = [t for a in engine.state.accounts.values() for t in a.trades if t.reason == "stop_loss"]
    assert len(stops) >= 3
    # the loss before costs against the budget: equity at entry x risk_per_trade (0.5%)
    budget = [t.pnl / (t.net_pnl / (t.return_pct / 100) * 0.005) for t in stops]
    assert -1.08 < float(np.median(budget)) < -0.95  # ticks come every 5 s: some slippage
    assert min(budget) > -1.15


# --- the breakers around each symbol's data quality and around the order path ---------------


def test_a_symbols_bad_data_opens_its_quality_breaker_the_same_way_in_any_batch_size(
    make_settings, tmp_path
) -> None:
    """A score under breakers.min_quality opens `quality:<SYMBOL>` and refuses new orders on
    the symbol, naming the breaker; the score is judged at each decision point from the
    problems seen before it, so batches of 1, 7 and 5000 log the same events."""
    ticks, symbols = faulty_stream(12_000)
    logs = []
    for batch in (1, 7, 5000):
        s = make_settings(
            accounts=FAST_ACCOUNTS,
            engine={"db": tmp_path / f"q{batch}.db", "store_ticks": False},
            breakers={"reset_timeout_s": 20, "success_threshold": 1},
        )
        engine = replay(s, ticks, tmp_path / f"q{batch}", batch=batch, symbols=symbols)
        logs.append(raw_events(engine.conn))
        shown = {n for (n,) in engine.conn.execute("SELECT name FROM breakers")}
        assert {"orders", "quality:EURUSD", "quality:USDJPY"} <= shown  # the pane lists them
        engine.close()
    changes = [json.loads(e[4]) for e in logs[0] if e[2] == "breaker_changed"]
    quality = [c for c in changes if c["name"].startswith("quality:")]
    states = {(c["old_state"], c["new_state"]) for c in quality}
    assert {("CLOSED", "OPEN"), ("OPEN", "HALF_OPEN"), ("HALF_OPEN", "CLOSED")} <= states
    assert all("quality score" in c["reason"] for c in quality if c["new_state"] == "OPEN")
    refused = [json.loads(e[4])["reason"] for e in logs[0] if e[2] == "order_refused"]
    assert any(r.startswith("circuit breaker quality:") for r in refused)
    assert sum(e[2] == "order_filled" for e in logs[0]) >= 3
    assert logs[0] == logs[1] == logs[2]


def test_an_exception_on_the_order_path_refuses_the_order_and_opens_its_breaker(
    settings, tmp_path, monkeypatch
) -> None:
    import mikrobot_tui.engine.decisions as decisions

    def broken(*args, **kwargs):
        raise RuntimeError("venue unreachable")

    monkeypatch.setattr(decisions, "decide", broken)
    engine = replay(settings, waves(3000), tmp_path / "broken", batch=500)  # runs to the end
    events = list(read_events(engine.conn))
    shown = dict(engine.conn.execute("SELECT name, state FROM breakers").fetchall())
    engine.close()
    assert not any(e.kind is EventKind.ORDER_SUBMITTED for e in events)
    reasons = [e.payload["reason"] for e in events if e.kind is EventKind.ORDER_REFUSED]
    assert reasons[0] == "order path failed: RuntimeError: venue unreachable"
    assert "circuit breaker orders is open" in reasons
    opened = [
        e.payload
        for e in events
        if e.kind is EventKind.BREAKER_CHANGED and e.payload["name"] == "orders"
    ]
    assert opened[0]["new_state"] == "OPEN" and opened[0]["failures"] == 5
    assert "orders" in shown
