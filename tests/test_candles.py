"""Candles: a trader's M1 to D1 bars, whatever the batch size the feed happened to deliver."""

from __future__ import annotations

import numpy as np
import pytest

from mikrobot_tui.data.candles import CandleBuilder, CandleSet
from mikrobot_tui.domain.market import (
    BAR_DTYPE,
    H1,
    M1,
    M5,
    M15,
    NS_PER_SECOND,
    TICK_DTYPE,
    TIMEFRAMES,
)

BASE = 1_700_000_100 * NS_PER_SECOND  # a multiple of five minutes


def ticks_of(rows: list[tuple[float, int, float, float, float]]) -> np.ndarray:
    """rows: (seconds after BASE, sym, bid, ask, volume)."""
    t = np.zeros(len(rows), dtype=TICK_DTYPE)
    for i, (sec, sym, bid, ask, vol) in enumerate(rows):
        t[i]["ts_event"] = BASE + round(sec * NS_PER_SECOND)
        t[i]["ts_recv"] = t[i]["ts_event"] + 5_000_000
        t[i]["sym"] = sym
        t[i]["bid"], t[i]["ask"] = bid, ask
        t[i]["last"] = np.nan
        t[i]["volume"] = vol
    return t


NAN = float("nan")
HAND = ticks_of(
    [
        (1.0, 0, 1.0, 1.5, NAN),  # 0: sym0 mid 1.25 opens minute 0
        (2.0, 1, 10.0, 10.5, 0.5),  # 1: sym1 mid 10.25
        (30.0, 0, 1.5, 2.0, NAN),  # 2: sym0 mid 1.75 (high)
        (59.999, 0, 0.5, 1.0, NAN),  # 3: sym0 mid 0.75 (low, close)
        (60.0, 0, 1.0, 1.0, NAN),  # 4: sym0 opens minute 1: closes sym0's minute 0
        (61.0, 1, 10.0, 10.0, 0.25),  # 5: sym1 minute 1: closes sym1's minute 0
        (200.0, 0, 2.0, 2.0, NAN),  # 6: sym0 minute 3 (minute 2 empty, no bar): closes minute 1
    ]
)


def test_hand_built_minutes_close_on_the_first_tick_of_the_next_minute() -> None:
    bars, idx = CandleBuilder(2, M1).update(HAND)
    assert idx.tolist() == [4, 5, 6]
    assert bars["sym"].tolist() == [0, 1, 0]
    assert bars["ts_open"].tolist() == [BASE, BASE, BASE + M1]
    assert bars["period_ns"].tolist() == [M1] * 3
    assert bars[["open", "high", "low", "close"]].tolist() == [
        (1.25, 1.75, 0.75, 0.75),
        (10.25, 10.25, 10.25, 10.25),
        (1.0, 1.0, 1.0, 1.0),
    ]
    assert bars["ticks"].tolist() == [3, 1, 1]
    assert bars["volume"].tolist() == [0.0, 0.5, 0.0]  # FX has no volume: 0


def test_open_bars_hold_the_partial_minute() -> None:
    cb = CandleBuilder(3, M1)
    cb.update(HAND)
    ob = cb.open_bars()
    assert ob.dtype == BAR_DTYPE
    assert ob["sym"].tolist() == [0, 1]  # sym 2 never ticked: no bar
    assert ob["ts_open"].tolist() == [BASE + 3 * M1, BASE + M1]
    assert ob["close"].tolist() == [2.0, 10.0]
    assert ob["volume"].tolist() == [0.0, 0.25]


def test_m5_keeps_everything_in_one_open_bar() -> None:
    cb = CandleBuilder(2, M5)
    bars, idx = cb.update(HAND)
    assert len(bars) == 0 and len(idx) == 0
    ob = cb.open_bars()
    assert ob[["open", "high", "low", "close"]].tolist()[0] == (1.25, 2.0, 0.75, 2.0)
    assert ob["ticks"].tolist() == [5, 2]
    assert ob["volume"].tolist() == [0.0, 0.75]


def test_a_bar_carried_across_batches_merges_and_closes_in_the_next_batch() -> None:
    cb = CandleBuilder(2, M1)
    b1, i1 = cb.update(HAND[:3])
    assert len(b1) == 0 and len(i1) == 0
    b2, i2 = cb.update(HAND[3:])
    assert i2.tolist() == [1, 2, 3]  # indices within the second batch
    assert b2[["open", "high", "low", "close"]].tolist()[0] == (1.25, 1.75, 0.75, 0.75)
    assert b2["ticks"].tolist() == [3, 1, 1]


def test_a_late_tick_folds_into_the_current_bar() -> None:
    cb = CandleBuilder(1, M1)
    t = ticks_of([(61.0, 0, 1.0, 1.0, NAN), (10.0, 0, 3.0, 3.0, NAN), (62.0, 0, 2.0, 2.0, NAN)])
    bars, _ = cb.update(t)
    assert len(bars) == 0
    ob = cb.open_bars()
    assert ob[["ts_open", "open", "high", "close", "ticks"]].tolist() == [
        (BASE + M1, 1.0, 3.0, 2.0, 3)
    ]


