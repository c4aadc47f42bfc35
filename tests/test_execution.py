"""The paper venue against hand-built ticks, with answers worked out by hand.

Costs are 7 USD per lot round turn (3.50 a side) for forex and metals unless a test says
otherwise; slippage, impact and latency are off unless a test turns them on.
"""

from __future__ import annotations

import numpy as np
import pytest
from venue_harness import Bench

from mikrobot_tui.domain.events import EventKind
from mikrobot_tui.domain.market import TICK_DTYPE
from mikrobot_tui.domain.orders import OrderIntent, OrderType, Side, TimeInForce

BUY, SELL = Side.BUY, Side.SELL


def test_eurusd_one_lot_bought_at_the_ask_and_sold_at_the_bid_makes_100_less_commission(
    tmp_path,
) -> None:
    b = Bench(tmp_path)
    b.submit("EURUSD", BUY, 1.0)
    b.tick(("EURUSD", 1.09990, 1.10000))
    pos = next(iter(b.account.positions.values()))
    assert pos.entry_price == 1.10000
    b.submit("EURUSD", SELL, 1.0, intent=OrderIntent.CLOSE, position_id=pos.position_id)
    b.tick(("EURUSD", 1.10100, 1.10110))
    trade = b.account.trades[-1]
    assert trade.pnl == pytest.approx(100.0)
    assert trade.commission == pytest.approx(7.0)
    assert b.account.balance == pytest.approx(10_000 + 100 - 7)


def test_usdjpy_round_trip_in_a_usd_account_converts_at_the_current_usdjpy(tmp_path) -> None:
    b = Bench(tmp_path, accounts={"A": {"commission_per_lot": 0.0}})
    b.submit("USDJPY", BUY, 1.0)
    b.tick(("USDJPY", 149.990, 150.000))
    b.submit("USDJPY", SELL, 1.0, intent=OrderIntent.CLOSE, position_id="A-000001")
    b.tick(("USDJPY", 150.500, 150.520))
    # 0.5 JPY x 100,000 = 50,000 JPY, at the exit's USDJPY mid 150.51
    assert b.account.trades[-1].pnl == pytest.approx(round(50_000 / 150.51, 2))


def test_xauusd_100_ounces_round_trip(tmp_path) -> None:
    b = Bench(tmp_path)
    b.submit("XAUUSD", BUY, 1.0)
    b.tick(("XAUUSD", 1999.80, 2000.00))
    b.submit("XAUUSD", SELL, 1.0, intent=OrderIntent.CLOSE, position_id="A-000001")
    b.tick(("XAUUSD", 2005.00, 2005.20))
    assert b.account.trades[-1].pnl == pytest.approx(500.0)  # 5 USD x 100 oz
    assert b.account.balance == pytest.approx(10_000 + 500 - 7)


def test_eurgbp_pnl_reaches_a_usd_account_through_gbpusd(tmp_path) -> None:
    b = Bench(tmp_path, accounts={"A": {"commission_per_lot": 0.0}})
    b.tick(("GBPUSD", 1.24990, 1.25010))  # mid 1.25
    b.submit("EURGBP", SELL, 1.0)
    b.tick(("EURGBP", 0.86000, 0.86010))
    b.submit("EURGBP", BUY, 1.0, intent=OrderIntent.CLOSE, position_id="A-000001")
    b.tick(("EURGBP", 0.85490, 0.85500))
    # 0.0050 GBP x 100,000 = 500 GBP at GBPUSD 1.25 = 625 USD
    assert b.account.trades[-1].pnl == pytest.approx(625.0)
    pos_rate = b.events(EventKind.POSITION_OPENED)[0].payload["rate"]
    assert pos_rate == pytest.approx(1.25)


