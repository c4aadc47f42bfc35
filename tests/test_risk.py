"""Sizing risks a fixed fraction of equity to the stop; pre-trade checks refuse with a reason;
an account's limits (FTMO's daily and overall loss, heat, positions, trades a day, correlation)
move it from ACTIVE to REDUCING to HALTED and say why."""

from __future__ import annotations

import math
import re
from dataclasses import replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from mikrobot_tui.config import RiskSettings
from mikrobot_tui.domain.instruments import default_instruments
from mikrobot_tui.domain.orders import Side, TradingState
from mikrobot_tui.trading.risk import (
    AccountLimits,
    Exposure,
    LimitKind,
    RiskDecision,
    Severity,
    check_order,
    clamp_lots,
    correlation,
    day_start_ns,
    kelly_estimate,
    next_day_start_ns,
    pip_value_per_lot,
    position_size,
    size_position,
)

INSTR = default_instruments()
EURUSD, USDJPY, XAUUSD, BTCUSDT = (INSTR[s] for s in ("EURUSD", "USDJPY", "XAUUSD", "BTCUSDT"))


def test_eurusd_with_a_usd_account() -> None:
    # 10,000 x 0.5% = 50 USD; 20 pips x 10 USD per pip per lot = 200 USD per lot -> 0.25 lots
    assert position_size(10_000, 0.005, 0.0020, EURUSD, 1.0) == 0.25
    # 13 pips -> 130 USD per lot -> 0.3846 -> rounded down to 0.38
    assert position_size(10_000, 0.005, 0.0013, EURUSD, 1.0) == 0.38


def test_usdjpy_with_a_usd_account_converts_at_the_current_rate() -> None:
    # USDJPY 150: one pip per lot = 0.01 x 100,000 JPY = 1,000 JPY = 6.667 USD.
    # 40 pips -> 266.67 USD per lot; 50 / 266.67 = 0.1875 -> 0.18 lots
    assert position_size(10_000, 0.005, 0.40, USDJPY, 1 / 150.0) == 0.18
    # at USDJPY 100 the same JPY pip is worth more USD: 10 USD per pip per lot -> 0.12 lots
    assert position_size(10_000, 0.005, 0.40, USDJPY, 1 / 100.0) == 0.12


def test_xauusd() -> None:
    # pip 0.1, 100 oz per lot: 10 USD per pip per lot. 1% of 10,000 = 100 USD;
    # a 3.70 USD stop = 37 pips = 370 USD per lot -> 0.27027 -> 0.27 lots
    assert position_size(10_000, 0.01, 3.70, XAUUSD, 1.0) == 0.27


def test_btcusdt() -> None:
    # pip 0.01, 1 BTC per lot: a 350 USDT stop costs 350 USD per lot (USDT pegged to USD).
    # 50 / 350 = 0.142857 -> lot step 0.00001 -> 0.14285
    assert position_size(10_000, 0.005, 350.0, BTCUSDT, 1.0) == 0.14285


@pytest.mark.parametrize(
    ("instrument", "stop", "rate"),
    [(EURUSD, 0.0013, 1.0), (USDJPY, 0.37, 1 / 151.3), (XAUUSD, 2.9, 1.0), (BTCUSDT, 77.7, 1.0)],
)
def test_a_stop_out_never_loses_more_than_the_risk_and_one_step_more_would(
    instrument, stop, rate
) -> None:
    equity, fraction = 12_345.0, 0.007
    lots = position_size(equity, fraction, stop, instrument, rate)
    loss = stop * instrument.contract_size * lots * rate
    assert 0 < loss <= equity * fraction + 1e-9
    bigger = (lots + instrument.lot_step) * stop * instrument.contract_size * rate
    assert bigger > equity * fraction


def test_below_the_minimum_lot_is_zero() -> None:
    # 100 x 0.5% = 0.50 USD over 50 pips (500 USD per lot) = 0.001 lots < 0.01
    assert position_size(100, 0.005, 0.0050, EURUSD, 1.0) == 0.0
    assert position_size(0, 0.005, 0.0050, EURUSD, 1.0) == 0.0


