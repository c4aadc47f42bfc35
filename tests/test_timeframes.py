"""A strategy asks for the last bars of a symbol on M1, M5, M15 or H1 and gets numpy columns."""

from __future__ import annotations

import numpy as np
import pytest

from mikrobot_tui.domain.market import Bar
from mikrobot_tui.trading.indicators import ema
from mikrobot_tui.trading.timeframes import H1, HISTORY_TIMEFRAMES, M15, BarHistory

T0 = 1_767_225_600 * 10**9  # 2026-01-01 00:00 UTC


def _bar(symbol: str, timeframe: str, i: int, price: float) -> Bar:
    ts = T0 + i * HISTORY_TIMEFRAMES[timeframe]
    return Bar(symbol, timeframe, ts, price, price + 0.5, price - 0.5, price + 0.25, 7, 10.0 + i)


def test_the_last_n_bars_come_oldest_first_as_columns() -> None:
    history = BarHistory(capacity=8)
    for i in range(5):
        history.push(_bar("EURUSD", "M15", i, 1.0 + i))
    ts, o, h, lo, c, v = history.last("EURUSD", "M15", 3)
    assert ts.tolist() == [T0 + k * M15 for k in (2, 3, 4)]
    assert o.tolist() == [3.0, 4.0, 5.0]
    assert h.tolist() == [3.5, 4.5, 5.5] and lo.tolist() == [2.5, 3.5, 4.5]
    assert c.tolist() == [3.25, 4.25, 5.25] and v.tolist() == [12.0, 13.0, 14.0]
    assert ts.dtype == np.int64 and o.dtype == np.float64


def test_a_full_ring_keeps_the_newest_capacity_bars() -> None:
    history = BarHistory(capacity=4)
    for i in range(11):  # wraps around more than twice
        history.push(_bar("XAUUSD", "H1", i, 100.0 + i))
        _, o, *_ = history.last("XAUUSD", "H1", 10)
        assert o.tolist() == [100.0 + k for k in range(max(0, i - 3), i + 1)]
    assert history.count("XAUUSD", "H1") == 4
    ts, *_ = history.last("XAUUSD", "H1", 2)
    assert ts.tolist() == [T0 + 9 * H1, T0 + 10 * H1]


def test_symbols_and_timeframes_are_kept_apart() -> None:
    history = BarHistory()
    history.push(_bar("EURUSD", "M1", 0, 1.1))
    history.push(_bar("EURUSD", "M5", 0, 1.2))
    history.push(_bar("GBPUSD", "M1", 0, 1.3))
    assert history.last("EURUSD", "M1", 5)[1].tolist() == [1.1]
    assert history.last("EURUSD", "M5", 5)[1].tolist() == [1.2]
    assert history.last("GBPUSD", "M1", 5)[1].tolist() == [1.3]
    assert [len(col) for col in history.last("GBPUSD", "H1", 5)] == [0] * 6  # none yet
    assert history.count("USDJPY", "M1") == 0


def test_returned_columns_are_copies_ready_for_the_indicators() -> None:
    history = BarHistory(capacity=50)
    for i in range(30):
        history.push(_bar("EURUSD", "M5", i, float(i)))
    _, _, _, _, close, _ = history.last("EURUSD", "M5", 20)
    before = close.copy()
    for i in range(30, 90):
        history.push(_bar("EURUSD", "M5", i, float(i)))
    assert np.array_equal(close, before)  # later pushes do not reach a strategy's arrays
    assert ema(close, 5)[-1] == pytest.approx(29.25 - 2.0)  # a line: (n - 1) / 2 behind


def test_bars_out_of_order_or_of_unknown_timeframes_are_refused() -> None:
    history = BarHistory()
    history.push(_bar("EURUSD", "M1", 5, 1.1))
    with pytest.raises(ValueError, match="time order"):
        history.push(_bar("EURUSD", "M1", 5, 1.1))  # the same bar twice
    with pytest.raises(ValueError, match="timeframe"):
        history.push(Bar("EURUSD", "W1", T0, 1.0, 1.0, 1.0, 1.0, 1, 0.0))
    with pytest.raises(ValueError, match="timeframe"):
        history.last("EURUSD", "MN1", 3)
    with pytest.raises(ValueError, match="n must"):
        history.last("EURUSD", "M1", -1)
    with pytest.raises(ValueError, match="capacity"):
        BarHistory(capacity=0)