def test_a_position_keeps_its_entry_rate_when_no_quote_converts_any_more(tmp_path) -> None:
    b = Bench(tmp_path, accounts={"A": {"commission_per_lot": 0.0}})
    b.tick(("GBPUSD", 1.24990, 1.25010))
    b.submit("EURGBP", SELL, 1.0)
    b.tick(("EURGBP", 0.86000, 0.86010))
    b.quotes.bid[b.quotes.index["GBPUSD"]] = np.nan  # GBPUSD gone
    b.quotes.ask[b.quotes.index["GBPUSD"]] = np.nan
    pos = next(iter(b.account.positions.values()))
    assert pos.rate_at_entry == pytest.approx(1.25)
    _, pnl = b.ledger.open_pnl(b.account, pos, None, 0)
    assert pnl == pytest.approx(-0.0001 * 100_000 * 1.25)  # marked at the ask 0.86010


def test_a_netting_account_adds_reduces_and_reverses(tmp_path) -> None:
    b = Bench(tmp_path, accounts={"A": {"oms": "netting", "commission_per_lot": 0.0}})
    b.submit("EURUSD", BUY, 1.0)
    b.tick(("EURUSD", 1.09990, 1.10000))
    b.submit("EURUSD", BUY, 1.0)
    b.tick(("EURUSD", 1.10090, 1.10100))
    (pos,) = b.account.positions.values()
    assert pos.lots == 2.0 and pos.entry_price == pytest.approx(1.10050)
    b.submit("EURUSD", SELL, 0.5)
    b.tick(("EURUSD", 1.10150, 1.10160))
    (pos,) = b.account.positions.values()
    assert pos.lots == 1.5
    assert b.account.trades[-1].pnl == pytest.approx(0.0010 * 50_000)  # 50 on half a lot
    b.submit("EURUSD", SELL, 2.5)  # closes 1.5, opens 1.0 short
    b.tick(("EURUSD", 1.10050, 1.10060))
    (pos,) = b.account.positions.values()
    assert pos.side is SELL and pos.lots == 1.0 and pos.entry_price == 1.10050
    assert b.account.trades[-1].pnl == pytest.approx(0.0 * 150_000)
    assert b.account.balance == pytest.approx(10_000 + 50)
    assert b.refold().accounts["A"].positions == b.account.positions


def test_a_hedging_account_holds_both_sides_and_closes_part_of_one(tmp_path) -> None:
    b = Bench(tmp_path, accounts={"A": {"commission_per_lot": 0.0}})
    b.submit("EURUSD", BUY, 1.0)
    b.submit("EURUSD", SELL, 1.0)
    b.tick(("EURUSD", 1.09990, 1.10000))
    assert len(b.account.positions) == 2
    b.submit("EURUSD", SELL, 0.4, intent=OrderIntent.CLOSE, position_id="A-000001")
    b.tick(("EURUSD", 1.10100, 1.10110))
    long = b.account.positions["A-000001"]
    assert long.lots == pytest.approx(0.6)
    assert b.account.trades[-1].lots == pytest.approx(0.4)
    assert b.account.trades[-1].pnl == pytest.approx(40.0)


def test_a_market_order_walks_three_levels_and_the_rest_follows_ioc(tmp_path) -> None:
    b = Bench(tmp_path, paper={}, accounts={"A": {"taker_bps": 0.0}})
    asks = np.array([[100.0, 1.0], [101.0, 2.0], [102.0, 0.5]])
    bids = np.array([[99.0, 5.0]])
    b.tick(("BTCUSDT", 99.0, 100.0))
    b.venue.books.update("BTCUSDT", b.quotes.ts[b.quotes.index["BTCUSDT"]][0], bids, asks)
    b.submit("BTCUSDT", BUY, 4.0, tif=TimeInForce.IOC)
    b.tick(("BTCUSDT", 99.0, 100.0))
    (fill,) = b.events(EventKind.ORDER_FILLED)
    assert fill.payload["lots"] == 3.5
    assert fill.payload["price"] == pytest.approx(round((100 + 202 + 51) / 3.5, 2))
    cancel = b.events(EventKind.ORDER_CANCELLED)[-1]
    assert cancel.payload["order_id"] == "A-000001" and "IOC" in cancel.payload["reason"]