def test_a_size_on_the_lot_step_but_below_the_minimum_lot_is_zero() -> None:
    # a broker allowing 0.01 steps from a 0.10 minimum: 0.05 lots is a valid step, not a size
    strict = replace(EURUSD, min_lot=0.10)
    assert position_size(1_000, 0.01, 0.0020, strict, 1.0) == 0.0  # 10 USD / 200 = 0.05
    assert position_size(5_000, 0.01, 0.0020, strict, 1.0) == 0.25


@pytest.mark.parametrize("stop", [0.0, -0.001, math.nan, math.inf])
def test_bad_stop_distance_raises(stop: float) -> None:
    with pytest.raises(ValueError, match="stop_distance"):
        position_size(10_000, 0.005, stop, EURUSD, 1.0)


def _check(**overrides: object) -> RiskDecision:
    kwargs: dict[str, object] = {
        "trading_halted": False,
        "open_positions": 0,
        "max_positions": 3,
        "equity": 10_000.0,
        "risk_fraction": 0.005,
        "stop_distance": 0.0020,
        "instrument": EURUSD,
        "quote_to_account": 1.0,
    }
    kwargs.update(overrides)
    return check_order(**kwargs)  # type: ignore[arg-type]


def test_check_order_approves_with_the_sized_lots() -> None:
    decision = _check()
    assert decision.approved
    assert decision.lots == 0.25
    assert "50.00" in decision.reason and "20.0 pips" in decision.reason


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"trading_halted": True}, "trading halted"),
        ({"open_positions": 3}, r"at max positions \(3/3\)"),
        ({"open_positions": 4}, r"at max positions \(4/3\)"),
        ({"equity": 0.0}, "equity 0.0 is not positive"),
        ({"quote_to_account": None}, "no conversion rate yet from USD"),
        ({"stop_distance": 0.0}, "stop distance 0.0"),
        ({"stop_distance": -0.001}, "stop distance -0.001"),
        ({"stop_distance": math.nan}, "stop distance nan"),
        ({"stop_distance": math.inf}, "stop distance inf"),
        ({"equity": 100.0, "stop_distance": 0.0050}, "size rounds to 0"),
    ],
)
def test_check_order_refuses_with_a_clear_reason(overrides: dict, reason: str) -> None:
    decision = _check(**overrides)
    assert not decision.approved
    assert decision.lots == 0.0
    assert decision.reason

    assert re.search(reason, decision.reason), decision.reason


def test_halt_wins_over_every_other_reason() -> None:
    decision = _check(trading_halted=True, open_positions=9, quote_to_account=None)
    assert decision.reason.startswith("trading halted")


def test_no_rate_for_a_jpy_pair_names_the_currency() -> None:
    decision = _check(instrument=USDJPY, stop_distance=0.4, quote_to_account=None)
    assert not decision.approved
    assert "JPY" in decision.reason


def test_the_size_is_capped_at_what_the_free_margin_carries() -> None:
    decision = _check(max_lots=0.178)  # the risk budget asks for 0.25 lots
    assert decision.approved and decision.lots == 0.17  # rounded down to the lot step
    assert "capped at 0.17 by free margin" in decision.reason
    refused = _check(max_lots=0.004)
    assert not refused.approved
    assert refused.reason.startswith("insufficient margin: the free margin carries 0.004 lots")


# -- sizing: the issue's known answers, the broker's tick value, the instrument's limits --------


def test_the_issues_known_answers() -> None:
    # 0.55% of 10,000 USD = 55 USD over 10 pips at 10 USD a pip per lot -> 0.55 lots
    assert position_size(10_000, 0.0055, 0.0010, EURUSD, 1.0) == 0.55
    # USDJPY at 150.00: a pip per lot is 100,000 x 0.01 / 150 = 6.667 USD -> 0.825 -> 0.82
    assert pip_value_per_lot(USDJPY, 1 / 150.0) == pytest.approx(6.6667, abs=1e-4)
    assert position_size(10_000, 0.0055, 0.10, USDJPY, 1 / 150.0) == 0.82


