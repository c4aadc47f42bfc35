"""Small batches against one large batch, bit for bit, on faulty streams.

A live feed under low load hands the engine a tick or a few at a time, and the quality monitor
and the candles are made cheap for such batches (candles fold ticks into open bars with Python
scalars; numpy calls are skipped when there is nothing to do). Whatever path a batch takes,
every clean tick, reject, flag, spike, problem, score, bar and close index must be the one the
vectorised path gives when the whole stream comes as one batch.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_candles import random_stream
from test_quality import SETTINGS, faulty_stream

from mikrobot_tui.config import SimSettings
from mikrobot_tui.data.candles import CandleSet
from mikrobot_tui.data.quality import QualityMonitor
from mikrobot_tui.data.sim import generate_ticks
from mikrobot_tui.domain.instruments import default_instruments
from mikrobot_tui.domain.market import NS_PER_MS, NS_PER_SECOND, TIMEFRAMES

T0 = 1_767_225_600 * NS_PER_SECOND
SYMBOLS = ["EURUSD", "XAUUSD", "BTCUSDT"]
PERIODS = sorted(TIMEFRAMES.values())


def sim_stream(seed: int, n: int) -> np.ndarray:
    """The simulated market at a high fault rate: spikes, gaps, crossed and stale quotes, NaN,
    timestamps from the past, duplicates and latency."""
    catalogue = default_instruments()
    sim = SimSettings(symbols=SYMBOLS, seed=seed, fault_rate=0.2)
    return generate_ticks([catalogue[s] for s in SYMBOLS], sim, T0, n)


def cut(n: int, sizes: list[int]) -> list[tuple[int, int]]:
    """[start, end) of batches of the given sizes, cycled, over n ticks."""
    out, start, i = [], 0, 0
    while start < n:
        end = min(n, start + sizes[i % len(sizes)])
        out.append((start, end))
        start, i = end, i + 1
    return out


def hours_stream(seed: int) -> np.ndarray:
    """The faulty stream moved to a Friday close (17:00 New York, 22:00 UTC in November) and
    its second half to the Sunday reopening, with locked quotes, wide spreads and timestamps
    in the future; symbols 0 and 1 trade on fx hours (see HOURS_FX)."""
    t = faulty_stream(1500, seed)
    rng = np.random.default_rng(seed + 1)
    n = len(t)
    friday_close = 1_700_258_400 * NS_PER_SECOND  # 2023-11-17 22:00 UTC
    t["ts_event"] += friday_close - 60 * NS_PER_SECOND - t["ts_event"][0]
    t["ts_event"][n // 2 :] += 2 * 86_400 * NS_PER_SECOND
    t["ts_event"][3 * n // 4 :] += 30 * NS_PER_SECOND  # a gap in the open market
    t["ts_recv"] = t["ts_event"] + rng.integers(1, 400, n) * NS_PER_MS
    pick = rng.choice(n, 90, replace=False)
    t["ask"][pick[:30]] = t["bid"][pick[:30]]  # locked
    t["ask"][pick[30:60]] = t["bid"][pick[30:60]] + 0.5  # 25 times the usual spread
    t["ts_event"][pick[60:]] += rng.integers(1, 6, 30) * NS_PER_SECOND  # some in the future
    return t


HOURS_FX = [True, True, False]


def quality_run(
    stream: np.ndarray, batches: list[tuple[int, int]], fx_hours: list[bool] | None = None
) -> tuple:
    qm = QualityMonitor(len(SYMBOLS), SETTINGS, fx_hours=fx_hours)
    clean, spikes, rejects, problems = [], [], [], []
    for a, b in batches:
        res = qm.check(stream[a:b])
        clean.append(res.clean)
        spikes.append(np.zeros(len(res.clean), bool) if res.spikes is None else res.spikes)
        rejects += res.rejects
        # a batch's problems come in no set order
        problems += sorted(
            zip(
                res.problem_ts.tolist(),
                res.problem_sym.tolist(),
                res.problem_weight.tolist(),
                strict=True,
            )
        )
    now = int(stream["ts_event"].max())
    return (
        np.concatenate(clean).tobytes(),
        np.concatenate(spikes).tolist(),
        rejects,
        sorted(problems),
        qm.scores(now),
        qm.counters().tolist(),
        qm.accepted_until().tolist(),
    )


def candle_run(ticks: np.ndarray, batches: list[tuple[int, int]]) -> tuple:
    cs = CandleSet(len(SYMBOLS), PERIODS)
    closed: dict[int, list] = {p: [] for p in PERIODS}
    for a, b in batches:
        for p, (bars, idx) in cs.update(ticks[a:b]).items():
            closed[p] += [(bars[i : i + 1].tobytes(), int(idx[i]) + a) for i in range(len(bars))]
    return closed, {p: bars.tobytes() for p, bars in cs.open_bars().items()}


sizes = st.lists(st.integers(1, 16), min_size=1, max_size=6)
fuzz = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@fuzz
@given(seed=st.integers(0, 2**16), sizes=sizes, kind=st.sampled_from(["sim", "faulty", "hours"]))
@example(seed=5, sizes=[1], kind="faulty")  # every tick alone, as a quiet live feed sends them
@example(seed=11, sizes=[1], kind="sim")
@example(seed=7, sizes=[1], kind="hours")
@example(seed=7, sizes=[3, 1, 16], kind="hours")
def test_small_batches_pass_the_quality_checks_as_one_batch_does(
    seed: int, sizes: list[int], kind: str
) -> None:
    streams = {"sim": lambda: sim_stream(seed, 3000), "faulty": lambda: faulty_stream(1500, seed)}
    stream = hours_stream(seed) if kind == "hours" else streams[kind]()
    fx = HOURS_FX if kind == "hours" else None
    ref = quality_run(stream, [(0, len(stream))], fx)
    assert ref[2] or kind == "sim"  # the faulty stream always has rejects
    if kind == "hours":  # every new check has something to say
        totals = np.array(ref[5]).sum(axis=0)
        assert totals[5] and totals[6], totals  # locked quotes, wide spreads
        assert "timestamp in the future" in {r.reason for r in ref[2]}
    got = quality_run(stream, cut(len(stream), sizes), fx)
    for i, (g, r) in enumerate(zip(got, ref, strict=True)):
        assert g == r, i


@fuzz
@given(seed=st.integers(0, 2**16), sizes=sizes, kind=st.sampled_from(["sim", "late"]))
@example(seed=5, sizes=[1], kind="late")
@example(seed=11, sizes=[1], kind="sim")
def test_small_batches_build_the_bars_one_batch_builds(
    seed: int, sizes: list[int], kind: str
) -> None:
    if kind == "sim":  # what the engine hands the candles: the clean ticks, spikes left out
        res = QualityMonitor(len(SYMBOLS), SETTINGS).check(sim_stream(seed, 4000))
        ticks = res.clean if res.spikes is None else res.clean[~res.spikes]
    else:  # ties, late ticks, NaN volume, empty minutes
        ticks = random_stream(2000, len(SYMBOLS), seed)
    ref = candle_run(ticks, [(0, len(ticks))])
    assert any(ref[0].values())
    assert candle_run(ticks, cut(len(ticks), sizes)) == ref
