"""Accounts as the market moves: margin call and stop-out, swap at the rollover, equity points,
halt and flatten, trailing by ATR. Answers worked out by hand where they are numbers."""

from __future__ import annotations

import pytest
from venue_harness import Bench

from mikrobot_tui.domain.events import EventKind
from mikrobot_tui.domain.orders import OrderIntent, OrderType, Side, TradingState

BUY, SELL = Side.BUY, Side.SELL
DAY_MS = 86_400_000


def test_margin_call_then_stop_out_closes_the_largest_loser_first_on_a_falling_market(
    tmp_path,
) -> None:
    b = Bench(tmp_path, accounts={"A": {"commission_per_lot": 0.0}})
    b.tick(("GBPUSD", 1.24990, 1.25000))
    b.submit("EURUSD", BUY, 1.0)
    b.submit("GBPUSD", BUY, 1.0)
    b.tick(("EURUSD", 1.09990, 1.10000), ("GBPUSD", 1.24990, 1.25000))
    # equity 10,000 less a pip of spread on each (marked at the bid): 9,980; used margin at the
    # mids 109,995 / 30 + 124,995 / 30 = 7,833: level 127.41%
    m = b.ledger.margin(b.account)
    assert m.margin_level == pytest.approx(9_980 / ((109_995 + 124_995) / 30) * 100, abs=0.01)
    for step in range(1, 60):
        eur = 1.1 - 0.001 * step
        gbp = 1.25 - 0.0015 * step  # GBPUSD falls faster: the larger loser
        b.tick(("EURUSD", eur - 0.0001, eur), ("GBPUSD", gbp - 0.0001, gbp))
    call = b.events(EventKind.MARGIN_CALL)[0].payload
    assert call["margin_level"] < 100
    out = b.events(EventKind.STOP_OUT)
    assert out and out[0].payload["margin_level"] <= 50
    assert out[0].payload["position_id"] == "A-000002"  # GBPUSD first
    closed = [t for t in b.account.trades]
    assert closed[0].symbol == "GBPUSD" and closed[0].reason == "stop_out"
    # after each stop-out the level is above the stop-out level again, or nothing is open
    after = b.ledger.margin(b.account)
    assert not b.account.positions or after.margin_level > 50
    assert b.refold().accounts["A"].margin_call == b.account.margin_call


def test_a_margin_call_is_cleared_when_the_market_comes_back(tmp_path) -> None:
    b = Bench(tmp_path, accounts={"A": {"commission_per_lot": 0.0, "balance": 4_000.0}})
    b.submit("EURUSD", BUY, 1.0)  # 3,666.50 of margin against 4,000
    b.tick(("EURUSD", 1.09990, 1.10000))
    b.tick(("EURUSD", 1.09500, 1.09510))  # equity 3,500: level about 96%
    assert b.account.margin_call and b.events(EventKind.MARGIN_CALL)
    b.tick(("EURUSD", 1.10100, 1.10110))
    assert not b.account.margin_call and b.events(EventKind.MARGIN_RECOVERED)


def test_swap_is_charged_once_at_a_weekday_rollover_and_triple_on_wednesday(tmp_path) -> None:
    b = Bench(tmp_path, accounts={"A": {"commission_per_lot": 0.0}})
    b.ms = -DAY_MS  # Monday 2023-11-13 17:13 New York, after Monday's rollover
    b.submit("EURUSD", BUY, 1.0)
    b.tick(("EURUSD", 1.09990, 1.10000))
    b.ms += DAY_MS - 14 * 60_000  # Tuesday 16:59 New York: no rollover yet
    b.tick(("EURUSD", 1.09990, 1.10000))
    assert not b.events(EventKind.SWAP)
    b.ms += 2 * 60_000  # Tuesday 17:01: one night, -6.5 points x 0.00001 x 100,000
    b.tick(("EURUSD", 1.09990, 1.10000))
    (swap,) = b.events(EventKind.SWAP)
    assert swap.payload["amount"] == pytest.approx(-6.5) and swap.payload["multiplier"] == 1
    b.ms += DAY_MS  # Wednesday 17:01: three nights
    b.tick(("EURUSD", 1.09990, 1.10000))
    wednesday = b.events(EventKind.SWAP)[-1].payload
    assert wednesday["amount"] == pytest.approx(-19.5) and wednesday["multiplier"] == 3
    assert b.account.balance == pytest.approx(10_000 - 26.0)
    assert b.account.swap_paid == pytest.approx(-26.0)


