"""Commission, leverage, swap and the rollover, with answers worked out by hand.

Times are written in UTC as a trader would check them: 17:00 New York is 22:00 UTC in January
(EST, UTC-5) and 21:00 UTC in July (EDT, UTC-4). 2024-01-15 was a Monday.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from mikrobot_tui.config import AccountSettings, PaperSettings
from mikrobot_tui.domain.hours import market_open
from mikrobot_tui.domain.instruments import AssetClass, default_instruments
from mikrobot_tui.domain.orders import Side
from mikrobot_tui.paper.costs import commission, leverage_for, rollovers, swap_amount

INST = default_instruments()
EURUSD, USDJPY, XAUUSD, BTCUSDT = (INST[s] for s in ("EURUSD", "USDJPY", "XAUUSD", "BTCUSDT"))
ACCOUNT = AccountSettings(name="A")
PAPER = PaperSettings()
FX = AssetClass.FOREX
MINUTE = 60 * 10**9


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> int:
    return int(datetime(y, mo, d, h, mi, tzinfo=UTC).timestamp()) * 10**9


# --- commission ---------------------------------------------------------------------------


def test_eurusd_one_lot_pays_half_the_round_turn_each_side() -> None:
    opened = commission(ACCOUNT, EURUSD, 1.0, 1.1, "taker", 1.0)
    closed = commission(ACCOUNT, EURUSD, -1.0, 1.101, "taker", 1.0)
    assert opened == pytest.approx(3.5)
    assert opened + closed == pytest.approx(7.0)
    assert commission(ACCOUNT, EURUSD, 0.1, 1.1, "maker", 1.0) == pytest.approx(0.35)


def test_per_lot_commission_is_already_in_the_account_currency() -> None:
    # a USDJPY fill in a USD account: no conversion of the per-lot figure
    assert commission(ACCOUNT, USDJPY, 1.0, 150.0, "taker", 1 / 150) == pytest.approx(3.5)
    assert commission(ACCOUNT, XAUUSD, 2.0, 2300.0, "taker", 1.0) == pytest.approx(7.0)
    cheap = AccountSettings(name="C", commission_per_lot=5.0)
    assert commission(cheap, EURUSD, 1.0, 1.1, "taker", 1.0) == pytest.approx(2.5)


def test_crypto_pays_basis_points_of_the_notional_converted() -> None:
    # 1 BTC at 50,000 USDT, 0.1% taker = 50 USDT; in a EUR account at 0.9 EUR per USDT = 45
    assert commission(ACCOUNT, BTCUSDT, 1.0, 50_000.0, "taker", 1.0) == pytest.approx(50.0)
    assert commission(ACCOUNT, BTCUSDT, 1.0, 50_000.0, "taker", 0.9) == pytest.approx(45.0)
    assert commission(ACCOUNT, BTCUSDT, -0.5, 50_000.0, "taker", 1.0) == pytest.approx(25.0)
    maker = AccountSettings(name="M", maker_bps=2.0)
    assert commission(maker, BTCUSDT, 1.0, 50_000.0, "maker", 1.0) == pytest.approx(10.0)
    assert commission(maker, BTCUSDT, 1.0, 50_000.0, "taker", 1.0) == pytest.approx(50.0)


# --- leverage -----------------------------------------------------------------------------


def test_leverage_by_asset_class_by_symbol_and_by_account() -> None:
    by_class = {s: leverage_for(ACCOUNT, PAPER, i) for s, i in INST.items()}
    assert by_class["EURUSD"] == by_class["USDJPY"] == 30
    assert by_class["XAUUSD"] == by_class["US30"] == 20
    assert by_class["USOIL"] == 10
    assert by_class["BTCUSDT"] == 1
    gold = PaperSettings(leverage={"XAUUSD": 50})
    assert leverage_for(ACCOUNT, gold, XAUUSD) == 50
    assert leverage_for(ACCOUNT, gold, INST["XAGUSD"]) == 20
    assert leverage_for(ACCOUNT, gold, EURUSD) == 30
    hundred = AccountSettings(name="H", leverage=100)
    assert leverage_for(hundred, gold, XAUUSD) == leverage_for(hundred, gold, BTCUSDT) == 100


# --- rollovers ----------------------------------------------------------------------------


def test_one_weekday_night_is_one_rollover_at_17_new_york() -> None:
    # Monday 2024-01-15 12:00 UTC to Tuesday 12:00 UTC: Monday 17:00 EST = 22:00 UTC
    assert rollovers(utc(2024, 1, 15, 12), utc(2024, 1, 16, 12), FX) == [(utc(2024, 1, 15, 22), 1)]


def test_summer_rollover_is_21_utc_and_winter_22_utc() -> None:
    assert rollovers(utc(2024, 7, 15, 12), utc(2024, 7, 16, 12), FX) == [(utc(2024, 7, 15, 21), 1)]
    assert rollovers(utc(2024, 1, 15, 21, 30), utc(2024, 1, 15, 21, 59), FX) == []


def test_the_range_is_open_at_the_start_and_closed_at_the_end() -> None:
    r = utc(2024, 1, 15, 22)
    assert rollovers(r - 1, r, FX) == [(r, 1)]
    assert rollovers(r, r + MINUTE, FX) == []
    assert rollovers(r, r, FX) == []


def test_wednesday_counts_three_nights() -> None:
    wed = rollovers(utc(2024, 1, 17, 12), utc(2024, 1, 18, 12), FX)
    assert wed == [(utc(2024, 1, 17, 22), 3)]
    for cls in (AssetClass.FOREX_JPY, AssetClass.METALS, AssetClass.ENERGIES, AssetClass.INDICES):
        assert rollovers(utc(2024, 1, 17, 12), utc(2024, 1, 18, 12), cls)[0][1] == 3


def test_a_whole_week_is_five_rollovers_and_seven_nights() -> None:
    # Sunday 2024-01-14 17:00 New York (the open) to the next Sunday's open
    week = rollovers(utc(2024, 1, 14, 22), utc(2024, 1, 21, 22), FX)
    assert [ts for ts, _ in week] == [utc(2024, 1, d, 22) for d in (15, 16, 17, 18, 19)]
    assert [m for _, m in week] == [1, 1, 3, 1, 1]
    assert sum(m for _, m in week) == 7


def test_no_rollover_over_the_weekend() -> None:
    # Friday 17:01 New York to Sunday 16:59 New York
    assert rollovers(utc(2024, 1, 19, 22, 1), utc(2024, 1, 21, 21, 59), FX) == []
    # Friday's own rollover counts once
    assert rollovers(utc(2024, 1, 19, 12), utc(2024, 1, 21, 23), FX) == [(utc(2024, 1, 19, 22), 1)]


def test_across_the_us_clock_change() -> None:
    # the US moved to daylight saving on Sunday 2024-03-10: Friday 22:00 UTC, Monday 21:00 UTC
    assert rollovers(utc(2024, 3, 8, 12), utc(2024, 3, 11, 23), FX) == [
        (utc(2024, 3, 8, 22), 1),
        (utc(2024, 3, 11, 21), 1),
    ]


def test_crypto_has_no_rollover() -> None:
    assert rollovers(utc(2024, 1, 14), utc(2024, 2, 14), AssetClass.CRYPTO) == []


def _brute_rollovers(start: int, end: int) -> list[tuple[int, int]]:
    ny = ZoneInfo("America/New_York")
    day = datetime.fromtimestamp(start // 10**9, ny).date() - timedelta(days=1)
    out = []
    while True:
        at = int(datetime(day.year, day.month, day.day, 17, tzinfo=ny).timestamp()) * 10**9
        if at > end:
            return out
        if start < at and day.weekday() < 5:
            out.append((at, 3 if day.weekday() == 2 else 1))
        day += timedelta(days=1)


def test_rollovers_agree_with_counting_every_day_in_any_order() -> None:
    rng = np.random.default_rng(7)
    lo = utc(2023, 1, 1)
    for _ in range(400):
        start = lo + int(rng.integers(0, 2 * 365 * 24 * 60)) * MINUTE
        end = start + int(rng.integers(0, 10 * 24 * 60)) * MINUTE
        assert rollovers(start, end, FX) == _brute_rollovers(start, end)


# --- swap ---------------------------------------------------------------------------------


def test_eurusd_swap_one_lot_long_a_night_and_a_wednesday() -> None:
    # -6.5 points x 0.00001 x 100,000 x 1 lot = -6.5 USD a night
    assert swap_amount(PAPER, EURUSD, Side.BUY, 1.0, 1, 1.0) == pytest.approx(-6.5)
    assert swap_amount(PAPER, EURUSD, Side.BUY, 1.0, 3, 1.0) == pytest.approx(-19.5)
    assert swap_amount(PAPER, EURUSD, Side.SELL, 1.0, 1, 1.0) == pytest.approx(1.2)
    assert swap_amount(PAPER, EURUSD, Side.BUY, 0.5, 1, 1.0) == pytest.approx(-3.25)


def test_swap_is_converted_from_the_quote_currency() -> None:
    # USDJPY long 14 points x 0.001 x 100,000 = 1,400 JPY; at 140 JPY a USD = 10 USD
    assert swap_amount(PAPER, USDJPY, Side.BUY, 1.0, 1, 1 / 140) == pytest.approx(10.0)
    # XAUUSD: 100 oz, a point is 0.01: 1 USD a lot a point
    assert swap_amount(PAPER, XAUUSD, Side.BUY, 1.0, 1, 1.0) == pytest.approx(-35.0)


def test_no_swap_for_unconfigured_symbols_or_crypto() -> None:
    assert swap_amount(PAPER, INST["AUDUSD"], Side.BUY, 1.0, 1, 1.0) == 0.0
    crypto = PaperSettings(swap={"BTCUSDT": {"long": -100.0}})
    assert swap_amount(crypto, BTCUSDT, Side.BUY, 1.0, 1, 1.0) == 0.0


def test_configured_swap_rates_replace_the_default_key_by_key() -> None:
    paper = PaperSettings(swap={"EURUSD": {"long": -8.0}, "AUDUSD": {"long": -2.0, "short": 0.5}})
    assert swap_amount(paper, EURUSD, Side.BUY, 1.0, 1, 1.0) == pytest.approx(-8.0)
    assert swap_amount(paper, EURUSD, Side.SELL, 1.0, 1, 1.0) == pytest.approx(1.2)
    assert swap_amount(paper, INST["AUDUSD"], Side.SELL, 1.0, 1, 1.0) == pytest.approx(0.5)


# --- market hours -------------------------------------------------------------------------


def test_forex_is_closed_from_friday_17_to_sunday_17_new_york() -> None:
    assert market_open(FX, utc(2024, 1, 19, 21, 59))  # Friday 16:59 New York
    assert not market_open(FX, utc(2024, 1, 19, 22))  # Friday 17:00
    assert not market_open(FX, utc(2024, 1, 20, 12))  # Saturday
    assert not market_open(FX, utc(2024, 1, 21, 21, 59))  # Sunday 16:59
    assert market_open(FX, utc(2024, 1, 21, 22))  # Sunday 17:00
    assert market_open(FX, utc(2024, 1, 21, 22, 1))  # Sunday 17:01
    assert market_open(AssetClass.METALS, utc(2024, 1, 17, 3))  # a Wednesday night
    assert not market_open(FX, utc(2024, 7, 19, 21))  # Friday 17:00 EDT = 21:00 UTC
    assert market_open(FX, utc(2024, 7, 21, 21, 1))  # Sunday 17:01 EDT


def test_crypto_never_closes() -> None:
    assert market_open(AssetClass.CRYPTO, utc(2024, 1, 20, 12))
    assert market_open(AssetClass.CRYPTO, utc(2024, 1, 21, 21, 59))


def test_market_open_agrees_with_the_clock_in_any_order() -> None:
    ny = ZoneInfo("America/New_York")
    rng = np.random.default_rng(11)
    lo = utc(2023, 1, 1)
    for _ in range(2_000):
        ts = lo + int(rng.integers(0, 2 * 365 * 24 * 3600)) * 10**9
        local = datetime.fromtimestamp(ts // 10**9, ny)
        day, hour = local.weekday(), local.hour
        expected = not (day == 5 or (day == 4 and hour >= 17) or (day == 6 and hour < 17))
        assert market_open(AssetClass.INDICES, ts) is expected, local
