"""Candles at the boundaries a trader checks: a gap, a weekend, the FX rollover at 17:00 New York,
the days the US changes its clocks; H4 and D1 on each market's trading day (domain/bar_clock.py).
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from mikrobot_tui.data.candles import CandleSet
from mikrobot_tui.data.history import aggregate
from mikrobot_tui.domain.bar_clock import bar_open, bar_opens, ny_offset
from mikrobot_tui.domain.market import (
    D1,
    H1,
    H4,
    M1,
    NS_PER_SECOND,
    TICK_DTYPE,
    TIMEFRAMES,
)

FX, CRYPTO = 0, 1  # symbol indexes: sym 0 keeps New York's trading day, sym 1 UTC
NY_CLOSE = np.array([True, False])
PERIODS = sorted(TIMEFRAMES.values())


def utc(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()) * NS_PER_SECOND


def iso(ns: int) -> str:
    return datetime.fromtimestamp(ns // NS_PER_SECOND, UTC).strftime("%Y-%m-%d %H:%M")


def stream(times: list[int] | np.ndarray, sym: int | np.ndarray = FX) -> np.ndarray:
    """Ticks at `times`, mid 1.0 + i * 1e-5, in time order."""
    times = np.asarray(times, dtype=np.int64)
    t = np.zeros(len(times), dtype=TICK_DTYPE)
    t["ts_event"] = times
    t["ts_recv"] = times + 1_000_000
    t["sym"] = sym
    t["bid"] = 1.0 + np.arange(len(times)) * 1e-5
    t["ask"] = t["bid"] + 2e-5
    t["last"] = np.nan
    t["volume"] = 1.0
    return t


def all_bars(ticks: np.ndarray, batch: int | None = None) -> dict[int, np.ndarray]:
    """Every bar of each period, closed then open, building in batches of `batch`."""
    cs = CandleSet(2, PERIODS, ny_close=NY_CLOSE)
    closed: dict[int, list[np.ndarray]] = {p: [] for p in PERIODS}
    step = batch or max(1, len(ticks))
    for a in range(0, len(ticks), step):
        for p, (bars, _) in cs.update(ticks[a : a + step]).items():
            closed[p].append(bars)
    return {p: np.concatenate([*closed[p], cs.open_bars()[p]]) for p in PERIODS}


def opens(bars: np.ndarray, sym: int = FX) -> list[str]:
    return [iso(t) for t in bars["ts_open"][bars["sym"] == sym].tolist()]


def test_the_trading_day_clock_is_new_york_plus_seven_hours() -> None:
    assert ny_offset(utc("2026-01-14T12:00")) == 2 * 3_600 * NS_PER_SECOND  # EST: UTC+2
    assert ny_offset(utc("2026-07-14T12:00")) == 3 * 3_600 * NS_PER_SECOND  # EDT: UTC+3
    # the offset changes at 02:00 New York: 07:00 UTC on 8 March, 06:00 UTC on 1 November 2026
    assert ny_offset(utc("2026-03-08T06:59")) != ny_offset(utc("2026-03-08T07:00"))
    assert ny_offset(utc("2026-11-01T05:59")) != ny_offset(utc("2026-11-01T06:00"))
    many = np.array([utc("2026-03-08T06:59"), utc("2026-03-08T07:00"), utc("2026-11-01T06:00")])
    assert bar_opens(many, M1).tolist() == many.tolist()  # minutes stay UTC


@pytest.mark.parametrize(
    ("at", "d1_fx", "h4_fx", "d1_crypto", "h4_crypto"),
    [
        # winter: the day rolls at 22:00 UTC; H4 at 22, 02, 06, 10, 14, 18 UTC
        ("2026-01-14T21:59", "2026-01-13 22:00", "2026-01-14 18:00", "2026-01-14 00:00", "20:00"),
        ("2026-01-14T22:00", "2026-01-14 22:00", "2026-01-14 22:00", "2026-01-14 00:00", "20:00"),
        ("2026-01-15T01:59", "2026-01-14 22:00", "2026-01-14 22:00", "2026-01-15 00:00", "00:00"),
        ("2026-01-15T02:00", "2026-01-14 22:00", "2026-01-15 02:00", "2026-01-15 00:00", "00:00"),
        # US daylight saving: the day rolls at 21:00 UTC; H4 at 21, 01, 05, 09, 13, 17 UTC
        ("2026-07-14T20:59", "2026-07-13 21:00", "2026-07-14 17:00", "2026-07-14 00:00", "20:00"),
        ("2026-07-14T21:00", "2026-07-14 21:00", "2026-07-14 21:00", "2026-07-14 00:00", "20:00"),
        ("2026-07-15T04:59", "2026-07-14 21:00", "2026-07-15 01:00", "2026-07-15 00:00", "04:00"),
    ],
)
def test_h4_and_d1_open_on_new_yorks_day_for_fx_and_on_utc_for_crypto(
    at: str, d1_fx: str, h4_fx: str, d1_crypto: str, h4_crypto: str
) -> None:
    ts = utc(at)
    assert iso(bar_open(ts, D1, True)) == d1_fx
    assert iso(bar_open(ts, H4, True)) == h4_fx
    assert iso(bar_open(ts, D1, False)) == d1_crypto
    assert iso(bar_open(ts, H4, False))[-5:] == h4_crypto
    assert bar_open(ts, H1, True) == bar_open(ts, H1, False) == ts // H1 * H1


def test_the_fx_rollover_closes_the_day_at_the_first_tick_of_17_00_new_york() -> None:
    last_of_day = utc("2026-01-14T22:00") - 1  # 16:59:59.999999999 New York
    first_of_next = utc("2026-01-14T22:00")
    ticks = stream([utc("2026-01-14T10:00"), last_of_day, first_of_next])
    cs = CandleSet(2, PERIODS, ny_close=NY_CLOSE)
    out = cs.update(ticks)
    d1, idx = out[D1]
    assert opens(d1) == ["2026-01-13 22:00"] and idx.tolist() == [2]
    assert d1["close"][0] == pytest.approx(1.0 + 1e-5 + 1e-5)  # the 16:59:59.999 tick's mid
    assert d1["ticks"][0] == 2
    # the bar of every shorter timeframe holding the last tick closes at the same tick
    for p in (M1, H1, H4):
        assert out[p][1][-1] == 2 and out[p][0]["ts_open"][-1] == bar_open(last_of_day, p, True), p
    assert opens(cs.open_bars()[D1]) == ["2026-01-14 22:00"]


def test_a_weekend_gives_no_bar_and_the_week_has_five_fx_days() -> None:
    # every minute the FX market is open, Sunday 17:00 to Friday 17:00 New York (winter)
    start, end = utc("2026-01-11T22:00"), utc("2026-01-16T22:00")
    ticks = stream(np.arange(start, end, M1))
    bars = all_bars(ticks)
    assert opens(bars[D1]) == [
        "2026-01-11 22:00",
        "2026-01-12 22:00",
        "2026-01-13 22:00",
        "2026-01-14 22:00",
        "2026-01-15 22:00",
    ]
    assert (bars[D1]["ticks"] == 1440).all()
    assert len(bars[H4]) == 5 * 6 and (bars[H4]["ticks"] == 240).all()
    assert opens(bars[H4])[:3] == ["2026-01-11 22:00", "2026-01-12 02:00", "2026-01-12 06:00"]
    # the next week's first tick opens Sunday's bar; the weekend left none
    more = all_bars(np.concatenate([ticks, stream([utc("2026-01-18T22:00")])]))
    assert opens(more[D1])[-2:] == ["2026-01-15 22:00", "2026-01-18 22:00"]


@pytest.mark.parametrize(
    ("friday", "sunday_open", "h4_after"),
    [
        # spring: Friday closes at 22:00 UTC (EST), Sunday opens at 21:00 UTC (EDT)
        ("2026-03-06", "2026-03-08T21:00", "2026-03-09 01:00"),
        # autumn: Friday closes at 21:00 UTC (EDT), Sunday opens at 22:00 UTC (EST)
        ("2026-10-30", "2026-11-01T22:00", "2026-11-02 02:00"),
    ],
)
def test_bars_across_a_daylight_saving_weekend(
    friday: str, sunday_open: str, h4_after: str
) -> None:
    spring = friday.startswith("2026-03")
    friday_close = utc(f"{friday}T{'22' if spring else '21'}:00")
    before = np.arange(friday_close - 6 * H1, friday_close, M1)
    after = np.arange(utc(sunday_open), utc(sunday_open) + 6 * H1, M1)
    ticks = stream(np.concatenate([before, after]))
    bars = all_bars(ticks)
    friday_day = bar_open(friday_close - 1, D1, True)
    assert opens(bars[D1]) == [iso(friday_day), iso(utc(sunday_open))]
    assert bars[D1]["ticks"].tolist() == [360, 360]
    assert iso(friday_day)[-5:] == ("22:00" if spring else "21:00")  # Thursday 17:00 New York
    h4 = opens(bars[H4])
    assert h4[-2:] == [iso(utc(sunday_open)), h4_after]
    # 09:00 to 13:00 New York (half of it), 13:00 to 17:00; then 17:00 to 21:00 and half of
    # 21:00 to 01:00: the clock change stretched or cut none
    assert bars[H4]["ticks"].tolist() == [120, 240, 240, 120]
    # H1 and shorter bars stay on UTC's grid
    for p in PERIODS:
        if p <= H1:
            assert (bars[p]["ts_open"] % p == 0).all()


def test_a_gap_leaves_no_bar_and_the_bars_around_it_are_exact() -> None:
    t0 = utc("2026-01-14T12:00")
    times = [t0, t0 + 30 * NS_PER_SECOND, t0 + 5 * M1 + 1, t0 + 5 * M1 + 2]  # 12:01-12:04 silent
    bars = all_bars(stream(times))
    assert opens(bars[M1]) == ["2026-01-14 12:00", "2026-01-14 12:05"]
    assert bars[M1]["ticks"].tolist() == [2, 2]
    assert len(bars[H4]) == 1 and bars[H4]["ticks"][0] == 4


def test_crypto_days_are_utc_and_batches_never_change_a_bar() -> None:
    rng = np.random.default_rng(7)
    # two symbols over three days across the spring change, random gaps, both clocks at once
    times = np.sort(rng.integers(utc("2026-03-06T00:00"), utc("2026-03-09T00:00"), 20_000))
    ticks = stream(times, sym=rng.integers(0, 2, len(times)).astype(np.uint16))
    whole = all_bars(ticks)
    assert opens(whole[D1], CRYPTO) == [
        "2026-03-06 00:00",
        "2026-03-07 00:00",
        "2026-03-08 00:00",
    ]
    assert set(opens(whole[D1], FX)) == {
        "2026-03-05 22:00",
        "2026-03-06 22:00",
        "2026-03-07 22:00",
        "2026-03-08 21:00",  # the clocks changed that Sunday: 17:00 New York is 21:00 UTC
    }
    for batch in (1, 7, 16, 17, 1000):
        chopped = all_bars(ticks, batch)
        for p in PERIODS:
            assert chopped[p].tobytes() == whole[p].tobytes(), (batch, p)


def test_h4_and_d1_from_stored_m1_bars_equal_those_built_from_ticks() -> None:
    times = np.arange(utc("2026-03-05T20:00"), utc("2026-03-09T06:00"), 20 * NS_PER_SECOND)
    keep = ~((times >= utc("2026-03-06T22:00")) & (times < utc("2026-03-08T21:00")))  # weekend
    ticks = stream(times[keep])
    bars = all_bars(ticks)
    for p in (H4, D1):
        rolled = aggregate(bars[M1], p, ny_close=True)
        assert rolled.tobytes() == bars[p].tobytes(), p


def test_a_restart_seeded_with_open_h4_and_d1_bars_goes_on_as_if_never_stopped() -> None:
    times = np.arange(utc("2026-03-08T21:00"), utc("2026-03-09T12:00"), 15 * NS_PER_SECOND)
    ticks = stream(times)
    whole = all_bars(ticks)
    cut = len(ticks) // 2 + 3
    first = CandleSet(2, PERIODS, ny_close=NY_CLOSE)
    first.update(ticks[:cut])
    carried = np.concatenate(list(first.open_bars().values()))
    second = CandleSet(2, PERIODS, ny_close=NY_CLOSE)
    second.seed(carried)
    out = second.update(ticks[cut:])
    for p in (H4, D1):
        got = np.concatenate([out[p][0], second.open_bars()[p]])
        assert got.tobytes() == whole[p][-len(got) :].tobytes(), p
