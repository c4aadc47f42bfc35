"""The quality monitor: bad ticks are rejected with a reason, odd ones flagged, scores tell."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mikrobot_tui.config import QualitySettings
from mikrobot_tui.data.quality import QualityMonitor
from mikrobot_tui.domain.market import NS_PER_MS, NS_PER_SECOND, TICK_DTYPE

BASE = 1_700_000_000 * NS_PER_SECOND
NAN = float("nan")
INF = float("inf")
SETTINGS = QualitySettings(spike_sigma=3.0)  # max_gap 5 s, latency 250 ms, window 60 s


def ticks_of(rows: list[tuple]) -> np.ndarray:
    """rows: (seconds, sym, bid, ask[, last, volume[, latency_ms]])."""
    t = np.zeros(len(rows), dtype=TICK_DTYPE)
    for i, row in enumerate(rows):
        sec, sym, bid, ask, *rest = row
        last, vol, lat = (list(rest) + [NAN, NAN, 5.0][len(rest) :])[:3]
        t[i]["ts_event"] = BASE + round(sec * NS_PER_SECOND)
        t[i]["ts_recv"] = t[i]["ts_event"] + round(lat * NS_PER_MS)
        t[i]["sym"], t[i]["bid"], t[i]["ask"] = sym, bid, ask
        t[i]["last"], t[i]["volume"] = last, vol
    return t


def test_each_bad_tick_is_rejected_with_its_reason() -> None:
    t = ticks_of(
        [
            (1.0, 0, 1.0, 1.1),  # 0 ok
            (1.1, 0, NAN, 1.1),  # 1 NaN price
            (1.2, 0, 1.0, INF),  # 2 infinite price
            (1.3, 0, 0.0, 1.1),  # 3 non-positive price
            (1.4, 0, 1.2, 1.1),  # 4 crossed quote
            (1.5, 0, 1.1, 1.1),  # 5 locked quote: accepted, flagged
            (0.5, 0, 1.0, 1.1),  # 6 timestamp from the past
            (1.5, 0, 1.1, 1.1),  # 7 duplicate of 5
            (1.6, 1, 9.0, 9.1, -5.0, 1.0),  # 8 bad trade price
            (1.7, 1, 9.0, 9.1, 9.05, -1.0),  # 9 bad volume
            (1.8, 1, 9.0, 9.1, 9.05, 1.0),  # 10 ok
            (1.8, 1, 9.0, 9.1, 9.05, 1.0),  # 11 duplicate
            (1.8, 1, 9.0, 9.1, 9.05, 2.0),  # 12 same time, another volume: ok
        ]
    )
    res = QualityMonitor(2, SETTINGS).check(t)
    assert [(r.ts_event - BASE, r.sym, r.reason) for r in res.rejects] == [
        (int(1.1e9), 0, "NaN price"),
        (int(1.2e9), 0, "infinite price"),
        (int(1.3e9), 0, "non-positive price"),
        (int(1.4e9), 0, "crossed quote"),
        (int(0.5e9), 0, "timestamp from the past"),
        (int(1.5e9), 0, "duplicate tick"),
        (int(1.6e9), 1, "bad trade price"),
        (int(1.7e9), 1, "bad volume"),
        (int(1.8e9), 1, "duplicate tick"),
    ]
    assert res.clean.tobytes() == t[[0, 5, 10, 12]].tobytes()
    assert res.problems_by_sym == {0: 7, 1: 3}  # 6 rejects and the locked quote
    assert "bid=nan" in res.rejects[0].raw and f"ts={BASE + int(1.1e9)}" in res.rejects[0].raw


def test_a_rejected_tick_does_not_move_the_clock_forward() -> None:
    # tick 1 is crossed at 5 s: tick 2 at 3 s is still later than the last accepted (1 s)
    t = ticks_of([(1.0, 0, 1.0, 1.1), (5.0, 0, 1.2, 1.1), (3.0, 0, 1.0, 1.1), (2.0, 0, 1.0, 1.1)])
    res = QualityMonitor(1, SETTINGS).check(t)
    assert [r.reason for r in res.rejects] == ["crossed quote", "timestamp from the past"]
    assert res.clean.tobytes() == t[[0, 2]].tobytes()


def test_a_run_of_duplicates_is_rejected_but_a_new_time_is_not() -> None:
    t = ticks_of([(1.0, 0, 1.0, 1.1)] * 3 + [(2.0, 0, 1.0, 1.1)])
    res = QualityMonitor(1, SETTINGS).check(t)
    assert [r.reason for r in res.rejects] == ["duplicate tick"] * 2
    assert len(res.clean) == 2


def uniform_walk(n: int, seed: int, sym: int = 0, dt: float = 0.25) -> list[tuple]:
    """Returns bounded by sqrt(3) sigma: a clean feed has no 3-sigma spike."""
    rng = np.random.default_rng(seed)
    m = 1.08 * np.exp(np.cumsum(rng.uniform(-1e-4, 1e-4, n)))
    return [(i * dt, sym, m[i] - 5e-5, m[i] + 5e-5) for i in range(n)]


def test_a_clean_feed_scores_one() -> None:
    qm = QualityMonitor(1, SETTINGS)
    t = ticks_of(uniform_walk(2000, seed=1))
    res = qm.check(t)
    assert len(res.clean) == 2000 and res.rejects == [] and res.problems_by_sym == {0: 0}
    (q,) = qm.scores(int(t["ts_event"][-1]))
    assert q.score == 1.0
    assert (q.ticks, q.rejects, q.spikes, q.gaps) == (2000, 0, 0, 0)
    assert q.last_problem == "" and q.last_problem_ts is None
    assert q.latency_ms == pytest.approx(5.0)


def test_a_spike_is_flagged_once_with_its_sigma() -> None:
    c = math.log(1.0001)
    mids = [1.0 if i % 2 == 0 else 1.0001 for i in range(200)]  # returns +-c: sigma = c
    mids.append(mids[-1] * math.exp(7.3 * c))  # the spike
    mids.append(mids[-2])  # and back
    mids += [1.0 if i % 2 == 0 else 1.0001 for i in range(10)]
    t = ticks_of([(i * 0.2, 0, m - 1e-6, m + 1e-6) for i, m in enumerate(mids)])  # not locked
    qm = QualityMonitor(1, SETTINGS)
    res = qm.check(t)
    assert len(res.clean) == len(t)  # flagged, passed on
    (q,) = qm.scores(int(t["ts_event"][-1]))
    assert q.spikes == 1
    assert res.problems_by_sym == {0: 1}
    assert q.last_problem == "spike 7.3σ"
    assert q.last_problem_ts == t["ts_event"][200]
    assert q.score == pytest.approx(math.exp(-0.10), abs=0.01)


def test_a_gap_is_counted_once_even_across_batches() -> None:
    rows = [(float(i), 0, 1.0 + (i % 2) * 0.01, 1.1) for i in range(10)] + [
        (21.0 + i, 0, 1.0 + (i % 2) * 0.01, 1.1) for i in range(5)
    ]
    t = ticks_of(rows)
    for cut in (1, 10, 11, 15):
        qm = QualityMonitor(1, SETTINGS)
        total = sum(sum(qm.check(part).problems_by_sym.values()) for part in (t[:cut], t[cut:]))
        (q,) = qm.scores(int(t["ts_event"][-1]))
        assert (q.gaps, total) == (1, 1), cut
        assert q.last_problem == "gap 12.0s"


def test_a_frozen_quote_is_stale_once_per_episode() -> None:
    rows = [(i * 0.5, 0, 1.0 + (i % 2) * 0.01, 1.1) for i in range(4)]
    rows += [(2.0 + i * 0.5, 0, 1.0, 1.1) for i in range(1, 20)]  # frozen 9.5 s
    rows += [(12.5, 0, 1.01, 1.1)]
    qm = QualityMonitor(1, SETTINGS)
    res = qm.check(ticks_of(rows))
    assert qm.counters()[0].tolist() == [0, 0, 0, 1, 0, 0, 0]
    assert res.problems_by_sym == {0: 1}
    assert qm.scores(BASE + 13 * NS_PER_SECOND)[0].last_problem == "stale 6s"  # 5.5 s rounds to 6


def test_latency_above_the_limit_is_flagged_per_tick() -> None:
    rows = [
        (i * 0.5, 0, 1.0 + (i % 2) * 0.01, 1.1, NAN, NAN, 420.0 if i >= 4 else 5.0)
        for i in range(10)
    ]
    qm = QualityMonitor(1, SETTINGS)
    res = qm.check(ticks_of(rows))
    assert res.problems_by_sym == {0: 6}
    (q,) = qm.scores(BASE + 5 * NS_PER_SECOND)
    assert q.last_problem == "latency 420ms"
    assert q.latency_ms == pytest.approx(420.0)  # the median of the recent ticks


def test_score_drops_in_a_fault_burst_and_recovers_after_a_clean_window() -> None:
    qm = QualityMonitor(1, SETTINGS)
    good = uniform_walk(240, seed=2)  # 60 s
    burst = [(60.0, 0, NAN, 1.0), (60.1, 0, 1.2, 1.1), (60.2, 0, 0.0, 1.0)]
    after = [(60.25 + i * 0.25, 0, b, a) for i, (_, _, b, a) in enumerate(uniform_walk(400, 3))]
    qm.check(ticks_of(good))
    assert qm.scores(BASE + 60 * NS_PER_SECOND)[0].score == 1.0
    qm.check(ticks_of(burst))
    q = qm.scores(BASE + 61 * NS_PER_SECOND)[0]
    assert q.score < 0.8 and q.rejects == 3 and q.last_problem == "non-positive price"
    qm.check(ticks_of(after[:120]))  # 30 s later: halfway back
    mid_score = qm.scores(BASE + 90 * NS_PER_SECOND)[0].score
    assert 0.8 < mid_score < 0.9
    qm.check(ticks_of(after[120:]))  # a clean window later
    assert qm.scores(BASE + 160 * NS_PER_SECOND)[0].score == 1.0


def test_a_silent_symbol_loses_score_until_it_ticks_again() -> None:
    qm = QualityMonitor(2, SETTINGS)
    qm.check(ticks_of([(0.0, 1, 1.0, 1.1)]))
    (q,) = qm.scores(BASE + 20 * NS_PER_SECOND)  # only sym 1 was seen
    assert q.sym == 1 and q.score == pytest.approx(math.exp(-0.25))
    assert q.last_problem == "silent 20s"


def faulty_stream(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.zeros(n, dtype=TICK_DTYPE)
    t["ts_event"] = BASE + np.sort(rng.integers(0, n * 100 * NS_PER_MS, n))
    t["ts_event"][n // 2 : n // 2 + 40] += 8 * NS_PER_SECOND  # a gap for everyone
    t["ts_event"] = np.maximum.accumulate(t["ts_event"])
    t["ts_recv"] = t["ts_event"] + rng.integers(1, 400, n) * NS_PER_MS
    t["sym"] = rng.integers(0, 3, n)
    m = 100 * np.exp(np.cumsum(rng.normal(0, 1e-4, n)))
    t["bid"], t["ask"] = np.round(m - 0.01, 2), np.round(m + 0.01, 2)
    t["last"] = np.where(t["sym"] == 2, t["bid"], np.nan)
    t["volume"] = np.where(t["sym"] == 2, 0.5, np.nan)
    bad = rng.choice(n, 60, replace=False)
    t["bid"][bad[:10]] = np.nan
    t["ask"][bad[10:20]] = t["bid"][bad[10:20]] - 0.05
    t["ts_event"][bad[20:30]] -= 3 * NS_PER_SECOND
    t["bid"][bad[30:40]] *= 1.02  # spikes (some crossed)
    t["ask"][bad[30:40]] *= 1.02
    dup = bad[40:50]
    t = np.insert(t, dup + 1, t[dup])
    t["ts_event"][bad[50:60]] = t["ts_event"][bad[50:60] - 1]  # ties
    return t


def run(stream: np.ndarray, size: int) -> tuple:
    qm = QualityMonitor(3, SETTINGS)
    clean, rejects, problems = [], [], np.zeros(3, dtype=np.int64)
    for start in range(0, len(stream), size):
        res = qm.check(stream[start : start + size])
        clean.append(res.clean)
        rejects += res.rejects
        for s, c in res.problems_by_sym.items():
            problems[s] += c
    now = int(stream["ts_event"].max())
    return (
        np.concatenate(clean).tobytes(),
        rejects,
        problems.tolist(),
        qm.scores(now),
        qm.counters(),
    )


def test_batch_size_does_not_change_anything() -> None:
    stream = faulty_stream(3000, seed=5)
    ref = run(stream, len(stream))
    counters = ref[4]
    assert (counters > 0).all(axis=0).sum() >= 4  # rejects, spikes, gaps, latency all present
    assert len(ref[1]) >= 30
    for size in (1, 7, 1000):
        got = run(stream, size)
        assert got[0] == ref[0], size
        assert got[1] == ref[1], size
        assert got[2] == ref[2], size
        assert got[3] == ref[3], size
        assert np.array_equal(got[4], ref[4]), size


def test_empty_batch() -> None:
    res = QualityMonitor(1, SETTINGS).check(np.zeros(0, dtype=TICK_DTYPE))
    assert len(res.clean) == 0 and res.rejects == [] and res.problems_by_sym == {}


@pytest.mark.parametrize("cut", [0, 1, 2, 3])
def test_a_repeat_behind_a_rejected_tick_is_still_a_duplicate(cut: int) -> None:
    # tick 2 repeats tick 0: the crossed tick between them is not a candidate
    t = ticks_of([(1.0, 0, 1.0, 1.1), (2.0, 0, 1.2, 1.1), (1.0, 0, 1.0, 1.1), (3.0, 0, 1.0, 1.1)])
    qm = QualityMonitor(1, SETTINGS)
    results = [qm.check(part) for part in (t[:cut], t[cut:])]
    assert [r.reason for res in results for r in res.rejects] == [
        "crossed quote",
        "duplicate tick",
    ]
    clean = np.concatenate([res.clean for res in results])
    assert clean.tobytes() == t[[0, 3]].tobytes()


def test_the_variance_ewma_is_the_recurrence_and_ignores_batching() -> None:
    """ewma.py computes v[j] = a x[j] + (1 - a) v[j - 1] as a scaled cumulative sum; checked
    against the recurrence run one step at a time (scipy's lfilter, in the test only), and cut
    anywhere, across the grid's cells included, it gives the same bits."""
    from scipy.signal import lfilter

    from mikrobot_tui.data.quality import ewma

    x = (np.random.default_rng(1).standard_t(3, size=3 * ewma.CELL + 500) * 1e-4) ** 2
    ref = lfilter([ewma.ALPHA], [1.0, -(1.0 - ewma.ALPHA)], x)
    whole = np.empty_like(x)
    acc = ewma.run(x, 0.0, 0, whole, np.empty_like(x))
    np.testing.assert_allclose(whole, ref, rtol=1e-14, atol=0)
    assert ewma.variance_of(np.array([acc]), np.array([len(x)]))[0] == whole[-1]
    for cuts in ([1, 2, ewma.CELL - 3, ewma.CELL, 7], [ewma.CELL] * 4, [4999, 17, 1]):
        parts, acc, n, at = [], 0.0, 0, 0
        for c in [*cuts, len(x)]:
            piece = x[at : at + c]
            out = np.empty_like(piece)
            acc = ewma.run(piece, acc, n, out, np.empty_like(piece)) if len(piece) else acc
            parts.append(out)
            n, at = n + len(piece), at + len(piece)
        assert np.concatenate(parts).tobytes() == whole.tobytes()


def walk_with(n: int, seed: int, at: dict[int, float], spike: int | None = None) -> np.ndarray:
    """A uniform walk (0.25 s apart) whose tick i is quoted at at[i] instead, and whose tick
    `spike` is 3% above the one before."""
    rows = uniform_walk(n, seed)
    for i, price in at.items():
        rows[i] = (rows[i][0], 0, price, price)
    if spike is not None:
        rows[spike] = (rows[spike][0], 0, rows[spike - 1][2] * 1.03, rows[spike - 1][3] * 1.03)
    return ticks_of(rows)


def test_an_absurd_price_is_rejected_even_on_a_symbols_first_tick() -> None:
    t = walk_with(300, 4, {0: 1.7e308, 100: 1.7e308, 200: 2e12})
    res = QualityMonitor(1, SETTINGS).check(t)
    assert [(r.ts_event, r.reason) for r in res.rejects] == [
        (t["ts_event"][i], "absurd price") for i in (0, 100, 200)
    ]
    assert np.isfinite(res.clean["bid"]).all() and res.clean["ask"].max() < 2


def test_a_price_far_from_the_last_one_is_a_jump_and_the_estimator_never_sees_it() -> None:
    # 20x above and 20x below: rejected; a 3% spike later is still flagged
    t = walk_with(400, 5, {100: 21.6, 200: 0.054}, spike=300)
    res = QualityMonitor(1, SETTINGS).check(t)
    assert [r.reason for r in res.rejects] == ["price jump", "price jump"]
    assert res.spikes is not None and res.clean["ts_event"][res.spikes].tolist() == [
        t["ts_event"][300]
    ]


def test_a_wrong_first_price_does_not_lock_the_symbol_out() -> None:
    """The first tick is 100x off: the real level is accepted on its fifth tick in a row."""
    t = walk_with(200, 6, {0: 108.0}, spike=150)
    for cut in (0, 1, 3, 5, 6, 200):
        qm = QualityMonitor(1, SETTINGS)
        results = [qm.check(t[:cut]), qm.check(t[cut:])]
        rejects = [r for res in results for r in res.rejects]
        assert [r.reason for r in rejects] == ["price jump"] * 4, cut
        assert [r.ts_event for r in rejects] == t["ts_event"][1:5].tolist()
        clean = np.concatenate([res.clean for res in results])
        assert len(clean) == 196
        # the step back to the real level is no return: no spike, and the variance stays
        # small enough to flag a 3% spike later
        assert qm.counters()[0].tolist() == [4, 1, 0, 0, 0, 1, 0], cut  # tick 0 is locked


def test_jumps_that_do_not_agree_with_each_other_never_make_a_level() -> None:
    far = {i: (200.0 if i % 2 else 0.005) for i in range(50, 70)}  # 20 in a row, all over
    t = walk_with(100, 7, far)
    res = QualityMonitor(1, SETTINGS).check(t)
    assert [r.reason for r in res.rejects] == ["price jump"] * 20


@pytest.mark.parametrize("cut", [0, 201, 202, 203, 206, 207])
def test_a_big_spike_does_not_hide_the_next_one(cut: int) -> None:
    """The variance is fed a flagged return winsorised at spike_sigma sigmas: after a 1% print
    (100 sigma) a 7.3-sigma one five ticks later is still flagged, however the batches fall."""
    c = math.log(1.0001)
    mids = [1.0 if i % 2 == 0 else 1.0001 for i in range(200)]  # returns +-c: sigma = c
    mids += [mids[-1] * 1.01, mids[-1], 1.0001, 1.0, 1.0001]  # a 1% spike and back
    mids += [mids[-1] * math.exp(7.3 * c), mids[-1], 1.0001, 1.0]  # the next one
    t = ticks_of([(i * 0.2, 0, m - 1e-6, m + 1e-6) for i, m in enumerate(mids)])  # not locked
    qm = QualityMonitor(1, SETTINGS)
    results = [qm.check(t[:cut]), qm.check(t[cut:])]
    flagged = [
        int(ts)
        for res in results
        if res.spikes is not None
        for ts in res.clean["ts_event"][res.spikes]
    ]
    assert flagged == [int(t["ts_event"][200]), int(t["ts_event"][205])]
    assert qm.counters()[0].tolist() == [0, 2, 0, 0, 0, 0, 0]


# ---------------------------------------------------------------- issue 9: the new checks
FRI_CLOSE = 1_700_258_400 * NS_PER_SECOND  # 2023-11-17 22:00 UTC = Friday 17:00 New York
SUN_OPEN = FRI_CLOSE + 2 * 86_400 * NS_PER_SECOND  # Sunday 17:00 New York


def at_times(times_ns: list[int], sym: int = 0, spread: float = 0.0002) -> np.ndarray:
    t = ticks_of(
        [
            (0.0, sym, 1.0 + (i % 2) * 1e-4, 1.0 + (i % 2) * 1e-4 + spread)
            for i in range(len(times_ns))
        ]
    )
    t["ts_event"] = times_ns
    t["ts_recv"] = t["ts_event"] + 5 * NS_PER_MS
    return t


def test_a_locked_quote_is_kept_and_flagged() -> None:
    t = ticks_of([(1.0, 0, 1.0, 1.1), (1.5, 0, 1.05, 1.05), (2.0, 0, 1.0, 1.1)])
    qm = QualityMonitor(1, SETTINGS)
    res = qm.check(t)
    assert len(res.clean) == 3 and res.rejects == []
    assert qm.counters()[0].tolist() == [0, 0, 0, 0, 0, 1, 0]
    (q,) = qm.scores(BASE + 2 * NS_PER_SECOND)
    assert q.last_problem == "locked quote"
    # one problem of weight 0.05, 0.5 s after its 1-second bucket's middle (1.5 s), 60 s window
    assert q.score == pytest.approx(math.exp(-0.05 * (1 - 0.5 / 60)))


def test_a_timestamp_in_the_future_is_rejected_and_moves_no_clock() -> None:
    t = ticks_of([(1.0, 0, 1.0, 1.1), (1.5, 0, 1.0, 1.1), (2.0, 0, 1.01, 1.1), (3.0, 0, 1.0, 1.1)])
    t["ts_event"][1] += 3 * NS_PER_SECOND  # 3 s ahead of its receipt: beyond 2 s
    t["ts_event"][2] += 1 * NS_PER_SECOND  # 1 s ahead: tolerated (a clock a little off)
    qm = QualityMonitor(1, SETTINGS)
    res = qm.check(t)
    assert [(r.ts_event - BASE, r.reason) for r in res.rejects] == [
        (int(4.5e9), "timestamp in the future")
    ]
    assert len(res.clean) == 3  # tick 3 (3.0 s) is not "from the past" of the 4.5 s tick
    # its problem sits at its receipt + the tolerance (3.505 s), not at 4.5 s
    assert res.problem_ts.tolist() == [BASE + 1_505_000_000 + 2 * NS_PER_SECOND]
    # tolerated, the bad clock would reject the good ticks after it as from the past
    lax = QualityMonitor(1, QualitySettings(future_tolerance_s=5.0)).check(t)
    assert [r.reason for r in lax.rejects] == ["timestamp from the past"] * 2


def test_a_spread_far_above_the_usual_one_is_flagged_not_rejected() -> None:
    rows = [(i * 0.1, 0, 1.0, 1.01) for i in range(30)]  # usual spread 0.01
    # 9x, 20x, normal, around the same mid (no spike)
    rows += [(3.0, 0, 0.965, 1.055), (3.1, 0, 0.91, 1.1), (3.2, 0, 1.0, 1.01)]
    t = ticks_of(rows)
    for cut in (0, 30, 31, 33):
        qm = QualityMonitor(1, SETTINGS)  # spread_k 10
        results = [qm.check(t[:cut]), qm.check(t[cut:])]
        assert sum(len(r.clean) for r in results) == 33
        assert qm.counters()[0].tolist()[6] == 1, cut  # the 20x one only
        (q,) = qm.scores(BASE + int(3.2e9))
        assert q.last_problem == "spread 14.1x usual", cut
    # the usual spread: the bias-corrected EWMA, the mean of the spreads weighted (1 - alpha)^age
    c = 1 - 2 / 101
    spreads = [0.01] * 30 + [0.09]
    w = [c ** (30 - i) for i in range(31)]
    usual = sum(x * wi for x, wi in zip(spreads, w, strict=True)) / sum(w)
    assert f"{0.19 / usual:.1f}" == "14.1"


def test_no_wide_spread_before_the_warm_up() -> None:
    rows = [(i * 0.1, 0, 1.0, 1.01) for i in range(19)] + [(2.0, 0, 1.0, 1.5)]
    qm = QualityMonitor(1, SETTINGS)
    qm.check(ticks_of(rows))
    assert qm.counters()[0].tolist()[6] == 0


def test_closed_ns_counts_the_weekend_only() -> None:
    from mikrobot_tui.domain.hours import closed_ns

    hour = 3600 * NS_PER_SECOND
    assert closed_ns(FRI_CLOSE - hour, SUN_OPEN + hour) == 48 * hour
    assert closed_ns(FRI_CLOSE + hour, FRI_CLOSE + 3 * hour) == 2 * hour
    assert closed_ns(FRI_CLOSE - 3 * hour, FRI_CLOSE) == 0
    assert closed_ns(FRI_CLOSE - 7 * 24 * hour, SUN_OPEN + 1) == 96 * hour  # two weekends
    assert closed_ns(SUN_OPEN, FRI_CLOSE + 7 * 24 * hour) == 0  # a whole trading week
    # summer: New York on daylight saving, 17:00 is 21:00 UTC (2024-06-14 is a Friday)
    summer_close = 1_718_398_800 * NS_PER_SECOND
    assert closed_ns(summer_close - hour, summer_close + hour) == hour


@pytest.mark.parametrize(("fx", "gap"), [(True, None), (False, "gap 172802.0s")])
def test_a_weekend_without_ticks_is_no_gap_on_fx_hours(fx: bool, gap: str | None) -> None:
    s = NS_PER_SECOND
    t = at_times([FRI_CLOSE - 3 * s, FRI_CLOSE - s, SUN_OPEN + s, SUN_OPEN + 2 * s])
    for cut in (0, 2, 3):  # the scalar path and the vectorised one
        qm = QualityMonitor(1, SETTINGS, fx_hours=[fx])
        qm.check(t[:cut])
        qm.check(t[cut:])
        (q,) = qm.scores(SUN_OPEN + 2 * s)
        assert q.gaps == (0 if fx else 1), cut
        if gap:
            assert q.last_problem == gap


def test_a_gap_that_spans_the_close_counts_its_open_part() -> None:
    s = NS_PER_SECOND
    t = at_times([FRI_CLOSE - 11 * s, FRI_CLOSE - 10 * s, SUN_OPEN + 10 * s])
    for cut in (0, 2):
        qm = QualityMonitor(1, SETTINGS, fx_hours=[True])
        qm.check(t[:cut])
        qm.check(t[cut:])
        (q,) = qm.scores(SUN_OPEN + 10 * s)
        assert q.gaps == 1 and q.last_problem == "gap 20.0s", cut


def test_a_closed_market_is_not_silent_an_open_one_is() -> None:
    s = NS_PER_SECOND
    t = at_times([FRI_CLOSE - 2 * s, FRI_CLOSE - s])
    saturday = FRI_CLOSE + 86_400 * s
    fx = QualityMonitor(2, SETTINGS, fx_hours=[True, False])
    fx.check(t)
    crypto = at_times([FRI_CLOSE - 2 * s, FRI_CLOSE - s], sym=1)
    fx.check(crypto)
    q_fx, q_crypto = fx.scores(saturday)
    assert q_fx.score == 1.0 and q_fx.last_problem == ""
    assert q_crypto.score == pytest.approx(math.exp(-0.25)) and q_crypto.last_problem.startswith(
        "silent"
    )
    # on Sunday a minute after the open the fx symbol is silent for that minute
    (q_sun, _) = fx.scores(SUN_OPEN + 60 * s)
    assert q_sun.last_problem == "silent 61s"


def test_hours_come_from_the_asset_class_unless_configured() -> None:
    q = QualitySettings()
    assert not q.always_open("EURUSD") and not q.always_open("XAUUSD")
    assert q.always_open("BTCUSDT")
    q = QualitySettings(hours={"XAUUSD": "always", "BTCUSDT": "fx"})
    assert q.always_open("XAUUSD") and not q.always_open("BTCUSDT")
    with pytest.raises(ValueError):
        QualitySettings(hours={"EURUSD": "sometimes"})


# ---------------------------------------------------------------- issue 9: the score's parts
def test_the_score_is_the_product_of_its_parts() -> None:
    t = ticks_of([(1.0, 0, 1.0, 1.1), (1.5, 0, 1.05, 1.05), (1.6, 0, NAN, 1.1), (2.0, 0, 1.0, 1.1)])
    t["ts_recv"][3] += 400 * NS_PER_MS  # a latency breach
    qm = QualityMonitor(1, SETTINGS)
    qm.check(t)
    (q,) = qm.scores(BASE + 2 * NS_PER_SECOND)
    fade = 1 - 0.5 / 60  # the reject and the lock sit in the bucket of 1 s, its middle 1.5 s
    assert q.validity == pytest.approx(math.exp(-(0.10 + 0.05) * fade))  # reject + locked
    assert q.latency_part == pytest.approx(math.exp(-0.02))  # its bucket (2 s) is not past
    assert q.spikes_part == 1.0 and q.gaps_part == 1.0 and q.completeness == 1.0
    assert q.score == pytest.approx(q.validity * q.latency_part)
    assert q.score == pytest.approx(math.exp(-(0.10 + 0.05) * fade - 0.02))


def test_completeness_counts_ticks_against_the_symbols_own_rate() -> None:
    rows = [(i * 0.25, 0, 1.0 + (i % 2) * 1e-4, 1.0002 + (i % 2) * 1e-4) for i in range(1200)]
    rows += [(300.0 + j, 0, 1.0 + (j % 2) * 1e-4, 1.0002 + (j % 2) * 1e-4) for j in range(60)]
    t = ticks_of(rows)
    for cut in (0, 1200, 1230):
        qm = QualityMonitor(1, SETTINGS)
        qm.check(t[:cut])
        qm.check(t[cut:])
        (q,) = qm.scores(BASE + 360 * NS_PER_SECOND)
        # the baseline: seconds 1..299, 4 ticks each; the window: seconds 300..359, 1 each
        assert q.window_ticks == 60 and q.expected_ticks == pytest.approx(240.0), cut
        assert q.completeness == pytest.approx(60 / (0.75 * 240 - 3 * math.sqrt(240)))  # 0.45
        assert q.gaps_part == 1.0 and q.score == pytest.approx(q.completeness)
    # at the full rate the usual Poisson shortfall costs nothing
    qm = QualityMonitor(1, SETTINGS)
    qm.check(t[:1200])
    assert qm.scores(BASE + 300 * NS_PER_SECOND)[0].completeness == 1.0


def test_bars_completeness_counts_minutes_that_made_a_bar_against_the_rate() -> None:
    """Twenty full minutes at 4 ticks a second, then an hour in which every other minute is
    silent: the window's ticks look whole (the last minute is a full one) but half the M1
    bars are missing. The baseline rate (the 10 minutes before the window, half silent) is
    2 ticks a second, so every minute should hold a tick (p = 1 - exp(-120)): E = 60, V = 0,
    and 30 bars made of a floor of 0.75 x 60 gives 30 / 45."""
    m0 = 40.0  # seconds after BASE where a minute starts (BASE is 20 s into one)
    secs = [m0 + i * 0.25 for i in range(20 * 240)]
    secs += [m0 + 60 * m + i * 0.25 for m in range(21, 80, 2) for i in range(240)]
    t = ticks_of(
        [(x, 0, 1.0 + (k % 2) * 1e-4, 1.0002 + (k % 2) * 1e-4) for k, x in enumerate(secs)]
    )
    now = BASE + round((m0 + 80 * 60) * NS_PER_SECOND)
    for cuts in ([], [5000], [100, 101, 102, 103, 7000]):  # one tick at a time too
        qm = QualityMonitor(1, SETTINGS)
        for a, b in zip([0, *cuts], [*cuts, len(t)], strict=True):
            qm.check(t[a:b])
        (q,) = qm.scores(now)
        assert q.window_ticks == 240 and q.expected_ticks == pytest.approx(120.0), cuts
        assert q.window_bars == 30 and q.expected_bars == pytest.approx(60.0)
        assert q.bar_completeness == pytest.approx(30 / 45)
        assert q.completeness == q.bar_completeness  # the lesser of the two
    # a steady feed makes every bar it should
    qm = QualityMonitor(1, SETTINGS)
    qm.check(t[: 20 * 240])
    (q,) = qm.scores(BASE + round((m0 + 20 * 60) * NS_PER_SECOND))
    assert q.window_bars == 19 and q.bar_completeness == 1.0 and q.completeness == 1.0


def test_a_closed_market_expects_no_ticks() -> None:
    s = NS_PER_SECOND
    t = at_times([FRI_CLOSE - 300 * s + i * s // 4 for i in range(1200)])
    qm = QualityMonitor(2, SETTINGS, fx_hours=[True, False])
    qm.check(t)
    crypto = at_times([FRI_CLOSE - 300 * s + i * s // 4 for i in range(1200)], sym=1)
    qm.check(crypto)
    # two minutes after the close: the window is closed market for the fx symbol, while the
    # crypto symbol was expected to go on at its rate (its silence counts too)
    q_fx, q_crypto = qm.scores(FRI_CLOSE + 120 * s)
    assert q_fx.completeness == 1.0 and q_fx.score == 1.0
    # baseline: seconds -299..59 after the close (359 s), 4 ticks in each of the first 299
    assert q_crypto.expected_ticks == pytest.approx(1196 / 359 * 60)
    assert q_crypto.completeness == 0.0 and q_crypto.score == 0.0


def test_latency_capability_against_the_limit() -> None:
    """Cp = USL / (6 sigma), Cpk = (USL - mean) / (3 sigma), sample sigma, USL 250 ms."""
    rows = [
        (i * 0.5, 0, 1.0 + (i % 2) * 0.01, 1.1, NAN, NAN, 10.0 if i < 5 else 30.0)
        for i in range(10)
    ]
    t = ticks_of(rows)
    for cut in (0, 1, 5, 9):
        qm = QualityMonitor(1, SETTINGS)
        qm.check(t[:cut])
        qm.check(t[cut:])
        (q,) = qm.scores(BASE + 5 * NS_PER_SECOND)
        sigma = math.sqrt(10 * 100 / 9)  # mean 20 ms, every value 10 ms away
        assert q.latency_cp == pytest.approx(250 / (6 * sigma))  # 3.95
        assert q.latency_cpk == pytest.approx((250 - 20) / (3 * sigma))  # 7.27
    slow = QualityMonitor(1, QualitySettings(spike_sigma=3.0, latency_limit_ms=25.0))
    slow.check(t)
    (q,) = slow.scores(BASE + 5 * NS_PER_SECOND)
    assert q.latency_cpk == pytest.approx((25 - 20) / (3 * sigma)) and q.latency_cpk < 1
    one = QualityMonitor(1, SETTINGS)
    one.check(t[:1])
    (q,) = one.scores(BASE)
    assert q.latency_cp is None and q.latency_cpk is None  # one latency says nothing