def test_the_brokers_tick_value_wins_over_the_conversion() -> None:
    # MT5 on a USD account: EURUSD trade_tick_value 1.0 USD per 0.00001 per lot -> 10 USD a pip
    assert pip_value_per_lot(EURUSD, tick_value=1.0) == pytest.approx(10.0)
    # USDJPY 0.001 tick worth 0.6667 USD per lot: a pip (0.01) is 6.667 USD; no rate needed
    assert position_size(10_000, 0.0055, 0.10, USDJPY, None, tick_value=0.66667) == 0.82
    # the tick value is used even when a (different) rate is passed
    assert position_size(10_000, 0.0055, 0.10, USDJPY, 1 / 100.0, tick_value=0.66667) == 0.82
    with pytest.raises(ValueError, match="quote_to_account"):
        position_size(10_000, 0.0055, 0.10, USDJPY, None)
    with pytest.raises(ValueError, match="tick_value"):
        pip_value_per_lot(USDJPY, tick_value=0.0)


def test_lots_are_clamped_to_the_instruments_minimum_and_maximum() -> None:
    assert EURUSD.max_lot == 100.0 and XAUUSD.max_lot == 100.0
    assert BTCUSDT.max_lot == 1000.0  # crypto lots are base units
    assert clamp_lots(0.009, EURUSD) == 0.0  # below the minimum: no trade
    assert clamp_lots(0.019, EURUSD) == 0.01  # rounded down, never up
    assert clamp_lots(250.0, EURUSD) == 100.0
    # 10% of 10,000,000 over a 1-pip stop would be 100,000 lots: the venue takes 100
    assert position_size(10_000_000, 0.1, 0.0001, EURUSD, 1.0) == 100.0


def _settings(**kw: object) -> RiskSettings:
    return RiskSettings(**kw)  # type: ignore[arg-type]


def test_fixed_sizing_rounds_the_configured_lots_and_says_what_they_risk() -> None:
    s = size_position(
        _settings(sizing="fixed", fixed_lots=0.257),
        equity=10_000,
        stop_distance=0.0020,
        instrument=EURUSD,
        quote_to_account=1.0,
    )
    assert (s.method, s.lots) == ("fixed", 0.25)
    assert s.risk_amount == pytest.approx(50.0) and s.risk_fraction == pytest.approx(0.005)
    tiny = size_position(
        _settings(sizing="fixed", fixed_lots=0.001),
        equity=10_000,
        stop_distance=0.0020,
        instrument=EURUSD,
        quote_to_account=1.0,
    )
    assert tiny.lots == 0.0 and "below the minimum lot" in tiny.reason


def test_percent_sizing_is_position_size() -> None:
    s = size_position(
        _settings(risk_per_trade=0.0055),
        equity=10_000,
        stop_distance=0.10,
        instrument=USDJPY,
        quote_to_account=1 / 150.0,
    )
    assert (s.method, s.lots) == ("percent", 0.82)
    assert s.risk_amount == pytest.approx(0.82 * 10 * 1000 / 150)


# 40 trades: 24 winners of 2 R and 16 losers of 1 R -> p 0.6, b 2, f = 0.6 - 0.4 / 2 = 0.4
GOOD_RECORD = [2.0] * 24 + [-1.0] * 16


def test_kelly_from_the_strategys_record() -> None:
    est = kelly_estimate(GOOD_RECORD)
    assert est is not None
    assert (est.trades, est.win_rate, est.payoff) == (40, 0.6, 2.0)
    assert est.kelly == pytest.approx(0.4)
    # a break-even trade is not a win; no losing trade: b infinite, f = p
    assert kelly_estimate([1.0, 0.0]).kelly == 0.5  # type: ignore[union-attr]
    assert kelly_estimate([-1.0, 0.0]).kelly == -math.inf  # type: ignore[union-attr]
    assert kelly_estimate([]) is None


