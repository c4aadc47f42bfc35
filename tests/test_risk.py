"""Sizing risks a fixed fraction of equity to the stop; pre-trade checks refuse with a reason."""

from __future__ import annotations

import math
import re
from dataclasses import replace

import pytest

from mikrobot_tui.domain.instruments import default_instruments
from mikrobot_tui.trading.risk import RiskDecision, check_order, position_size

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