def test_empty_batch_changes_nothing() -> None:
    cb = CandleBuilder(2, M1)
    bars, idx = cb.update(np.zeros(0, dtype=TICK_DTYPE))
    assert bars.dtype == BAR_DTYPE and len(bars) == 0 and idx.dtype == np.int64
    assert len(cb.open_bars()) == 0


def random_stream(n: int, n_sym: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.zeros(n, dtype=TICK_DTYPE)
    # many ties on ts_event and several empty minutes
    t["ts_event"] = BASE + np.sort(rng.integers(0, 40 * M1, n) // 50_000_000 * 50_000_000)
    t["ts_recv"] = t["ts_event"] + 1
    t["sym"] = rng.integers(0, n_sym, n)
    m = 100 + np.cumsum(rng.normal(0, 0.01, n))
    t["bid"] = np.round(m - 0.01, 2)
    t["ask"] = np.round(m + 0.01, 2)
    t["last"] = np.nan
    t["volume"] = np.where(t["sym"] == 0, np.nan, rng.random(n) * 0.123456789)
    return t


def run_in_batches(stream: np.ndarray, size: int, period: int) -> tuple[np.ndarray, np.ndarray]:
    cb = CandleBuilder(4, period)
    bars, idx = [], []
    for start in range(0, len(stream), size):
        b, i = cb.update(stream[start : start + size])
        bars.append(b)
        idx.append(i + start)
    bars.append(cb.open_bars())
    return np.concatenate(bars), np.concatenate(idx)


@pytest.mark.parametrize("period", [M1, M5])
def test_batch_size_does_not_change_bars_or_close_indices(period: int) -> None:
    stream = random_stream(4_000, 4, seed=3)
    ref_bars, ref_idx = run_in_batches(stream, len(stream), period)
    assert len(ref_idx) > 20
    for size in (1, 7, 1000):
        bars, idx = run_in_batches(stream, size, period)
        assert np.array_equal(idx, ref_idx), size
        assert bars.tobytes() == ref_bars.tobytes(), size


def test_bars_match_a_plain_python_reference() -> None:
    stream = random_stream(2_000, 3, seed=11)
    bars, idx = run_in_batches(stream, 333, M1)
    expected: dict[tuple[int, int], list] = {}
    for row in stream:
        key = (int(row["sym"]), int(row["ts_event"]) // M1 * M1)
        mid = (row["bid"] + row["ask"]) * 0.5
        if key not in expected:
            expected[key] = [mid, mid, mid, mid, 0, 0.0]
        e = expected[key]
        e[1], e[2], e[3] = max(e[1], mid), min(e[2], mid), mid
        e[4] += 1
        e[5] += 0.0 if np.isnan(row["volume"]) else row["volume"]
    got = {(int(b["sym"]), int(b["ts_open"])): b for b in bars}
    assert set(got) == set(expected)
    for key, e in expected.items():
        b = got[key]
        assert [b["open"], b["high"], b["low"], b["close"], b["ticks"]] == e[:5]
        assert b["volume"] == pytest.approx(e[5], abs=1e-7)
    # each close index is the first tick of that symbol in a later minute
    closed = bars[: len(idx)]
    for b, i in zip(closed, idx, strict=True):
        assert stream[i]["sym"] == b["sym"]
        assert stream[i]["ts_event"] >= b["ts_open"] + M1
        earlier = stream[:i][stream[:i]["sym"] == b["sym"]]
        assert earlier["ts_event"].max() < b["ts_open"] + M1


def test_a_candle_set_gives_what_separate_builders_give() -> None:
    stream = random_stream(3_000, 4, seed=8)
    stream["ts_event"] += (stream["ts_event"] - BASE) * 2  # two hours: H1 bars close too
    cs = CandleSet(4, [M1, M5, M15, H1])
    single = {p: CandleBuilder(4, p) for p in (M1, M5, M15, H1)}
    for start in range(0, len(stream), 500):
        batch = stream[start : start + 500]
        together = cs.update(batch)
        for p, b in single.items():
            bars, idx = b.update(batch)
            assert together[p][0].tobytes() == bars.tobytes()
            assert np.array_equal(together[p][1], idx)
    for p, b in single.items():
        assert cs.open_bars()[p].tobytes() == b.open_bars().tobytes()


@pytest.mark.parametrize("size", [1, 37, 2_000])
def test_longer_bars_built_from_minutes_match_bars_built_from_ticks(size: int) -> None:
    # A candle set folds M1's runs into M5 to D1; a lone builder folds the ticks. Across New
    # York's autumn DST change (trading-day clock for syms 0 and 1), with late ticks.
    rng = np.random.default_rng(5)
    n = 6_000
    stream = random_stream(n, 4, seed=21)
    fall_back = 1_762_063_200 * NS_PER_SECOND  # 2025-11-02 06:00 UTC
    ts = fall_back - 30 * H1 + np.cumsum(rng.integers(0, 40 * NS_PER_SECOND, n))
    late = rng.random(n) < 0.05
    stream["ts_event"] = ts - late * rng.integers(0, 20 * M1, n)
    periods = sorted(TIMEFRAMES.values())
    ny = np.array([True, True, False, False])
    cs = CandleSet(4, periods, ny_close=ny)
    single = {p: CandleBuilder(4, p, ny_close=ny) for p in periods}
    closed = 0
    for start in range(0, n, size):
        batch = stream[start : start + size]
        together = cs.update(batch)
        for p, b in single.items():
            bars, idx = b.update(batch)
            assert together[p][0].tobytes() == bars.tobytes(), (p, start)
            assert np.array_equal(together[p][1], idx)
            closed += len(bars)
    for p, b in single.items():
        assert cs.open_bars()[p].tobytes() == b.open_bars().tobytes()
    assert closed > 100


@pytest.mark.parametrize("cut", [1, 2, 3])
def test_late_ticks_at_the_start_of_a_batch_fold_into_the_carried_bar(cut: int) -> None:
    # ticks 1 and 2 are older than sym 0's bar of minute 1; sym 1 is on time
    t = ticks_of(
        [
            (61.0, 0, 1.0, 1.0, NAN),
            (10.0, 0, 3.0, 3.0, NAN),
            (20.0, 0, 0.5, 0.5, NAN),
            (21.0, 1, 5.0, 5.0, 1.0),
            (62.0, 0, 2.0, 2.0, NAN),
            (130.0, 0, 4.0, 4.0, NAN),
        ]
    )
    whole = CandleSet(2, [M1, M5])
    ref = whole.update(t)
    parts = CandleSet(2, [M1, M5])
    got = [parts.update(t[:cut]), parts.update(t[cut:])]
    for p in (M1, M5):
        bars = np.concatenate([g[p][0] for g in got])
        idx = np.concatenate([got[0][p][1], got[1][p][1] + cut])
        assert bars.tobytes() == ref[p][0].tobytes() and np.array_equal(idx, ref[p][1])
        assert parts.open_bars()[p].tobytes() == whole.open_bars()[p].tobytes()
    (m1,) = ref[M1][0]
    assert (m1["ts_open"], m1["open"], m1["high"], m1["low"], m1["ticks"]) == (
        BASE + M1,
        1.0,
        3.0,
        0.5,
        4,
    )


@pytest.mark.parametrize("period", [M5, M15, H1])
def test_a_builder_seeded_with_open_bars_goes_on_as_the_one_that_built_them(period: int) -> None:
    # what a restart does: the open bars come back as bars, not as the ticks that made them
    stream = random_stream(3_000, 4, seed=12)
    cut = 1_700
    built = CandleBuilder(4, period)
    built.update(stream[:cut])
    seeded = CandleBuilder(4, period)
    seeded.seed(built.open_bars().copy())
    assert seeded.open_bars().tobytes() == built.open_bars().tobytes()
    for a, b in zip(built.update(stream[cut:]), seeded.update(stream[cut:]), strict=True):
        assert a.tobytes() == b.tobytes()  # volume too: it round-trips through fixed point
    assert seeded.open_bars().tobytes() == built.open_bars().tobytes()


def test_seeding_refuses_bars_of_another_period() -> None:
    bars = CandleBuilder(1, M1)
    bars.update(random_stream(10, 1, seed=1))
    with pytest.raises(ValueError, match="period"):
        CandleBuilder(1, H1).seed(bars.open_bars())


def test_a_builder_restored_from_a_pickle_folds_ticks_into_the_bars_it_returns() -> None:
    """A replay's checkpoint pickles the builders: their views of the open bars must come back
    as views, or ticks folded after a restore never reach the bars."""
    import pickle

    from mikrobot_tui.data.candles import CandleSet
    from mikrobot_tui.domain.market import M1, M5

    def tick(ts_s: float, mid: float) -> np.ndarray:
        t = np.zeros(1, dtype=TICK_DTYPE)
        t["ts_event"] = int(ts_s * 1e9)
        t["bid"], t["ask"], t["last"], t["volume"] = mid, mid, np.nan, 1.0
        return t

    plain, saved = CandleSet(1, [M1, M5]), None
    for i in range(30):  # half a minute into the first bar
        plain.update(tick(i, 1.0 + i / 100))
    saved = pickle.loads(pickle.dumps(plain))
    out = {}
    for name, candles in (("plain", plain), ("restored", saved)):
        closed = []
        for i in range(30, 130):  # single ticks: the scalar path, across two bar closes
            bars, _ = candles.update(tick(i, 2.0 - i / 1000))[M1]
            closed.extend(bars.tolist())
        out[name] = (closed, candles.open_bars()[M1].tolist())
    assert out["restored"] == out["plain"]
    assert out["plain"][0][0][7] == 60  # the first bar counts all 60 ticks