def _kelly(results: list[float], **kw: object) -> object:
    settings = _settings(sizing="kelly", risk_per_trade=0.01, **kw)
    return size_position(
        settings,
        equity=10_000,
        stop_distance=0.0010,
        instrument=EURUSD,
        quote_to_account=1.0,
        trade_results=results,
    )


def test_fractional_kelly_sizes_below_percent_risk() -> None:
    # 0.01 x f 0.4 = 0.4% of 10,000 = 40 USD over 10 pips -> 0.40 lots (percent would be 1.00)
    s = _kelly(GOOD_RECORD, kelly_fraction=0.01)
    assert (s.method, s.lots) == ("kelly", 0.4)  # type: ignore[attr-defined]
    assert s.risk_fraction == pytest.approx(0.004)  # type: ignore[attr-defined]


def test_kelly_is_capped_at_percent_risk() -> None:
    # 0.25 x 0.4 = 10% of equity: capped at risk_per_trade 1% -> 1.00 lot
    s = _kelly(GOOD_RECORD)
    assert (s.method, s.lots) == ("kelly", 1.0)  # type: ignore[attr-defined]


def test_kelly_without_an_edge_is_no_trade() -> None:
    s = _kelly([1.0] * 12 + [-1.0] * 28)  # p 0.3, b 1: f = 0.3 - 0.7 = -0.4
    assert s.lots == 0.0 and "no edge" in s.reason  # type: ignore[attr-defined]


def test_kelly_with_too_few_trades_falls_back_to_percent() -> None:
    s = _kelly(GOOD_RECORD[:20] + GOOD_RECORD[-9:])  # 29 trades < kelly_min_trades 30
    assert (s.method, s.lots) == ("percent", 1.0)  # type: ignore[attr-defined]
    assert "29 so far" in s.reason  # type: ignore[attr-defined]


# -- the trading day: midnight in Prague ---------------------------------------------------------

PRAGUE = ZoneInfo("Europe/Prague")


def ns(text: str) -> int:
    """A UTC time written 'YYYY-MM-DD HH:MM' as nanoseconds."""
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()) * 1_000_000_000


def test_pragues_midnight_is_23_utc_in_winter_and_22_utc_in_summer() -> None:
    assert day_start_ns(ns("2024-01-15 22:59"), PRAGUE) == ns("2024-01-14 23:00")
    assert day_start_ns(ns("2024-01-15 23:00"), PRAGUE) == ns("2024-01-15 23:00")
    assert next_day_start_ns(ns("2024-01-15 12:00"), PRAGUE) == ns("2024-01-15 23:00")
    assert day_start_ns(ns("2024-07-15 21:59"), PRAGUE) == ns("2024-07-14 22:00")
    assert day_start_ns(ns("2024-07-15 22:00"), PRAGUE) == ns("2024-07-15 22:00")
    # the night the clocks go forward (31 March 2024): the day after starts at 22:00 UTC
    assert next_day_start_ns(ns("2024-03-30 12:00"), PRAGUE) == ns("2024-03-30 23:00")
    assert next_day_start_ns(ns("2024-03-31 12:00"), PRAGUE) == ns("2024-03-31 22:00")


# -- the account limits ----------------------------------------------------------------------

C = 100_000.0


def limits(ts: str = "2024-01-15 08:00", **kw: object) -> AccountLimits:
    return AccountLimits(_settings(**kw), initial_capital=C, ts_ns=ns(ts))


