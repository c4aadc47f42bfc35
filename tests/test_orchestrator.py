"""From a signal to an order: market and limit entries, stops from the entry."""

from __future__ import annotations

import pytest

from mikrobot_tui.config import RiskSettings
from mikrobot_tui.domain.instruments import default_instruments
from mikrobot_tui.domain.orders import EntryType, OrderType, Side, Signal, TimeInForce
from mikrobot_tui.trading.orchestrator import decide

EURUSD = default_instruments()["EURUSD"]


def order_for(signal: Signal):
    decision = decide(
        signal,
        account="A",
        order_id="A-000001",
        instrument=EURUSD,
        quote_to_account=1.0,
        equity=10_000.0,
        open_positions=0,
        risk=RiskSettings(),
        halted=False,
        blocked_by=None,
        decision_ts=1_000,
        latency_ns=50,
    )
    return decision


def signal(**kw) -> Signal:
    base = dict(strategy="s", symbol="EURUSD", side=Side.BUY, ts=1_000, price=1.10010,
                stop_distance=0.0010, take_profit_distance=0.0025)  # fmt: skip
    return Signal(**{**base, **kw})


def test_a_market_entry_places_its_stop_and_target_from_the_price_it_can_get() -> None:
    order = order_for(signal()).order
    assert order.type is OrderType.MARKET and order.price is None
    assert (order.stop_loss, order.take_profit) == (1.09910, 1.10260)
    assert order.decision_price == 1.10010 and order.due_ts == 1_050


def test_a_limit_entry_rests_at_its_price_with_stop_and_target_from_it() -> None:
    expire = 10**12
    order = order_for(signal(entry=EntryType.LIMIT, limit_price=1.099504, expire_ts=expire)).order
    assert order.type is OrderType.LIMIT and order.price == 1.0995  # on the tick
    assert (order.stop_loss, order.take_profit) == (1.0985, 1.102)
    assert order.decision_price == 1.0995
    assert order.tif is TimeInForce.GTD and order.expire_ts == expire
    # 0.5% of 10,000 over 10 pips: 0.5 lots
    assert order.lots == pytest.approx(0.5)


def test_a_limit_entry_without_a_price_is_refused() -> None:
    decision = order_for(signal(entry=EntryType.LIMIT))
    assert decision.order is None and "limit price" in decision.refusal


def test_fixed_and_kelly_sizing_reach_the_order() -> None:
    def lots(risk: RiskSettings, results=()) -> float | None:
        decision = decide(
            signal(),
            account="A",
            order_id="A-000001",
            instrument=EURUSD,
            quote_to_account=1.0,
            equity=10_000.0,
            open_positions=0,
            risk=risk,
            halted=False,
            blocked_by=None,
            decision_ts=1_000,
            latency_ns=0,
            trade_results=results,
        )
        return None if decision.order is None else decision.order.lots

    assert lots(RiskSettings(sizing="fixed", fixed_lots=0.37)) == 0.37
    # Kelly from 40 trades: 60% winners at +2 R, losers at -1 R: f = 0.6 - 0.4 / 2 = 0.4;
    # a quarter of it, 10% of equity, is capped at risk_per_trade 0.5%: the percent size
    winners_and_losers = [2.0] * 24 + [-1.0] * 16
    kelly = RiskSettings(sizing="kelly", kelly_min_trades=30)
    assert lots(kelly, winners_and_losers) == lots(RiskSettings())
    # a losing record: f <= 0, no trade
    assert lots(kelly, [-1.0] * 30 + [0.5] * 10) is None


def test_a_signal_with_its_own_size_and_no_stop_goes_at_that_size_without_a_stop() -> None:
    decision = order_for(signal(units=100_000, stop_distance=0.0, take_profit_distance=0.0))
    order = decision.order
    assert order.lots == 1.0 and order.stop_loss is None and order.take_profit is None
    assert decision.risk_amount == 0.0
    # rounded down to the lot step (0.01 lots = 1,000 units)
    assert order_for(signal(units=12_345, stop_distance=float("inf"))).order.lots == 0.12


@pytest.mark.parametrize(
    ("units", "says"),
    [
        (500, "below the minimum lot 0.01"),
        (20_000_000, "above the maximum lot 100"),
        (-1, "not a finite positive size"),
    ],
)
def test_a_signal_size_the_instrument_cannot_take_is_refused(units, says) -> None:
    decision = order_for(signal(units=units, stop_distance=0.0))
    assert decision.order is None and says in decision.refusal


def test_without_units_a_signal_still_needs_its_stop() -> None:
    decision = order_for(signal(stop_distance=0.0))
    assert decision.order is None and "stop distance" in decision.refusal