def test_a_fok_order_the_book_cannot_fill_whole_fills_nothing(tmp_path) -> None:
    b = Bench(tmp_path, accounts={"A": {"taker_bps": 0.0}})
    asks = np.array([[100.0, 1.0], [101.0, 2.0]])
    b.tick(("BTCUSDT", 99.0, 100.0))
    b.venue.books.update("BTCUSDT", b.quotes.ts[b.quotes.index["BTCUSDT"]][0], asks, asks)
    b.submit("BTCUSDT", BUY, 4.0, tif=TimeInForce.FOK)
    b.tick(("BTCUSDT", 99.0, 100.0))
    assert b.events(EventKind.ORDER_FILLED) == []
    assert "FOK" in b.events(EventKind.ORDER_CANCELLED)[-1].payload["reason"]


def test_a_limit_only_touched_does_not_fill_unless_touch_fills_are_on(tmp_path) -> None:
    for touch, filled in ((False, False), (True, True)):
        b = Bench(tmp_path / str(touch), paper={"touch_fills": touch})
        b.submit("EURUSD", BUY, 1.0, type=OrderType.LIMIT, price=1.09950)
        b.tick(("EURUSD", 1.09990, 1.10000))
        assert b.events(EventKind.ORDER_ACCEPTED)
        b.tick(("EURUSD", 1.09940, 1.09950))  # the ask touches the limit
        assert bool(b.events(EventKind.ORDER_FILLED)) is filled


def test_a_limit_the_market_goes_through_fills_at_its_price_never_better(tmp_path) -> None:
    b = Bench(tmp_path)
    b.submit("EURUSD", BUY, 1.0, type=OrderType.LIMIT, price=1.09950)
    b.tick(("EURUSD", 1.09990, 1.10000))
    b.tick(("EURUSD", 1.09800, 1.09810))  # gaps far through
    (fill,) = b.events(EventKind.ORDER_FILLED)
    assert fill.payload["price"] == 1.09950 and fill.payload["liquidity"] == "maker"


def test_a_marketable_limit_takes_at_the_touch_and_post_only_is_rejected(tmp_path) -> None:
    b = Bench(tmp_path)
    b.submit("EURUSD", BUY, 1.0, type=OrderType.LIMIT, price=1.10050)
    b.submit("EURUSD", BUY, 1.0, type=OrderType.LIMIT, price=1.10050, post_only=True)
    b.tick(("EURUSD", 1.09990, 1.10000))
    (fill,) = b.events(EventKind.ORDER_FILLED)
    assert fill.payload["price"] == 1.10000 and fill.payload["liquidity"] == "taker"
    (rejected,) = b.events(EventKind.ORDER_REJECTED)
    assert rejected.payload["reason"] == "post-only would cross"


def test_a_sell_stop_triggers_on_the_bid_and_a_gap_fills_at_the_first_price(tmp_path) -> None:
    b = Bench(tmp_path)
    b.submit("EURUSD", SELL, 1.0, type=OrderType.STOP, trigger=1.09900)
    b.tick(("EURUSD", 1.09990, 1.10000))
    b.tick(("EURUSD", 1.09910, 1.09920))
    assert b.events(EventKind.ORDER_FILLED) == []
    b.tick(("EURUSD", 1.09700, 1.09710))  # gapped through
    (fill,) = b.events(EventKind.ORDER_FILLED)
    assert fill.payload["price"] == 1.09700
    assert fill.payload["slippage"] == pytest.approx(0.00200)  # worse than the stop


def test_a_stop_limit_triggers_then_rests_as_a_limit(tmp_path) -> None:
    b = Bench(tmp_path)
    b.submit("EURUSD", BUY, 1.0, type=OrderType.STOP_LIMIT, trigger=1.10100, price=1.10110)
    b.tick(("EURUSD", 1.09990, 1.10000))
    b.tick(("EURUSD", 1.10110, 1.10120))  # triggers; the ask is above the limit
    assert b.events(EventKind.ORDER_TRIGGERED) and not b.events(EventKind.ORDER_FILLED)
    b.tick(("EURUSD", 1.10090, 1.10100))
    (fill,) = b.events(EventKind.ORDER_FILLED)
    assert fill.payload["price"] == 1.10110