def test_a_rollover_passed_while_stopped_is_charged_once_after_the_restart(tmp_path) -> None:
    b = Bench(tmp_path, accounts={"A": {"commission_per_lot": 0.0}})
    b.submit("EURUSD", BUY, 1.0)  # Tuesday 17:13 New York
    b.tick(("EURUSD", 1.09990, 1.10000))
    b.restart()
    b.ms += DAY_MS  # Wednesday 17:13: the engine was away over Wednesday's rollover
    b.tick(("EURUSD", 1.09990, 1.10000))
    b.restart()
    b.tick(("EURUSD", 1.09990, 1.10000))
    (swap,) = b.events(EventKind.SWAP)
    assert swap.payload["amount"] == pytest.approx(-19.5) and swap.payload["multiplier"] == 3


def test_an_equity_point_per_account_per_minute_of_market_time(tmp_path) -> None:
    b = Bench(tmp_path, accounts={"A": {"commission_per_lot": 0.0}, "B": {}})
    b.submit("EURUSD", BUY, 1.0)
    b.tick(("EURUSD", 1.09990, 1.10000))
    for _ in range(3):
        b.ms += 60_000
        b.tick(("EURUSD", 1.10090, 1.10100))
    b.writer.flush()
    rows = b.conn.execute("SELECT account, ts, balance, equity FROM equity ORDER BY ts").fetchall()
    minutes = sorted({r[1] for r in rows})
    assert len(minutes) == 3 and all(ts % 60_000_000_000 == 0 for ts in minutes)
    a_rows = [r for r in rows if r[0] == "A"]
    assert a_rows[0][3] == pytest.approx(10_000 - 10.0)  # as of the minute's last tick: bid 1.0999
    assert a_rows[-1][3] == pytest.approx(10_000 + 90.0)


def test_halt_keeps_positions_and_their_stops_and_rejects_new_entries(tmp_path) -> None:
    b = Bench(tmp_path)
    b.submit("EURUSD", BUY, 1.0, stop_loss=1.09800, take_profit=1.10200)
    b.submit("EURUSD", BUY, 1.0, type=OrderType.LIMIT, price=1.09000)
    b.tick(("EURUSD", 1.09990, 1.10000))
    b.ledger.emit(b.ms_ts(b.ms), EventKind.HALTED, None, {"source": "test"})
    assert b.ledger.state.trading_state is TradingState.HALTED
    b.submit("EURUSD", SELL, 1.0)
    b.tick(("EURUSD", 1.09990, 1.10000))
    assert b.events(EventKind.ORDER_REJECTED)[-1].payload["reason"] == "trading halted"
    b.tick(("EURUSD", 1.09790, 1.09800))  # the stop still protects the position
    assert b.account.trades[-1].reason == "stop_loss"


def test_a_trailing_stop_by_atr_takes_its_distance_when_it_reaches_the_venue(tmp_path) -> None:
    b = Bench(tmp_path)
    sym = b.quotes.index["EURUSD"]
    b.venue.volatility.on_bar(sym, 1.10100, 1.10000, 1.10050)  # ATR 0.0010 after one bar
    b.submit("EURUSD", BUY, 1.0)
    b.tick(("EURUSD", 1.10000, 1.10010))
    b.submit(
        "EURUSD",
        SELL,
        1.0,
        type=OrderType.STOP,
        trail_atr=2.0,
        intent=OrderIntent.CLOSE,
        position_id="A-000001",
    )
    b.tick(("EURUSD", 1.10000, 1.10010))
    accepted = b.events(EventKind.ORDER_ACCEPTED)[-1].payload
    assert accepted["trail_distance"] == pytest.approx(0.0020)
    assert accepted["trigger"] == pytest.approx(1.09800)
    assert b.refold().accounts["A"].working == b.account.working


def test_flatten_closes_through_the_simulator_and_pays_its_slippage(tmp_path) -> None:
    b = Bench(tmp_path, paper={"slippage_spread": 1.0}, accounts={"A": {"commission_per_lot": 0}})
    b.submit("EURUSD", BUY, 1.0)
    b.tick(("EURUSD", 1.09990, 1.10000))  # fills at 1.10000 + 1 x spread = 1.10010
    pos = next(iter(b.account.positions.values()))
    assert pos.entry_price == pytest.approx(1.10010)
    b.submit("EURUSD", SELL, pos.lots, intent=OrderIntent.CLOSE, position_id=pos.position_id)
    b.tick(("EURUSD", 1.09990, 1.10000))  # closes at 1.09990 - 0.00010
    assert b.account.trades[-1].exit_price == pytest.approx(1.09980)
    assert b.account.trades[-1].pnl == pytest.approx(-30.0)
