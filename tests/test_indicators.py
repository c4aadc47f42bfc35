"""Indicators match TA-Lib's definitions, checked against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mikrobot_tui.trading.indicators import (
    StreamingATR,
    StreamingEMA,
    atr,
    ema,
    true_range,
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
