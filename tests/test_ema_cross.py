"""The EMA crossover strategy signals once, on the bar where the EMAs cross."""

from __future__ import annotations

import pytest

from mikrobot_tui.domain.market import M1, Bar
from mikrobot_tui.domain.orders import Side
from mikrobot_tui.trading.strategies import (
    STRATEGIES,
    EmaCross,
    Strategy,
    build_strategy,
    strategy_params,
)

T0 = 1_700_000_040 * 1_000_000_000  # a minute boundary

# Falls by 0.2 a bar, turns up at bar 6, turns down at bar 10.
CLOSES = [10.0, 9.8, 9.6, 9.4, 9.2, 9.0, 9.2, 9.4, 9.6, 9.8, 9.6, 9.4, 9.2]
# With fast = 2 (k = 2/3) and slow = 4 (k = 0.4), worked out by hand:
#   slow: seed at bar 3 = (10 + 9.8 + 9.6 + 9.4) / 4 = 9.7; bar 4: 9.5; bar 5: 9.3;
#         bar 6: 9.3 + 0.4 * (9.2 - 9.3) = 9.26; bar 7: 9.26 + 0.4 * (9.4 - 9.26) = 9.316
#   fast: seed at bar 1 = 9.9; bar 2: 9.7; bar 3: 9.5; bar 4: 9.3; bar 5: 9.1;
#         bar 6: 9.1 + 2/3 * 0.1 = 9.1667 (< 9.26); bar 7: 9.1667 + 2/3 * 0.2333 = 9.3222 (> 9.316)
# so the fast EMA crosses above at bar 7. It falls back below at bar 11
# (bar 10: fast 9.6342 > slow 9.5867; bar 11: fast 9.4781 < slow 9.5120).
CROSS_UP, CROSS_DOWN = 7, 11


def bar(i: int, close: float, *, symbol: str = "EURUSD", half_range: float = 0.5) -> Bar:
    # high/low = close +- 0.5 and |close change| <= 0.5, so every true range is exactly 1
    # (max(1, |change| + 0.5)) and ATR is 1 once ready: the stop is stop_atr * 1.
    return Bar(
        symbol=symbol,
        timeframe="M1",
        ts_open=T0 + i * M1,
        open=close,
        high=close + half_range,
        low=close - half_range,
        close=close,
        ticks=10,
        volume=0.0,
    )


def run(strategy: EmaCross, closes: list[float], **kw: object) -> dict[int, object]:
    signals = {}
    for i, c in enumerate(closes):
        s = strategy.on_bar(bar(i, c, **kw))  # type: ignore[arg-type]
        if s is not None:
            signals[i] = s
    return signals


def test_one_buy_signal_on_the_bar_of_the_cross() -> None:
    strategy = EmaCross(fast=2, slow=4, atr_period=3, stop_atr=2.0, reward_risk=1.5)
    signals = run(strategy, CLOSES[:CROSS_DOWN])
    assert list(signals) == [CROSS_UP]
    sig = signals[CROSS_UP]
    assert sig.side is Side.BUY
    assert sig.symbol == "EURUSD"
    assert sig.strategy == "ema_cross(2,4)"
    assert sig.price == 9.4
    assert sig.ts == T0 + (CROSS_UP + 1) * M1  # the bar's close time
    assert sig.stop_distance == pytest.approx(2.0)  # 2.0 x ATR 1
    assert sig.take_profit_distance == pytest.approx(3.0)  # 1.5 x stop


def test_the_cross_back_down_is_a_sell() -> None:
    signals = run(EmaCross(fast=2, slow=4, atr_period=3), CLOSES)
    assert list(signals) == [CROSS_UP, CROSS_DOWN]
    assert signals[CROSS_DOWN].side is Side.SELL
    assert signals[CROSS_DOWN].price == 9.4
    assert signals[CROSS_DOWN].stop_distance == pytest.approx(2.0)


def test_no_signal_before_the_slow_ema_exists() -> None:
    # The fast EMA is below the slow one from the first bar both exist (bar 3): that only sets
    # the starting side, it is not a cross.
    signals = run(EmaCross(fast=2, slow=4, atr_period=3), CLOSES[:CROSS_UP])
    assert signals == {}


