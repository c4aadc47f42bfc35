"""The execution simulator against hand-built ticks with known answers."""

from __future__ import annotations

import numpy as np

from mikrobot_tui.domain.market import NS_PER_MS, TICK_DTYPE
from mikrobot_tui.domain.orders import Order, OrderIntent, Position, Side
from mikrobot_tui.paper.execution import BatchQuotes, Cancel, Exit, OrderFill, match

T0 = 1_700_000_000_000_000_000
SYMS = {"EURUSD": 0, "USDJPY": 1}


def ticks(rows: list[tuple[int, int, float, float]]) -> np.ndarray:
    """rows: (ms after T0, sym, bid, ask)."""
    out = np.zeros(len(rows), dtype=TICK_DTYPE)
    for i, (ms, sym, bid, ask) in enumerate(rows):
        out[i] = (T0 + ms * NS_PER_MS, T0 + ms * NS_PER_MS, sym, bid, ask, np.nan, np.nan)
    return out


def quotes(t: np.ndarray) -> BatchQuotes:
    return BatchQuotes(t, np.full(2, np.nan), np.full(2, np.nan))


def order(side=Side.BUY, due_ms=0, sl=None, tp=None, intent=OrderIntent.OPEN, pid=None, oid="A-1"):
    return Order(oid, "A", "EURUSD", side, 0.1, intent, T0, T0 + due_ms * NS_PER_MS, sl, tp, pid)


def position(side=Side.BUY, sl=None, tp=None, pid="A-0"):
    return Position(pid, "A", "EURUSD", side, 0.1, 1.1000, T0, sl, tp, 0.0, 10.0, 10_000.0)


def test_a_buy_fills_at_the_ask_of_the_first_tick_after_the_latency() -> None:
    t = ticks(
        [
            (0, 0, 1.1000, 1.1002),
            (10, 1, 150.0, 150.01),
            (40, 0, 1.1001, 1.1003),
            (50, 0, 1.1004, 1.1006),
            (70, 0, 1.1005, 1.1007),
        ]
    )
    out = match(quotes(t), 0, len(t), [order(due_ms=50)], [], SYMS)
    assert out == [OrderFill(3, T0 + 50 * NS_PER_MS, order(due_ms=50), 1.1006)]


def test_with_zero_latency_the_decision_tick_itself_fills_and_a_sell_gets_the_bid() -> None:
    t = ticks([(0, 0, 1.1000, 1.1002), (5, 0, 1.0990, 1.0992)])
    out = match(quotes(t), 0, 2, [order(side=Side.SELL, due_ms=0)], [], SYMS)
    assert isinstance(out[0], OrderFill) and out[0].idx == 0 and out[0].price == 1.1000


def test_nothing_fills_before_the_due_time_even_with_ticks_of_other_symbols() -> None:
    t = ticks([(0, 0, 1.1, 1.1002), (60, 1, 150.0, 150.01)])
    assert match(quotes(t), 0, 2, [order(due_ms=50)], [], SYMS) == []


def test_a_long_stop_triggers_on_the_bid_and_a_gap_fills_at_the_worse_price() -> None:
    t = ticks([(0, 0, 1.0995, 1.0997), (1, 0, 1.0985, 1.0987), (2, 0, 1.0970, 1.0972)])
    out = match(quotes(t), 0, 3, [], [position(sl=1.0990, tp=1.1100)], SYMS)
    assert out == [Exit(1, T0 + NS_PER_MS, "A-0", 1.0985, "stop_loss", None)]


def test_a_short_target_triggers_on_the_ask() -> None:
    t = ticks([(0, 0, 1.0948, 1.0951), (1, 0, 1.0947, 1.0949)])
    out = match(quotes(t), 0, 2, [], [position(side=Side.SELL, sl=1.11, tp=1.0950)], SYMS)
    assert out == [Exit(1, T0 + NS_PER_MS, "A-0", 1.0949, "take_profit", None)]


def test_a_new_position_is_watched_from_the_tick_after_its_fill() -> None:
    t = ticks([(0, 0, 1.1000, 1.1002), (1, 0, 1.1000, 1.1002), (2, 0, 1.0980, 1.0982)])
    o = order(due_ms=0, sl=1.1001, tp=1.2)  # the fill tick's bid is below the stop already
    out = match(quotes(t), 0, 3, [o], [], SYMS)
    assert [type(x) for x in out] == [OrderFill, Exit]
    assert out[1].idx == 1 and out[1].reason == "stop_loss"


def test_a_close_order_beaten_by_the_stop_is_cancelled() -> None:
    t = ticks([(0, 0, 1.0980, 1.0982), (60, 0, 1.1000, 1.1002)])
    close = order(side=Side.SELL, due_ms=50, intent=OrderIntent.CLOSE, pid="A-0", oid="A-2")
    out = match(quotes(t), 0, 2, [close], [position(sl=1.0990)], SYMS)
    assert [type(x) for x in out] == [Exit, Cancel]
    assert out[0].reason == "stop_loss" and out[1].order.order_id == "A-2"


def test_a_close_order_fills_at_market_when_it_comes_first() -> None:
    t = ticks([(0, 0, 1.1000, 1.1002), (60, 0, 1.1010, 1.1012)])
    close = order(side=Side.SELL, due_ms=50, intent=OrderIntent.CLOSE, pid="A-0", oid="A-2")
    (exit_,) = match(quotes(t), 0, 2, [close], [position(sl=1.09)], SYMS)
    assert exit_ == Exit(1, T0 + 60 * NS_PER_MS, "A-0", 1.1010, "close", close)


def test_the_window_limits_matching_to_start_stop() -> None:
    t = ticks([(0, 0, 1.0, 1.0002), (1, 0, 1.0, 1.0002), (2, 0, 1.0, 1.0002)])
    out = match(quotes(t), 1, 2, [order(due_ms=0)], [], SYMS)
    assert [x.idx for x in out] == [1]


def test_quote_at_carries_the_previous_batch() -> None:
    t = ticks([(5, 0, 1.2, 1.2002)])
    q = BatchQuotes(t, np.array([np.nan, 150.0]), np.array([np.nan, 150.02]))
    assert q.quote_at(1, 0) == (150.0, 150.02)
    assert q.quote_at(0, 0) == (1.2, 1.2002)
    assert q.mid_at(1, 0) == 150.01


def test_a_position_is_never_closed_on_ticks_older_than_itself() -> None:
    t = ticks([(0, 0, 1.0900, 1.0902), (100, 0, 1.0980, 1.0982)])
    old = Position(
        "A-0",
        "A",
        "EURUSD",
        Side.BUY,
        0.1,
        1.1,
        T0 + 50 * NS_PER_MS,
        1.0990,
        None,
        0.0,
        10.0,
        10_000.0,
    )
    (exit_,) = match(quotes(t), 0, 2, [], [old], SYMS)
    assert exit_.idx == 1  # the tick at 0 ms came before the position opened at 50 ms