@pytest.mark.parametrize(
    ("before", "after"),
    [("2024-01-15 22:59", "2024-01-15 23:00"), ("2024-07-15 21:59", "2024-07-15 22:00")],
    ids=["winter", "summer"],
)
def test_the_daily_loss_restarts_from_the_balance_at_pragues_midnight(
    before: str, after: str
) -> None:
    acct = limits(before.replace("22:59", "08:00").replace("21:59", "08:00"))
    assert acct.daily_floor == 95_000  # day 1: initial capital - 5% of it
    # a closed 4,000 profit; a position still open floats -3,000 at midnight
    acct.update(ns(before), balance=104_000, equity=101_000)
    assert acct.daily_floor == 95_000  # still day 1
    acct.update(ns(after), balance=104_000, equity=101_000)
    # day 2: the midnight balance (not equity) - 5% of the INITIAL capital
    assert acct.day_start_balance == 104_000 and acct.daily_floor == 99_000
    assert acct.status().daily_loss_used == 3_000  # the floating loss counts from midnight
    up = acct.update(ns(after) + 60 * 10**9, balance=104_000, equity=98_999)
    assert up.state is TradingState.HALTED
    assert up.violations[0].kind is LimitKind.DAILY_LOSS
    assert up.violations[0].severity is Severity.BREACH
    assert (up.violations[0].value, up.violations[0].limit) == (98_999, 99_000)


def test_the_same_equity_one_minute_before_midnight_is_fine() -> None:
    acct = limits()
    acct.update(ns("2024-01-15 12:00"), balance=104_000, equity=104_000)
    up = acct.update(ns("2024-01-15 22:59"), balance=104_000, equity=98_999)
    assert up.state is TradingState.ACTIVE  # day 1's floor is 95,000


def test_the_overall_loss_is_90_percent_of_the_initial_capital() -> None:
    acct = limits(daily_loss_pct=10, overall_loss_pct=10)  # daily as wide: only overall bites
    acct.update(ns("2024-01-15 12:00"), balance=104_000, equity=104_000)
    acct.update(ns("2024-01-15 23:30"), balance=104_000, equity=104_000)
    assert acct.overall_floor == 90_000  # static: a profitable midnight does not move it
    acct.update(ns("2024-01-16 12:00"), balance=96_000, equity=96_000)
    acct.update(ns("2024-01-16 23:30"), balance=96_000, equity=96_000)  # daily floor 86,000
    up = acct.update(ns("2024-01-17 09:00"), balance=96_000, equity=89_999)
    assert up.state is TradingState.HALTED
    assert [v.kind for v in up.violations] == [LimitKind.OVERALL_LOSS]


def test_the_trailing_overall_loss_follows_the_best_end_of_day_balance() -> None:
    # FTMO's 1-Step example: day 1 90,000; after a 104,000 midnight 94,000; after a
    # 103,000 midnight still 94,000; equity within a day never moves it
    acct = limits(trailing_overall=True, daily_loss_pct=10)
    assert acct.overall_floor == 90_000
    acct.update(ns("2024-01-15 12:00"), balance=104_000, equity=106_000)
    assert acct.overall_floor == 90_000
    acct.update(ns("2024-01-16 01:00"), balance=103_000, equity=103_000)
    assert acct.overall_floor == 94_000
    acct.update(ns("2024-01-17 01:00"), balance=103_000, equity=103_000)
    assert acct.overall_floor == 94_000
    up = acct.update(ns("2024-01-17 02:00"), balance=103_000, equity=93_999)
    assert up.state is TradingState.HALTED and up.violations[0].kind is LimitKind.OVERALL_LOSS
    # below the initial capital the floor is initial - 10%
    low = limits(trailing_overall=True)
    low.update(ns("2024-01-16 01:00"), balance=97_000, equity=97_000)
    assert low.overall_floor == 90_000


