"""The house strategy on drawn bar sequences: a clean break and retest, a failed retest, an
expired setup, a retest outside the tolerance, the ATR gate, JPY and gold pip sizes.

The drawing, in pips of the symbol (EURUSD: 0.0001) above a base price, M5 first:

    M5 highs   0  10  30  15   5 | then a bar closing at 40: the swing high (30) is broken
    M1         low 34 (not yet) | low 30.5, bearish (the retest) | close 38, bullish: entry
"""

from __future__ import annotations

import pytest

from mikrobot_tui.domain.market import NS_PER_SECOND, Bar
from mikrobot_tui.domain.orders import Side
from mikrobot_tui.trading.strategies import build_strategy, strategy_params

T0 = 1_700_000_400 * NS_PER_SECOND  # a multiple of 5 minutes
M5, M1 = 300 * NS_PER_SECOND, 60 * NS_PER_SECOND
WIDE_GATE = {"atr_min_pips": 0.0, "atr_max_pips": 1000.0, "atr_period": 3, "stop_atr": 0.1}


class Drawing:
    def __init__(self, symbol: str, base: float, pip: float) -> None:
        self.symbol, self.base, self.pip = symbol, base, pip
        self.ts = T0

    def p(self, pips: float) -> float:
        return round(self.base + pips * self.pip, 6)

    def m5(self, o: float, h: float, lo: float, c: float) -> Bar:
        bar = Bar(self.symbol, "M5", self.ts, self.p(o), self.p(h), self.p(lo), self.p(c), 100, 0)
        self.ts += M5
        return bar

    def m1(self, o: float, h: float, lo: float, c: float) -> Bar:
        bar = Bar(self.symbol, "M1", self.ts, self.p(o), self.p(h), self.p(lo), self.p(c), 20, 0)
        self.ts += M1
        return bar

    def structure(self) -> list[Bar]:
        """Five M5 bars with a swing high at 30 pips, then one closing at 40: the break."""
        return [
            self.m5(-5, 0, -10, -2),
            self.m5(-2, 10, -4, 8),
            self.m5(8, 30, 6, 20),  # the swing high
            self.m5(20, 15, 2, 5),
            self.m5(5, 5, -6, 0),  # confirms it (two bars on each side)
            self.m5(0, 42, -1, 40),  # closes above 30: bullish break of structure
        ]


def run(strategy, bars: list[Bar]):
    signals = [strategy.on_bar(b) for b in bars]
    return [s for s in signals if s is not None]


def strategy(**params):
    return build_strategy("bos_retest", {**WIDE_GATE, **params})


def test_a_clean_break_and_retest_enters_long_with_the_stop_beyond_the_retest() -> None:
    d = Drawing("EURUSD", 1.1, 0.0001)
    s = strategy()
    bars = [
        *d.structure(),
        d.m1(40, 42, 34, 36),  # not back to the level yet
        d.m1(36, 37, 30.5, 32),  # the retest: low within 0.8 pip of 30, closes down
        d.m1(32, 39, 31, 38),  # closes back up above the level: enter
    ]
    (signal,) = run(s, bars)
    assert signal.side is Side.BUY and signal.price == pytest.approx(d.p(38))
    assert signal.stop_distance == pytest.approx(7.5 * d.pip)  # 38 - 30.5
    assert signal.take_profit_distance == pytest.approx(2.5 * 7.5 * d.pip)
    assert "broke up through the swing at 1.103" in signal.reason


def test_a_close_back_through_the_level_fails_the_setup() -> None:
    d = Drawing("EURUSD", 1.1, 0.0001)
    bars = [*d.structure(), d.m1(40, 41, 28, 28.5), d.m1(28.5, 39, 28, 38)]  # 28.5 < 30 - 0.8
    assert run(strategy(), bars) == []