def test_a_cross_while_atr_is_not_ready_is_skipped() -> None:
    # ATR(10) first exists at bar 10: the cross at bar 7 is consumed, the one at 11 signals.
    signals = run(EmaCross(fast=2, slow=4, atr_period=10), CLOSES)
    assert list(signals) == [CROSS_DOWN]


def test_a_cross_with_zero_atr_is_skipped() -> None:
    # Bars with high = low = close and ATR(1) = the bar's true range = |close change|.
    # After bar 5 (fast 9.1, slow 9.3) the close jumps to 9.45 and stays: bar 6 moves the gaps
    # to the close from 0.35 / 0.15 to 0.1167 / 0.09 (no cross yet), bar 7 to 0.0389 / 0.054:
    # a cross on a bar whose true range is 0.
    closes = [*CLOSES[:6], 9.45, 9.45]
    assert run(EmaCross(fast=2, slow=4, atr_period=1), closes, half_range=0.0) == {}
    # the same cross with a nonzero range signals, which shows the cross is at bar 7
    signals = run(EmaCross(fast=2, slow=4, atr_period=1), closes, half_range=0.1)
    assert list(signals) == [7]


def test_symbols_have_independent_state() -> None:
    strategy = EmaCross(fast=2, slow=4, atr_period=3)
    got: list[tuple[int, str]] = []
    for i, c in enumerate(CLOSES[:CROSS_DOWN]):
        for symbol, close in (("EURUSD", c), ("GBPUSD", 1.25)):
            s = strategy.on_bar(bar(i, close, symbol=symbol))
            if s is not None:
                got.append((i, s.symbol))
    assert got == [(CROSS_UP, "EURUSD")]


def test_duplicate_and_other_timeframe_bars_are_ignored() -> None:
    strategy = EmaCross(fast=2, slow=4, atr_period=3)
    signals = {}
    for i, c in enumerate(CLOSES[:CROSS_DOWN]):
        b = bar(i, c)
        # a repeated bar and an M5 bar must not move the EMAs
        for feed in (b, b, _m5(b)):
            s = strategy.on_bar(feed)
            if s is not None:
                signals[i] = s
    assert list(signals) == [CROSS_UP]


def _m5(b: Bar) -> Bar:
    return Bar(b.symbol, "M5", b.ts_open, b.open, b.high, b.low, b.close, b.ticks, b.volume)


def test_build_strategy_from_config_params() -> None:
    strategy = build_strategy("ema_cross", {"fast": 8.0, "slow": 34.0})
    assert isinstance(strategy, Strategy)
    assert strategy.name == "ema_cross(8,34)"
    assert strategy.timeframe == "M1"
    assert build_strategy("ema_cross", {}).name == "ema_cross(5,20)"
    assert STRATEGIES["ema_cross"] is EmaCross
    assert strategy_params("ema_cross") == {
        "fast": 5,
        "slow": 20,
        "atr_period": 14,
        "stop_atr": 2.0,
        "reward_risk": 1.5,
    }


def test_build_strategy_names_the_bad_param_and_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown param 'fsat'.*allowed: fast .*slow"):
        build_strategy("ema_cross", {"fsat": 5})
    with pytest.raises(ValueError, match=r"unknown strategy 'ema'.*ema_cross"):
        build_strategy("ema", {})
    with pytest.raises(ValueError, match=r"fast must be < slow.*allowed: fast, slow"):
        build_strategy("ema_cross", {"fast": 20, "slow": 20})
    with pytest.raises(ValueError, match=r"fast must be a whole number"):
        build_strategy("ema_cross", {"fast": 5.5})
    with pytest.raises(ValueError, match=r"stop_atr must be a number in \(0, 50\]"):
        build_strategy("ema_cross", {"stop_atr": 0})
    with pytest.raises(ValueError, match=r"reward_risk must be a number in \(0, 50\]"):
        build_strategy("ema_cross", {"reward_risk": float("nan")})