def test_reducing_comes_before_halted() -> None:
    acct = limits(flatten_on_breach=True)  # daily allowance 5,000 of C
    assert acct.update(ns("2024-01-15 09:00"), balance=C, equity=96_100).state is (
        TradingState.ACTIVE  # 78% used
    )
    up = acct.update(ns("2024-01-15 09:01"), balance=C, equity=95_900)  # 82% used
    assert up.state is TradingState.REDUCING and not up.flatten
    assert up.violations[0].kind is LimitKind.DAILY_LOSS
    assert up.violations[0].severity is Severity.WARNING
    assert up.violations[0].value == pytest.approx(0.82)
    # reported once, on entering REDUCING, not on every tick
    assert acct.update(ns("2024-01-15 09:02"), balance=C, equity=95_800).violations == ()
    order = Exposure("EURUSD", Side.BUY, 100.0)
    refused = acct.check(ns("2024-01-15 09:02"), order, [], equity=95_800)
    assert not refused.allowed and refused.violations[0].kind is LimitKind.REDUCING
    assert acct.check(ns("2024-01-15 09:02"), order, [], equity=95_800, reduces=True).allowed
    up = acct.update(ns("2024-01-15 09:03"), balance=C, equity=94_999)
    assert up.state is TradingState.HALTED and up.flatten
    assert acct.update(ns("2024-01-15 09:04"), balance=C, equity=99_000).state is (
        TradingState.HALTED  # a breach holds until the operator resumes
    )
    halted = acct.check(ns("2024-01-15 09:04"), order, [], equity=99_000)
    assert not halted.allowed and halted.reason.startswith("trading halted")
    assert acct.check(ns("2024-01-15 09:04"), order, [], equity=99_000, reduces=True).allowed
    acct.resume()
    assert acct.update(ns("2024-01-15 09:05"), balance=C, equity=99_000).state is (
        TradingState.ACTIVE
    )


def test_reducing_lifts_when_the_equity_recovers() -> None:
    acct = limits()
    acct.update(ns("2024-01-15 09:00"), balance=C, equity=95_900)
    assert acct.state is TradingState.REDUCING
    assert acct.update(ns("2024-01-15 09:01"), balance=C, equity=97_000).state is (
        TradingState.ACTIVE
    )


def test_a_breach_without_flatten_on_breach_only_halts() -> None:
    acct = limits()
    up = acct.update(ns("2024-01-15 09:00"), balance=C, equity=94_000)
    assert up.state is TradingState.HALTED and not up.flatten


def _ask(acct: AccountLimits, order: Exposure, held: list[Exposure], **kw: object):
    return acct.check(ns("2024-01-15 10:00"), order, held, equity=kw.pop("equity", C), **kw)  # type: ignore[arg-type]


def kinds(verdict) -> list[LimitKind]:  # type: ignore[no-untyped-def]
    return [v.kind for v in verdict.violations]


def test_an_order_within_every_limit_goes() -> None:
    verdict = _ask(limits(), Exposure("EURUSD", Side.BUY, 500.0), [])
    assert verdict.allowed and verdict.violations == () and verdict.reason == ""


def test_risk_per_trade() -> None:
    verdict = _ask(limits(), Exposure("EURUSD", Side.BUY, 501.0), [])  # 0.5% of C = 500
    assert kinds(verdict) == [LimitKind.RISK_PER_TRADE]
    v = verdict.violations[0]
    assert (v.value, v.limit, v.symbol) == (501.0, 500.0, "EURUSD")
    assert v.to_payload()["kind"] == "risk_per_trade"


def test_portfolio_heat_counts_every_stop() -> None:
    held = [Exposure(s, Side.BUY, 2_000.0) for s in ("GBPUSD", "XAUUSD")]  # 4% of equity
    acct = limits(risk_per_trade=0.1, max_heat_pct=6, daily_loss_pct=10)
    assert _ask(acct, Exposure("EURUSD", Side.BUY, 2_000.0), held).allowed  # 6.0%
    verdict = _ask(acct, Exposure("EURUSD", Side.BUY, 2_001.0), held)
    assert kinds(verdict) == [LimitKind.HEAT]
    assert verdict.violations[0].value == pytest.approx(6.001)


def test_every_stop_hit_must_not_breach_a_loss_floor() -> None:
    acct = limits(risk_per_trade=0.1, max_heat_pct=50)
    held = [Exposure("GBPUSD", Side.BUY, 3_000.0)]
    # equity 97,000 - 3,000 held - 1,500 new = 92,500 < the daily floor 95,000
    verdict = _ask(acct, Exposure("EURUSD", Side.BUY, 1_500.0), held, equity=97_000)
    assert kinds(verdict) == [LimitKind.DAILY_LOSS]
    assert verdict.violations[0].limit == 95_000