def test_a_setup_expires_after_its_m1_bars() -> None:
    d = Drawing("EURUSD", 1.1, 0.0001)
    waiting = [d.m1(40, 42, 35, 41) for _ in range(3)]
    bars = d.structure() + waiting + [d.m1(41, 41, 30.5, 32), d.m1(32, 39, 31, 38)]
    assert run(strategy(expiry_bars=3), bars) == []
    d = Drawing("EURUSD", 1.1, 0.0001)
    waiting = [d.m1(40, 42, 35, 41) for _ in range(3)]
    bars = d.structure() + waiting + [d.m1(41, 41, 30.5, 32), d.m1(32, 39, 31, 38)]
    assert len(run(strategy(expiry_bars=6), bars)) == 1


def test_a_retest_that_stays_outside_the_tolerance_never_enters() -> None:
    d = Drawing("EURUSD", 1.1, 0.0001)
    bars = [*d.structure(), d.m1(40, 41, 30.9, 32), d.m1(32, 39, 31, 38)]  # 0.9 pip away
    assert run(strategy(), bars) == []
    d = Drawing("EURUSD", 1.1, 0.0001)
    bars = [*d.structure(), d.m1(40, 41, 30.9, 32), d.m1(32, 39, 31, 38)]
    assert len(run(strategy(tolerance_pips=1.0), bars)) == 1


def test_a_bearish_break_mirrors_and_enters_short() -> None:
    d = Drawing("EURUSD", 1.1, 0.0001)
    bars = [
        d.m5(5, 10, 0, 2),
        d.m5(2, 4, -10, -8),
        d.m5(-8, -6, -30, -20),  # the swing low
        d.m5(-20, -2, -15, -5),
        d.m5(-5, 6, -5, 0),
        d.m5(0, 1, -42, -40),  # closes below -30
        d.m1(-40, -34, -42, -36),
        d.m1(-36, -30.5, -37, -32),  # the retest from below
        d.m1(-32, -31, -39, -38),  # closes back down: enter short
    ]
    (signal,) = run(strategy(), bars)
    assert signal.side is Side.SELL
    assert signal.stop_distance == pytest.approx(7.5 * d.pip)


@pytest.mark.parametrize(
    ("symbol", "base", "pip"),
    [("USDJPY", 150.0, 0.01), ("XAUUSD", 2000.0, 0.1)],
)
def test_the_tolerance_is_in_the_symbols_own_pips(symbol: str, base: float, pip: float) -> None:
    d = Drawing(symbol, base, pip)
    bars = [*d.structure(), d.m1(40, 41, 30.5, 32), d.m1(32, 39, 31, 38)]
    (signal,) = run(strategy(), bars)
    assert signal.stop_distance == pytest.approx(7.5 * pip)
    d = Drawing(symbol, base, pip)
    bars = [*d.structure(), d.m1(40, 41, 30.9, 32), d.m1(32, 39, 31, 38)]
    assert run(strategy(), bars) == []


def test_the_atr_gate_refuses_dead_and_wild_markets() -> None:
    d = Drawing("EURUSD", 1.1, 0.0001)
    bars = [*d.structure(), d.m1(40, 41, 30.5, 32), d.m1(32, 39, 31, 38)]
    # these M5 bars have an ATR of about 20 pips: outside 4 to 15
    assert run(strategy(atr_min_pips=4.0, atr_max_pips=15.0), bars) == []
    d = Drawing("EURUSD", 1.1, 0.0001)
    bars = [*d.structure(), d.m1(40, 41, 30.5, 32), d.m1(32, 39, 31, 38)]
    assert len(run(strategy(atr_min_pips=4.0, atr_max_pips=40.0), bars)) == 1


def test_its_parameters_are_declared_with_the_issues_defaults() -> None:
    params = strategy_params("bos_retest")
    assert params["tolerance_pips"] == 0.8 and params["reward_risk"] == 2.5
    assert (params["atr_min_pips"], params["atr_max_pips"]) == (4.0, 15.0)
    with pytest.raises(ValueError, match="atr_min_pips must be < atr_max_pips"):
        build_strategy("bos_retest", {"atr_min_pips": 20.0})
