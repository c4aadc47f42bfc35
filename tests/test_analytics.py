"""Performance metrics against answers worked out by hand (and with the statistics module)."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from mikrobot_tui.paper import analytics as an
from mikrobot_tui.paper.analytics import Undefined

DAY = an.NS_PER_DAY
S = an.NS_PER_SECOND


def undefined(value, words: str) -> bool:
    return isinstance(value, Undefined) and words in value.reason


def test_periods_per_year_follow_the_market_and_the_frequency() -> None:
    assert an.periods_per_year("D", crypto=False) == 252
    assert an.periods_per_year("D", crypto=True) == 365
    assert an.periods_per_year("H", crypto=False) == 252 * 24
    assert an.periods_per_year("H", crypto=True) == 365 * 24
    with pytest.raises(ValueError):
        an.periods_per_year("W", crypto=False)


def test_returns_ratios_on_up_down_up() -> None:
    # 100 -> 110 -> 99 -> 108.9: +10%, -10%, +10%
    r = an.simple_returns(np.array([100.0, 110.0, 99.0, 108.9]))
    assert r == pytest.approx([0.1, -0.1, 0.1])
    mean, sd = 0.1 / 3, math.sqrt(((0.2 / 3) ** 2 * 2 + (0.4 / 3) ** 2) / 2)  # sample std
    assert sd == pytest.approx(statistics.stdev([0.1, -0.1, 0.1]))
    assert an.annualized_volatility(r, 252) == pytest.approx(sd * math.sqrt(252))
    assert an.sharpe(r, 252) == pytest.approx(mean / sd * math.sqrt(252))
    assert an.sharpe(r, 252) == pytest.approx(4.5826, abs=1e-4)
    # downside deviation over all three periods: sqrt((0 + 0.01 + 0) / 3)
    downside = math.sqrt(0.01 / 3)
    assert an.downside_deviation(r) == pytest.approx(downside)
    assert an.sortino(r, 252) == pytest.approx(mean / downside * math.sqrt(252))
    assert an.sortino(r, 252) == pytest.approx(9.1652, abs=1e-4)


def test_risk_free_is_subtracted_per_period() -> None:
    r = np.array([0.01, 0.03, -0.01])
    rf = 0.0252  # a year: 0.0001 a period at 252
    sd = statistics.stdev(r.tolist())
    assert an.sharpe(r, 252, rf) == pytest.approx((0.01 - 0.0001) / sd * math.sqrt(252))


def test_a_flat_curve_has_no_ratio_and_no_drawdown() -> None:
    eq = np.full(5, 1000.0)
    r = an.simple_returns(eq)
    assert an.annualized_volatility(r, 252) == 0.0
    assert undefined(an.sharpe(r, 252), "standard deviation 0")
    assert undefined(an.sortino(r, 252), "no period gained or lost")
    amount, fraction = an.drawdown(eq)
    assert amount.max() == 0.0 and fraction.max() == 0.0
    assert an.max_drawdown_duration(np.arange(5) * DAY, eq) == 0.0
    assert undefined(an.calmar(0.0, 0.0), "no drawdown")
    assert an.total_return(1000.0, 1000.0) == 0.0
    assert an.cagr(1000.0, 1000.0, 30) == 0.0


def test_no_losing_period_makes_sortino_infinite_hence_null() -> None:
    r = np.array([0.01, 0.02, 0.0])
    assert undefined(an.sortino(r, 365), "infinite")
    assert isinstance(an.sharpe(r, 365), float)


def test_one_period_is_too_few_for_a_ratio() -> None:
    r = an.simple_returns(np.array([100.0, 90.0]))  # a first-period loss of 10%
    assert r == pytest.approx([-0.1])
    for fn in (an.annualized_volatility, an.sharpe, an.sortino):
        assert undefined(fn(r, 252), "at least 2 periods")


def test_a_first_period_loss_counts_from_the_starting_equity() -> None:
    ts = np.array([0, 1, 2]) * DAY
    eq = np.array([100.0, 90.0, 99.0])  # the start, then each period's close
    r = an.simple_returns(eq)
    assert r == pytest.approx([-0.1, 0.1])
    amount, fraction = an.drawdown(eq)
    assert amount.max() == pytest.approx(10.0) and fraction.max() == pytest.approx(0.1)
    # never back at 100: the drawdown lasts from the start to the last point
    assert an.max_drawdown_duration(ts, eq) == 2 * 86_400


def test_a_drawdown_that_recovers_and_one_that_does_not() -> None:
    ts = np.array([0, 1, 2, 3, 4]) * DAY
    eq = np.array([100.0, 120.0, 90.0, 130.0, 125.0])
    amount, fraction = an.drawdown(eq)
    assert amount.tolist() == pytest.approx([0, 0, 30, 0, 5])
    assert fraction.max() == pytest.approx(0.25)  # 120 -> 90
    # 120 at day 1, back above it at day 3: 2 days; 130 at day 3, still below at day 4: 1 day
    assert an.max_drawdown_duration(ts, eq) == 2 * 86_400
    longer = np.array([100.0, 120.0, 90.0, 130.0, 125.0, 126.0, 127.0])
    assert an.max_drawdown_duration(np.arange(7) * DAY, longer) == 3 * 86_400


def test_cagr_is_over_calendar_days_and_calmar_divides_it_by_the_drawdown() -> None:
    # 100 -> 121 over two calendar years of 365.25 days: 10% a year
    assert an.cagr(100.0, 121.0, 730.5) == pytest.approx(0.1)
    assert an.calmar(0.1, 0.25) == pytest.approx(0.4)
    assert undefined(an.cagr(100.0, 121.0, 0), "no length")
    assert undefined(an.cagr(100.0, 0.0, 10), "at or below zero")
    assert undefined(an.cagr(100.0, 200.0, 1e-9), "too short")
    assert undefined(an.calmar(Undefined("why"), 0.1), "CAGR is undefined: why")


def test_trade_metrics_with_a_break_even() -> None:
    net = np.array([10.0, -5.0, 0.0, 20.0, -5.0, -5.0])
    assert an.outcomes(net).tolist() == [1, -1, 0, 1, -1, -1]
    assert an.win_rate(net) == pytest.approx(2 / 6)  # the break-even is not a win
    assert an.avg_win(net) == 15.0
    assert an.avg_loss(net) == -5.0
    assert an.payoff_ratio(net) == pytest.approx(3.0)
    assert an.profit_factor(net) == pytest.approx(30 / 15)
    assert an.expectancy(net) == pytest.approx(15 / 6)
    assert an.max_consecutive(net, 1) == 1  # the break-even ends the first run of wins
    assert an.max_consecutive(net, -1) == 2


def test_sqn_is_sqrt_n_mean_over_sample_std_and_skips_trades_without_r() -> None:
    r = np.array([1.0, -0.5, 0.0, 2.0, -0.5, -0.5, math.nan])
    # mean 0.25; squared deviations sum to 5.375; sample variance 1.075
    expected = math.sqrt(6) * 0.25 / math.sqrt(1.075)
    assert an.sqn(r) == pytest.approx(expected)
    assert an.sqn(r) == pytest.approx(0.590624, abs=1e-6)
    assert undefined(an.sqn(np.array([1.0])), "at least 2")
    assert undefined(an.sqn(np.array([1.0, 1.0])), "same R")
    # N is not capped at 100
    many = np.tile([1.0, -0.5], 200)
    assert an.sqn(many) == pytest.approx(math.sqrt(400) * 0.25 / statistics.stdev(many.tolist()))


def test_all_winners_make_the_ratios_infinite_hence_null() -> None:
    net = np.array([10.0, 20.0])
    assert an.win_rate(net) == 1.0
    assert undefined(an.profit_factor(net), "no losing trade: the ratio is infinite")
    assert undefined(an.payoff_ratio(net), "infinite")
    assert undefined(an.avg_loss(net), "no losing trade")
    assert an.max_consecutive(net, 1) == 2 and an.max_consecutive(net, -1) == 0


def test_all_losers() -> None:
    net = np.array([-10.0, -20.0])
    assert an.win_rate(net) == 0.0
    assert an.profit_factor(net) == 0.0
    assert an.avg_loss(net) == -15.0
    assert undefined(an.avg_win(net), "no winning trade")
    assert undefined(an.payoff_ratio(net), "no winning trade")
    assert an.expectancy(net) == -15.0


def test_only_break_evens_and_cent_noise() -> None:
    net = np.array([0.0, 1e-12, -1e-12])
    assert an.outcomes(net).tolist() == [0, 0, 0]
    assert an.win_rate(net) == 0.0
    assert undefined(an.profit_factor(net), "only break-even")
    assert an.max_consecutive(net, 1) == 0 and an.max_consecutive(net, -1) == 0


def test_no_trades() -> None:
    none = np.zeros(0)
    for fn in (an.win_rate, an.profit_factor, an.expectancy):
        assert undefined(fn(none), "no closed trade")
    assert undefined(an.avg_holding_s(none, none), "no closed trade")
    assert an.max_consecutive(none, 1) == 0
    assert an.exposure(none, none, 0, 10) == 0.0


def test_exposure_is_the_union_of_open_intervals_over_the_period() -> None:
    opened = np.array([0, 5, 20]) * S
    closed = np.array([10, 15, 30]) * S
    assert an.exposure(opened, closed, 0, 40 * S) == pytest.approx(25 / 40)
    # opened before the period and still open after it: clipped
    assert an.exposure(np.array([-10 * S]), np.array([50 * S]), 0, 40 * S) == 1.0
    assert undefined(an.exposure(opened, closed, 5, 5), "no length")


def test_average_holding_time() -> None:
    opened = np.array([0, 10]) * S
    closed = np.array([60, 40]) * S
    assert an.avg_holding_s(opened, closed) == 45.0
