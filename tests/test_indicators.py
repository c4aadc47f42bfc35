"""Indicators match TA-Lib's definitions, checked against values worked out by hand, and their
streaming forms agree with the array forms."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mikrobot_tui.trading.indicators import (
    FLAT_RSI,
    StreamingATR,
    StreamingBollinger,
    StreamingEMA,
    StreamingMACD,
    StreamingOBV,
    StreamingRSI,
    StreamingSMA,
    StreamingSwings,
    StreamingVWAP,
    atr,
    bollinger,
    ema,
    macd,
    obv,
    rsi,
    session_start,
    sma,
    swings,
    true_range,
    vwap,
)

# A short bar series whose true ranges are worked out by hand below.
HIGH = [10.0, 11.0, 12.0, 14.0, 13.0, 12.2]
LOW = [8.0, 9.0, 10.0, 13.0, 12.0, 9.2]
CLOSE = [9.0, 10.5, 10.0, 13.5, 12.5, 9.5]
# TR[1] = max(11-9, |11-9|, |9-9|)          = 2
# TR[2] = max(12-10, |12-10.5|, |10-10.5|)  = 2
# TR[3] = max(14-13, |14-10|, |13-10|)      = 4   (a gap up: the previous close counts)
# TR[4] = max(13-12, |13-13.5|, |12-13.5|)  = 1.5
# TR[5] = max(12.2-9.2, |12.2-12.5|, |9.2-12.5|) = 3.3
TR = [2.0, 2.0, 4.0, 1.5, 3.3]


def _random_bars(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 1.1 + np.cumsum(rng.normal(0, 0.0005, n))
    high = close + rng.uniform(0, 0.0008, n)
    low = close - rng.uniform(0, 0.0008, n)
    return high, low, close


def test_ema_is_seeded_with_the_sma_of_the_first_n_values() -> None:
    values = [10.0, 11.0, 12.0, 13.0, 20.0, 5.0]
    out = ema(values, 4)
    k = 2 / (4 + 1)  # 0.4
    seed = (10 + 11 + 12 + 13) / 4  # 11.5 at index 3
    e4 = seed + k * (20 - seed)  # 14.9
    e5 = e4 + k * (5 - e4)  # 10.94
    assert np.isnan(out[:3]).all()
    assert out[3] == pytest.approx(11.5, abs=1e-12)
    assert out[4] == pytest.approx(14.9, abs=1e-12)
    assert out[5] == pytest.approx(10.94, abs=1e-12)
    assert out[3:] == pytest.approx([seed, e4, e5], abs=1e-12)


def test_ema_differs_from_first_value_seeding() -> None:
    # pandas ewm(adjust=False) would seed with 2.0 and give 2 -> 3 -> 4.5 -> 3.75 -> 6.375;
    # TA-Lib seeds at index 2 with (2 + 4 + 6) / 3 = 4 and gives 4 -> 3.5 -> 6.25.
    out = ema([2.0, 4.0, 6.0, 3.0, 9.0], 3)
    assert out[2] == 4.0
    assert out[3] == 3.5
    assert out[4] == 6.25


def test_ema_of_a_constant_is_the_constant_and_short_input_is_all_nan() -> None:
    assert ema([7.25] * 10, 5)[4:] == pytest.approx([7.25] * 6)
    assert np.isnan(ema([1.0, 2.0], 3)).all()
    assert ema([], 3).shape == (0,)
    assert ema([3.0, 5.0], 1).tolist() == [3.0, 5.0]  # alpha 1: the values themselves


def test_true_range_uses_the_previous_close() -> None:
    out = true_range(HIGH, LOW, CLOSE)
    assert np.isnan(out[0])
    assert out[1:] == pytest.approx(TR)


def test_atr_skips_the_first_bar_and_uses_wilder_smoothing() -> None:
    out = atr(HIGH, LOW, CLOSE, 3)
    a3 = (2 + 2 + 4) / 3  # mean of TR[1..3], at index n = 3
    a4 = (a3 * 2 + 1.5) / 3  # 20.5 / 9
    a5 = (a4 * 2 + 3.3) / 3  # 70.7 / 27
    assert np.isnan(out[:3]).all()  # `ta` would give (2 + 2 + 2) / 3 = 2 at index 2
    assert out[3] == pytest.approx(8 / 3, abs=1e-12)
    assert out[4] == pytest.approx(20.5 / 9, abs=1e-12)
    assert out[5] == pytest.approx(70.7 / 27, abs=1e-12)
    assert out[3:] == pytest.approx([a3, a4, a5], abs=1e-12)


def test_atr_needs_n_plus_one_bars() -> None:
    assert np.isnan(atr(HIGH[:3], LOW[:3], CLOSE[:3], 3)).all()
    assert not np.isnan(atr(HIGH[:4], LOW[:4], CLOSE[:4], 3)[3])


def test_streaming_ema_matches_the_array_function_exactly() -> None:
    _, _, close = _random_bars(500, seed=1)
    for n in (1, 2, 5, 20, 34):
        stream = StreamingEMA(n)
        got = [stream.update(x) for x in close]
        assert all(v is None for v in got[: n - 1])
        as_array = np.array([np.nan if v is None else v for v in got])
        assert np.array_equal(as_array, ema(close, n), equal_nan=True), n


def test_streaming_atr_matches_the_array_function_exactly() -> None:
    high, low, close = _random_bars(500, seed=2)
    for n in (1, 3, 14):
        stream = StreamingATR(n)
        got = [stream.update(h, lo, c) for h, lo, c in zip(high, low, close, strict=True)]
        assert all(v is None for v in got[:n])
        assert got[n] is not None
        as_array = np.array([np.nan if v is None else v for v in got])
        assert np.array_equal(as_array, atr(high, low, close, n), equal_nan=True), n


def test_streaming_atr_known_answer() -> None:
    stream = StreamingATR(3)
    got = [stream.update(h, lo, c) for h, lo, c in zip(HIGH, LOW, CLOSE, strict=True)]
    assert got[:3] == [None, None, None]
    assert got[3] == pytest.approx(8 / 3)
    assert got[5] == pytest.approx(70.7 / 27)
    assert stream.ready and stream.count == 6


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_input_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        ema([1.0, bad, 2.0], 2)
    with pytest.raises(ValueError, match="finite"):
        atr([1.0, 2.0], [0.5, bad], [1.0, 1.5], 1)
    stream = StreamingEMA(2)
    with pytest.raises(ValueError, match="finite"):
        stream.update(bad)
    assert stream.count == 0  # a refused value leaves the state untouched
    with pytest.raises(ValueError, match="finite"):
        StreamingATR(2).update(1.0, bad, 1.0)


@pytest.mark.parametrize("n", [0, -1, 2.5, True])
def test_bad_period_is_refused(n: object) -> None:
    with pytest.raises(ValueError, match="period"):
        ema([1.0, 2.0], n)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="period"):
        StreamingEMA(n)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="period"):
        StreamingATR(n)  # type: ignore[arg-type]


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="lengths"):
        atr([1.0, 2.0], [0.5], [1.0, 1.5], 1)


# ---------------------------------------------------------------- the indicators of issue 8

DAY = 86_400 * 10**9
MINUTE = 60 * 10**9


def _utc(text: str) -> int:
    """ns since the epoch of an ISO time in UTC, e.g. "2026-01-15 21:59"."""
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()) * 10**9


def _stream(make, *columns: np.ndarray, width: int = 1) -> np.ndarray | tuple[np.ndarray, ...]:
    """Feed a streaming indicator bar by bar; its outputs as arrays, None as NaN."""
    got = [make.update(*row) for row in zip(*(c.tolist() for c in columns), strict=True)]
    if width == 1:
        return np.array([np.nan if v is None else v for v in got])
    return tuple(
        np.array([np.nan if v is None or v[j] is None else v[j] for v in got]) for j in range(width)
    )


def _agree(streamed: np.ndarray, array: np.ndarray, exact: bool = False) -> None:
    """Within 1e-9; bit for bit where both forms run the same arithmetic in the same order."""
    assert np.array_equal(np.isnan(streamed), np.isnan(array))
    np.testing.assert_allclose(streamed, array, rtol=0, atol=1e-9, equal_nan=True)
    if exact:
        assert np.array_equal(streamed, array, equal_nan=True)


def test_sma_of_a_line_lags_it_by_half_the_window() -> None:
    x = np.arange(30, dtype=float)
    out = sma(x, 5)
    assert np.isnan(out[:4]).all()
    assert out[4:] == pytest.approx(x[4:] - 2.0, abs=1e-12)  # (n - 1) / 2 behind
    assert sma([4.5] * 7, 3)[2:].tolist() == [4.5] * 5
    assert np.isnan(sma([1.0, 2.0], 3)).all()


def test_ema_of_a_line_lags_it_by_half_the_window_from_the_seed_on() -> None:
    # seed (n - 1) / 2 behind the line; then e + 2/(n+1) * (1 + (n-1)/2) = e + 1: the lag holds
    x = np.arange(40, dtype=float)
    out = ema(x, 9)
    assert np.isnan(out[:8]).all()
    assert out[8:] == pytest.approx(x[8:] - 4.0, abs=1e-12)


def test_rsi_worked_by_hand_with_wilder_smoothing() -> None:
    # changes +1, -0.5, +1, -0.5; n = 2
    out = rsi([1.0, 2.0, 1.5, 2.5, 2.0], 2)
    assert np.isnan(out[:2]).all()  # the first RSI is at index n
    # index 2: gain (1 + 0) / 2 = 0.5, loss (0 + 0.5) / 2 = 0.25      -> 100 * 0.5 / 0.75
    # index 3: gain (0.5 + 1) / 2 = 0.75, loss (0.25 + 0) / 2 = 0.125 -> 100 * 0.75 / 0.875
    # index 4: gain (0.75 + 0) / 2 = 0.375, loss (0.125 + 0.5) / 2 = 0.3125
    assert out[2:] == pytest.approx([200 / 3, 600 / 7, 100 * 0.375 / 0.6875], abs=1e-12)


def test_rsi_of_rising_falling_and_flat_series() -> None:
    up = np.linspace(1.0, 2.0, 40)
    assert rsi(up)[14:].tolist() == [100.0] * 26
    assert rsi(up[::-1])[14:].tolist() == [0.0] * 26
    assert rsi([1.1] * 20)[14:].tolist() == [FLAT_RSI] * 6 == [50.0] * 6  # TA-Lib gives 0
    assert np.isnan(rsi(up[:14])).all()  # n changes need n + 1 closes


def test_macd_seeds_the_fast_ema_where_the_slow_one_starts() -> None:
    # fast 2, slow 3, signal 2 on 1, 2, 4, 8, 16. Both EMAs start at index 2:
    # slow (1 + 2 + 4) / 3 = 7/3, fast (2 + 4) / 2 = 3 (a separate EMA(2) would be 19/6 there)
    # index 3: fast 3 + 2/3 (8 - 3) = 19/3, slow 7/3 + 1/2 (8 - 7/3) = 31/6, macd 7/6
    # signal seeded at index 3 with (2/3 + 7/6) / 2 = 11/12: the first output, hist 1/4
    # index 4: fast 115/9, slow 127/12, macd 79/36, signal 11/12 + 2/3 (79/36 - 11/12) = 191/108
    line, signal, hist = macd([1.0, 2.0, 4.0, 8.0, 16.0], 2, 3, 2)
    for out in (line, signal, hist):
        assert np.isnan(out[:3]).all()  # slow + signal - 2 = 3, as TA-Lib: all three
    assert line[3:] == pytest.approx([7 / 6, 79 / 36], abs=1e-12)
    assert signal[3:] == pytest.approx([11 / 12, 191 / 108], abs=1e-12)
    assert hist[3:] == pytest.approx([1 / 4, 23 / 54], abs=1e-12)


def test_macd_of_a_line_is_half_the_period_gap_times_the_slope() -> None:
    x = 1.1 + 0.001 * np.arange(80)
    line, signal, hist = macd(x)
    assert np.isnan(line[:33]).all() and not np.isnan(line[33])
    assert line[33:] == pytest.approx([0.001 * (26 - 12) / 2] * 47, abs=1e-12)
    assert signal[33:] == pytest.approx(line[33:], abs=1e-12)
    assert hist[33:] == pytest.approx([0.0] * 47, abs=1e-12)
    assert [np.isnan(a).all() for a in macd(x[:33])] == [True] * 3


def test_bollinger_uses_the_population_standard_deviation() -> None:
    x = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]  # mean 5, population std exactly 2
    upper, middle, lower = bollinger(x, 8, 2.0)
    assert np.isnan(middle[:7]).all()
    assert (upper[7], middle[7], lower[7]) == (9.0, 5.0, 1.0)  # sample std would give 9.28
    upper, middle, lower = bollinger([1.25] * 25)
    assert np.isnan(upper[:19]).all()
    assert (upper[19:] == middle[19:]).all() and (lower[19:] == middle[19:]).all()  # zero width
    assert middle[19:].tolist() == [1.25] * 6


def test_obv_worked_by_hand() -> None:
    close = [10.0, 11.0, 11.0, 10.5, 12.0, 12.0]
    volume = [100.0, 200.0, 300.0, 400.0, 500.0, 600.0]
    # starts at the first volume; up +200; unchanged +0; down -400; up +500; unchanged +0
    assert obv(close, volume).tolist() == [100.0, 300.0, 300.0, -100.0, 400.0, 400.0]
    stream = StreamingOBV()
    assert [stream.update(c, v) for c, v in zip(close, volume, strict=True)][-1] == 400.0
    assert obv([], []).shape == (0,)


def _four_bars(first: str) -> tuple[list[float], ...]:
    """Four M1 bars from `first` (UTC); typical prices 10, 12, 20, 23; volumes 1, 3, 2, 2."""
    high, low, close = [11.0, 13.0, 21.0, 24.0], [9.0, 11.0, 19.0, 22.0], [10.0, 12.0, 20.0, 23.0]
    ts = [_utc(first) + i * MINUTE for i in range(4)]
    return high, low, close, [1.0, 3.0, 2.0, 2.0], ts


# Two bars before the session boundary and two from it: (10 * 1 + 12 * 3) / 4 = 11.5, then
# the reset: 20, then (20 * 2 + 23 * 2) / 4 = 21.5. Without a reset: 11.5, (46 + 40) / 6, ...
RESET = [10.0, 11.5, 20.0, 21.5]
NO_RESET = [10.0, 11.5, (46 + 40) / 6, (46 + 40 + 46) / 8]


@pytest.mark.parametrize(
    ("first", "session", "expected"),
    [
        ("2026-01-14 23:58", "utc_day", RESET),
        ("2026-01-14 23:58", "fx_day", NO_RESET),
        ("2026-01-14 21:58", "fx_day", RESET),  # winter: 17:00 New York (EST) is 22:00 UTC
        ("2026-07-14 21:58", "fx_day", NO_RESET),
        ("2026-07-14 20:58", "fx_day", RESET),  # summer: 17:00 New York (EDT) is 21:00 UTC
        ("2026-07-14 21:58", "utc_day", NO_RESET),
    ],
)
def test_vwap_resets_at_the_session_start(first: str, session: str, expected: list[float]) -> None:
    high, low, close, volume, ts = _four_bars(first)
    out = vwap(high, low, close, volume, np.array(ts), session=session)
    assert out == pytest.approx(expected, abs=1e-12)
    stream = StreamingVWAP(session)
    assert [stream.update(*bar) for bar in zip(high, low, close, volume, ts, strict=True)] == (
        pytest.approx(expected, abs=1e-12)
    )


def test_the_fx_day_is_23_hours_when_new_york_springs_forward() -> None:
    # US daylight saving starts Sunday 2026-03-08 at 02:00 New York
    assert session_start(_utc("2026-03-07 21:59"), "fx_day") == (
        _utc("2026-03-06 22:00"),  # Friday 17:00 EST
        _utc("2026-03-07 22:00"),
    )
    start, end = session_start(_utc("2026-03-07 22:00"), "fx_day")  # Saturday 17:00 EST
    assert (start, end) == (_utc("2026-03-07 22:00"), _utc("2026-03-08 21:00"))  # 17:00 EDT
    assert end - start == 23 * 3600 * 10**9
    assert session_start(_utc("2026-03-08 21:00"), "fx_day")[0] == _utc("2026-03-08 21:00")
    assert session_start(_utc("2026-01-15 00:00"), "utc_day") == (
        _utc("2026-01-15 00:00"),
        _utc("2026-01-16 00:00"),
    )


def test_vwap_waits_for_volume_and_checks_its_time_stamps() -> None:
    ts = np.array([0, MINUTE, 2 * MINUTE])
    out = vwap([2.0] * 3, [1.0] * 3, [1.5] * 3, [0.0, 0.0, 5.0], ts)
    assert np.isnan(out[:2]).all() and out[2] == 1.5
    with pytest.raises(ValueError, match="back in time"):
        vwap([2.0] * 3, [1.0] * 3, [1.5] * 3, [1.0] * 3, ts[::-1])
    with pytest.raises(ValueError, match="integer"):
        vwap([2.0], [1.0], [1.5], [1.0], np.array([1.5]))
    with pytest.raises(ValueError, match="session"):
        vwap([2.0], [1.0], [1.5], [1.0], np.array([0]), session="london")
    stream = StreamingVWAP()
    stream.update(2.0, 1.0, 1.5, 1.0, MINUTE)
    with pytest.raises(ValueError, match="back in time"):
        stream.update(2.0, 1.0, 1.5, 1.0, 0)


# A drawn zig-zag, width 2:
#   bar   0  1  2  3  4  5  6  7  8  9 10
#   high  1  2  5  3  2  3  4  6  4  3  3
#   low   0  1  4  2  1  2  3  5  3  2  2
# swing high at bar 2 (5), confirmed at bar 4; swing high at bar 7 (6), confirmed at bar 9;
# swing low at bar 4 (1), confirmed at bar 6. Bar 9's low (2) ties bar 10's: a swing low too
# (equal on the right is allowed) but it needs bar 11 to be confirmed.
ZIG_HIGH = [1.0, 2.0, 5.0, 3.0, 2.0, 3.0, 4.0, 6.0, 4.0, 3.0, 3.0]
ZIG_LOW = [h - 1.0 for h in ZIG_HIGH]


def test_swings_on_a_drawn_zig_zag_are_reported_where_confirmed() -> None:
    swing_high, swing_low = swings(ZIG_HIGH, ZIG_LOW, width=2)
    assert np.flatnonzero(~np.isnan(swing_high)).tolist() == [4, 9]
    assert swing_high[[4, 9]].tolist() == [5.0, 6.0]
    assert np.flatnonzero(~np.isnan(swing_low)).tolist() == [6]
    assert swing_low[6] == 1.0
    stream = StreamingSwings(2)
    got = [stream.update(h, lo) for h, lo in zip(ZIG_HIGH, ZIG_LOW, strict=True)]
    assert [i for i, (h, _) in enumerate(got) if h is not None] == [4, 9]
    assert (stream.last_high, stream.last_high_index) == (6.0, 7)
    assert (stream.last_low, stream.last_low_index) == (1.0, 4)


def test_of_equal_highs_only_the_first_is_a_swing() -> None:
    high = [1.0, 3.0, 3.0, 3.0, 1.0, 0.5]  # a flat top over bars 1..3
    low = [0.0, 2.0, 2.0, 2.0, 0.0, -0.5]
    swing_high, _ = swings(high, low, width=1)
    assert np.flatnonzero(~np.isnan(swing_high)).tolist() == [2]  # bar 1, confirmed at bar 2
    _, swing_low = swings([-h for h in low], [-h for h in high], width=1)
    assert np.flatnonzero(~np.isnan(swing_low)).tolist() == [2]  # the mirror image
    assert [np.isnan(a).all() for a in swings(high[:2], low[:2], 1)] == [True, True]


def _random_session_bars(n: int, seed: int) -> tuple[np.ndarray, ...]:
    high, low, close = _random_bars(n, seed)
    rng = np.random.default_rng(seed + 100)
    volume = np.where(rng.random(n) < 0.05, 0.0, rng.uniform(0, 50, n))
    gaps = rng.choice([1, 1, 1, 5, 60, 600], n) * MINUTE  # across many days and both DST shifts
    ts = _utc("2026-03-01 15:00") + np.cumsum(gaps)
    return high, low, close, volume, ts


@pytest.mark.parametrize("seed", [3, 4])
def test_streaming_forms_agree_with_the_array_forms_on_long_series(seed: int) -> None:
    high, low, close, volume, ts = _random_session_bars(5000, seed)
    for n in (1, 2, 14, 20, 50):
        _agree(_stream(StreamingSMA(n), close), sma(close, n))
        _agree(_stream(StreamingRSI(n), close), rsi(close, n), exact=True)
        for s, a in zip(
            _stream(StreamingBollinger(n, 2.5), close, width=3),
            bollinger(close, n, 2.5),
            strict=True,
        ):
            _agree(s, a, exact=True)
    for fast, slow, signal in ((12, 26, 9), (1, 2, 1), (5, 35, 5)):
        streamed = _stream(StreamingMACD(fast, slow, signal), close, width=3)
        for s, a in zip(streamed, macd(close, fast, slow, signal), strict=True):
            _agree(s, a, exact=True)
    _agree(_stream(StreamingOBV(), close, volume), obv(close, volume))
    assert np.array_equal(_stream(StreamingOBV(), close, volume), obv(close, volume))
    for session in ("utc_day", "fx_day"):
        streamed = _stream(StreamingVWAP(session), high, low, close, volume, ts)
        _agree(streamed, vwap(high, low, close, volume, ts, session), exact=True)
    coarse_high, coarse_low = np.round(high, 3), np.round(low, 3)  # ties happen
    for width in (1, 2, 3):
        streamed = _stream(StreamingSwings(width), coarse_high, coarse_low, width=2)
        for s, a in zip(streamed, swings(coarse_high, coarse_low, width), strict=True):
            assert np.array_equal(s, a, equal_nan=True)


def test_the_streaming_sma_stays_exact_at_bitcoin_prices() -> None:
    rng = np.random.default_rng(9)
    close = 60_000 + np.cumsum(rng.normal(0, 25, 100_000))
    np.testing.assert_allclose(_stream(StreamingSMA(20), close), sma(close, 20), rtol=1e-14)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False), max_size=60),
    st.integers(1, 8),
)
def test_streaming_agrees_on_any_short_series(values: list[float], n: int) -> None:
    x = np.array(values)
    _agree(_stream(StreamingSMA(n), x), sma(x, n))
    _agree(_stream(StreamingEMA(n), x), ema(x, n))
    _agree(_stream(StreamingRSI(n), x), rsi(x, n))
    for s, a in zip(_stream(StreamingBollinger(n), x, width=3), bollinger(x, n), strict=True):
        _agree(s, a)
    for s, a in zip(
        _stream(StreamingMACD(n, n + 3, n), x, width=3), macd(x, n, n + 3, n), strict=True
    ):
        _agree(s, a)
    for s, a in zip(
        _stream(StreamingSwings(n), x, x - 1, width=2), swings(x, x - 1, n), strict=True
    ):
        assert np.array_equal(s, a, equal_nan=True)


def test_indicator_inputs_are_checked() -> None:
    with pytest.raises(ValueError, match="finite"):
        rsi([1.0, math.nan, 2.0])
    with pytest.raises(ValueError, match="negative"):
        obv([1.0, 2.0], [1.0, -1.0])
    with pytest.raises(ValueError, match="negative"):
        StreamingVWAP().update(2.0, 1.0, 1.5, -1.0, 0)
    with pytest.raises(ValueError, match="lengths"):
        obv([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="lengths"):
        swings([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="shorter"):
        macd([1.0] * 40, 26, 12)
    with pytest.raises(ValueError, match="shorter"):
        StreamingMACD(5, 5)
    with pytest.raises(ValueError, match="k must"):
        bollinger([1.0] * 30, 20, -1.0)
    with pytest.raises(ValueError, match="width"):
        StreamingSwings(0)
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="period"):
            sma([1.0], bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="period"):
            StreamingRSI(bad)  # type: ignore[arg-type]


def test_matches_talib_where_it_installs() -> None:
    talib = pytest.importorskip("talib")
    high, low, close, volume, _ = _random_session_bars(3000, 5)
    close = close * 1000  # away from TA-Lib's 1e-8 "zero" in RSI
    high, low = high * 1000, low * 1000

    def same(ours: np.ndarray, theirs: np.ndarray) -> None:
        assert np.array_equal(np.isnan(ours), np.isnan(theirs))
        np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-9, equal_nan=True)

    same(sma(close, 20), talib.SMA(close, 20))
    same(ema(close, 20), talib.EMA(close, 20))
    same(rsi(close, 14), talib.RSI(close, 14))
    for ours, theirs in zip(macd(close), talib.MACD(close, 12, 26, 9), strict=True):
        same(ours, theirs)
    for ours, theirs in zip(bollinger(close), talib.BBANDS(close, 20, 2.0, 2.0, 0), strict=True):
        same(ours, theirs)
    same(atr(high, low, close), talib.ATR(high, low, close, 14))
    same(obv(close, volume), talib.OBV(close, volume))