def test_a_bracket_whose_take_profit_fills_cancels_its_stop(tmp_path) -> None:
    b = Bench(tmp_path)
    b.submit("EURUSD", BUY, 1.0, stop_loss=1.09800, take_profit=1.10200)
    b.tick(("EURUSD", 1.09990, 1.10000))
    assert set(b.account.working) == {"A-000001-SL", "A-000001-TP"}
    b.tick(("EURUSD", 1.10210, 1.10220))
    assert not b.account.positions and not b.account.working
    cancel = b.events(EventKind.ORDER_CANCELLED)[-1]
    assert cancel.payload["order_id"] == "A-000001-SL"
    trade = b.account.trades[-1]
    assert trade.reason == "take_profit" and trade.exit_price == 1.10200
    assert trade.pnl == pytest.approx(200.0)


def test_a_bracket_stop_fills_at_the_bid_and_cancels_the_target(tmp_path) -> None:
    b = Bench(tmp_path)
    b.submit("EURUSD", BUY, 1.0, stop_loss=1.09800, take_profit=1.10200)
    b.tick(("EURUSD", 1.09990, 1.10000))
    b.tick(("EURUSD", 1.09790, 1.09800))
    assert b.account.trades[-1].reason == "stop_loss"
    assert b.account.trades[-1].exit_price == 1.09790
    assert b.events(EventKind.ORDER_CANCELLED)[-1].payload["order_id"] == "A-000001-TP"


def test_a_trailing_stop_follows_the_bid_by_pips_and_fills_when_it_turns(tmp_path) -> None:
    b = Bench(tmp_path)
    b.tick(("EURUSD", 1.10000, 1.10010))
    b.submit("EURUSD", BUY, 1.0)
    b.tick(("EURUSD", 1.10000, 1.10010))
    b.submit(
        "EURUSD",
        SELL,
        1.0,
        type=OrderType.STOP,
        trail_distance=0.00100,
        intent=OrderIntent.CLOSE,
        position_id="A-000001",
    )
    b.tick(("EURUSD", 1.10000, 1.10010))  # arrives: trigger 1.09900
    assert b.events(EventKind.ORDER_ACCEPTED)[-1].payload["trigger"] == 1.09900
    b.tick(
        ("EURUSD", 1.10050, 1.10060),  # half a pip above the last move: no move yet? 5 pips
        ("EURUSD", 1.10200, 1.10210),  # best 1.10200: trigger 1.10100
        ("EURUSD", 1.10150, 1.10160),
        ("EURUSD", 1.10090, 1.10100),  # below 1.10100: filled at this bid
    )
    moves = [e.payload["changes"]["trigger"] for e in b.events(EventKind.ORDER_MODIFIED)]
    assert moves == [1.09950, 1.10100]
    assert b.account.trades[-1].exit_price == 1.10090


@pytest.mark.parametrize("batch", [None, 1])
def test_a_trailing_stop_fills_at_its_recorded_trigger_however_the_ticks_are_batched(
    tmp_path, batch
) -> None:
    """The trigger moves a pip at a time, each move an event; a best bid less than a pip above
    the last move moves nothing, so it cannot fill the stop either. Otherwise the stop fills
    earlier when the ticks come in one batch than when they are cut (a replay resumed after
    kill -9 is cut where the kill fell) and the events depend on the batching."""
    b = Bench(tmp_path / str(batch))
    b.tick(("EURUSD", 1.10000, 1.10010))
    b.submit("EURUSD", BUY, 1.0)
    b.tick(("EURUSD", 1.10000, 1.10010))
    b.submit(
        "EURUSD",
        SELL,
        1.0,
        type=OrderType.STOP,
        trail_distance=0.00100,
        intent=OrderIntent.CLOSE,
        position_id="A-000001",
    )
    b.tick(("EURUSD", 1.10000, 1.10010))  # arrives: trigger 1.09900
    rows = [
        ("EURUSD", 1.10005, 1.10015),  # half a pip up: no move, the trigger stays 1.09900
        ("EURUSD", 1.09903, 1.09913),  # above the trigger: nothing
        ("EURUSD", 1.09899, 1.09909),  # through it: filled at this bid
    ]
    ticks = np.zeros(len(rows), dtype=TICK_DTYPE)
    for i, (symbol, bid, ask) in enumerate(rows):
        b.ms += 1
        ts = b.ms_ts(b.ms)
        ticks[i] = (ts, ts, b.quotes.index[symbol], bid, ask, np.nan, np.nan)
    b.run(ticks, batch)
    assert not b.events(EventKind.ORDER_MODIFIED)
    assert b.account.trades[-1].exit_price == 1.09899


