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
from mikrobot_tui.domain.market import NS_PER_SECOND, TIMEFRAMES

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


def quality_run(stream: np.ndarray, batches: list[tuple[int, int]]) -> tuple:
    qm = QualityMonitor(len(SYMBOLS), SETTINGS)
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
@given(seed=st.integers(0, 2**16), sizes=sizes, kind=st.sampled_from(["sim", "faulty"]))
@example(seed=5, sizes=[1], kind="faulty")  # every tick alone, as a quiet live feed sends them
@example(seed=11, sizes=[1], kind="sim")
def test_small_batches_pass_the_quality_checks_as_one_batch_does(
    seed: int, sizes: list[int], kind: str
) -> None:
    stream = sim_stream(seed, 3000) if kind == "sim" else faulty_stream(1500, seed)
    ref = quality_run(stream, [(0, len(stream))])
    assert ref[2] or kind == "sim"  # the faulty stream always has rejects
    got = quality_run(stream, cut(len(stream), sizes))
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
