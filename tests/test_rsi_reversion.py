"""The RSI reversion baseline on drawn closes."""

from __future__ import annotations

from mikrobot_tui.domain.market import NS_PER_SECOND, Bar
from mikrobot_tui.domain.orders import Side
from mikrobot_tui.trading.indicators import rsi
from mikrobot_tui.trading.strategies import build_strategy

T0 = 1_700_000_400 * NS_PER_SECOND


def bars(closes: list[float]) -> list[Bar]:
    return [
        Bar("EURUSD", "M1", T0 + i * 60 * NS_PER_SECOND, c, c + 0.0003, c - 0.0003, c, 10, 0)
        for i, c in enumerate(closes)
    ]


def test_it_buys_when_rsi_crosses_back_up_through_oversold_and_sells_the_mirror() -> None:
    down = [1.1 - 0.0004 * i for i in range(12)]
    up = [down[-1] + 0.0006 * (i + 1) for i in range(4)]
    closes = down + up
    s = build_strategy("rsi_reversion", {"period": 5, "atr_period": 5})
    signals = [(i, x) for i, b in enumerate(bars(closes)) if (x := s.on_bar(b)) is not None]
    values = rsi(closes, 5)
    (i, signal), *_ = signals
    assert signal.side is Side.BUY
    assert values[i - 1] < 30 <= values[i]  # exactly where the array RSI crosses
    mirror = build_strategy("rsi_reversion", {"period": 5, "atr_period": 5})
    flipped = [2.2 - c for c in closes]
    got = [mirror.on_bar(b) for b in bars(flipped)]
    assert next(x.side for x in got if x is not None) is Side.SELL