def test_a_gtd_order_expires_at_its_time(tmp_path) -> None:
    b = Bench(tmp_path)
    b.submit(
        "EURUSD",
        BUY,
        1.0,
        type=OrderType.LIMIT,
        price=1.09000,
        tif=TimeInForce.GTD,
        expire_ts=b.ms_ts(3),
    )
    b.tick(("EURUSD", 1.09990, 1.10000), ("EURUSD", 1.09990, 1.10000))
    assert not b.events(EventKind.ORDER_CANCELLED)
    b.tick(("EURUSD", 1.09990, 1.10000))
    assert "expired" in b.events(EventKind.ORDER_CANCELLED)[-1].payload["reason"]


def test_reduce_only_with_nothing_to_reduce_is_rejected(tmp_path) -> None:
    b = Bench(tmp_path)
    b.submit("EURUSD", SELL, 1.0, reduce_only=True)
    b.tick(("EURUSD", 1.09990, 1.10000))
    assert "reduce-only" in b.events(EventKind.ORDER_REJECTED)[-1].payload["reason"]
    assert not b.account.positions


def test_an_order_beyond_free_margin_is_rejected_with_the_reason(tmp_path) -> None:
    b = Bench(tmp_path, accounts={"A": {"balance": 1_000.0}})  # 30:1 carries 27,000 USD
    b.submit("EURUSD", BUY, 1.0)  # 110,000 USD notional needs 3,666.67
    b.tick(("EURUSD", 1.09990, 1.10000))
    reason = b.events(EventKind.ORDER_REJECTED)[-1].payload["reason"]
    assert reason.startswith("insufficient margin: needs 3666.")


def test_below_minimum_size_and_a_closed_market_are_rejected(tmp_path) -> None:
    b = Bench(tmp_path)
    b.submit("EURUSD", BUY, 0.001)
    b.tick(("EURUSD", 1.09990, 1.10000))
    assert "below minimum size" in b.events(EventKind.ORDER_REJECTED)[-1].payload["reason"]
    b.ms += 4 * 24 * 3600 * 1000  # Saturday
    b.submit("EURUSD", BUY, 1.0)
    b.tick(("EURUSD", 1.09990, 1.10000))
    assert b.events(EventKind.ORDER_REJECTED)[-1].payload["reason"] == "market closed"


def test_fills_record_slippage_against_the_decision_price(tmp_path) -> None:
    b = Bench(tmp_path, paper={"slippage_spread": 0.5})
    b.submit("EURUSD", BUY, 1.0, decision_price=1.09990)
    b.tick(("EURUSD", 1.09990, 1.10010))  # spread 2 pips: half of it as slippage
    fill = b.events(EventKind.ORDER_FILLED)[-1].payload
    assert fill["price"] == pytest.approx(1.10020)
    assert fill["slippage"] == pytest.approx(0.00030)


def test_square_root_impact_beyond_the_touch(tmp_path) -> None:
    paper = {"impact_k": 1.0, "liquidity": {"forex": {"touch_lots": 10, "typical_lots": 100}}}
    b = Bench(tmp_path, paper=paper, accounts={"A": {"balance": 1e7}})
    b.venue.volatility.on_bar(b.quotes.index["EURUSD"], 1.1010, 1.1000, 1.1005)
    vol = b.venue.volatility.value(b.quotes.index["EURUSD"])
    b.submit("EURUSD", BUY, 35.0)
    b.tick(("EURUSD", 1.09990, 1.10000))
    expected = 1.10000 + vol * np.sqrt(25 / 100)
    assert b.events(EventKind.ORDER_FILLED)[-1].payload["price"] == pytest.approx(
        round(expected, 5)
    )