def test_max_positions_and_trades_per_day() -> None:
    acct = limits(max_positions=2, max_trades_per_day=3)
    held = [Exposure(s, Side.BUY, 100.0) for s in ("GBPUSD", "XAUUSD")]
    assert kinds(_ask(acct, Exposure("EURUSD", Side.BUY, 100.0), held)) == [LimitKind.MAX_POSITIONS]
    for minute in range(3):
        acct.record_entry(ns(f"2024-01-15 09:0{minute}"))
    verdict = _ask(acct, Exposure("EURUSD", Side.BUY, 100.0), [])
    assert kinds(verdict) == [LimitKind.TRADES_PER_DAY]
    # the count starts again at Prague's midnight (23:00 UTC in January)
    nxt = acct.check(ns("2024-01-15 23:00"), Exposure("EURUSD", Side.BUY, 100.0), [], equity=C)
    assert nxt.allowed and acct.trades_today == 0


def _returns(seed: int = 1, n: int = 200) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1e-4, n)


def test_correlation_of_returns() -> None:
    a = _returns(1)
    assert correlation(a, a, 100) == pytest.approx(1.0)
    assert correlation(a, -a, 100) == pytest.approx(-1.0)
    assert abs(correlation(a, _returns(2), 200)) < 0.2  # type: ignore[arg-type]
    assert correlation(a[:9], a[:9], 100) is None  # too few to judge
    assert correlation(a, np.zeros(200), 100) is None  # a flat series
    # only the last `window` returns count: the same last 50, different before
    b = np.concatenate([_returns(3, 150), a[-50:]])
    assert correlation(a, b, 50) == pytest.approx(1.0)
    assert correlation(a, b, 200) < 0.5  # type: ignore[operator]


def test_the_correlation_limit_against_symbols_held() -> None:
    base = _returns(1)
    returns = {
        "EURUSD": base,
        "GBPUSD": base + _returns(2) * 0.5,  # about 0.9
        "USDCHF": -base + _returns(3) * 0.5,  # about -0.9
        "XAUUSD": _returns(4),  # unrelated
    }
    acct = limits(max_positions=5)
    buy_eur = Exposure("EURUSD", Side.BUY, 100.0)

    def check(*held: Exposure):  # type: ignore[no-untyped-def]
        return _ask(acct, buy_eur, list(held), returns=returns)

    refused = check(Exposure("GBPUSD", Side.BUY, 100.0))
    assert kinds(refused) == [LimitKind.CORRELATION]
    assert refused.violations[0].value > 0.7
    assert check(Exposure("GBPUSD", Side.SELL, 100.0)).allowed  # a hedge, not a double
    assert kinds(check(Exposure("USDCHF", Side.SELL, 100.0))) == [LimitKind.CORRELATION]
    assert check(Exposure("USDCHF", Side.BUY, 100.0)).allowed
    assert check(Exposure("XAUUSD", Side.BUY, 100.0)).allowed
    # no returns fed for a symbol: not judged
    assert _ask(acct, buy_eur, [Exposure("GBPUSD", Side.BUY, 100.0)]).allowed


def test_every_limit_broken_is_listed() -> None:
    acct = limits(max_positions=1, max_heat_pct=1)
    verdict = _ask(acct, Exposure("EURUSD", Side.BUY, 900.0), [Exposure("GBPUSD", Side.BUY, 500.0)])
    assert kinds(verdict) == [LimitKind.RISK_PER_TRADE, LimitKind.HEAT, LimitKind.MAX_POSITIONS]
    assert "risk_per_trade" in verdict.reason and "max positions" in verdict.reason


def test_status_for_the_cockpit_and_status_json() -> None:
    acct = limits()
    acct.update(ns("2024-01-15 09:00"), balance=C, equity=98_000, open_risk=1_500)
    st = acct.status().to_payload()
    assert st["trading_state"] == "ACTIVE"
    assert (st["daily_loss_limit"], st["daily_loss_used"]) == (5_000, 2_000)
    assert st["heat"] == pytest.approx(1_500 / 98_000 * 100)
    assert st["day_start_ns"] == ns("2024-01-14 23:00")
