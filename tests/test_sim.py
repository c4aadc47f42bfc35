"""The simulated market: plausible quotes, the same ticks however it is advanced, visible faults."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mikrobot_tui.config import QualitySettings, SimSettings
from mikrobot_tui.data.quality import QualityMonitor
from mikrobot_tui.data.sim import PROFILES, SimMarket, generate_ticks
from mikrobot_tui.domain.instruments import default_instruments
from mikrobot_tui.domain.market import NS_PER_SECOND, TICK_DTYPE

START = 1_700_000_000 * NS_PER_SECOND
ALL = list(default_instruments().values())
DEFAULT = [default_instruments()[s] for s in SimSettings().symbols]


def test_advancing_in_small_steps_gives_the_same_ticks_as_one_big_step() -> None:
    settings = SimSettings(fault_rate=0.05)
    whole = SimMarket(DEFAULT, settings, START).advance(START + 200 * NS_PER_SECOND)
    rng = np.random.default_rng(0)
    market = SimMarket(DEFAULT, settings, START)
    parts, t = [], START
    while t < START + 200 * NS_PER_SECOND:
        t = min(t + int(rng.integers(1, 3 * NS_PER_SECOND)), START + 200 * NS_PER_SECOND)
        parts.append(market.advance(t))
    assert market.advance(t).size == 0  # nothing new without time passing
    assert len(whole) > 5_000
    assert np.concatenate(parts).tobytes() == whole.tobytes()


def test_same_seed_same_ticks_other_seed_other_ticks() -> None:
    a = generate_ticks(DEFAULT, SimSettings(seed=3), START, 20_000)
    b = generate_ticks(DEFAULT, SimSettings(seed=3), START, 20_000)
    c = generate_ticks(DEFAULT, SimSettings(seed=4), START, 20_000)
    assert len(a) == 20_000 and a.dtype == TICK_DTYPE
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()


def test_a_symbol_ticks_the_same_whatever_else_is_simulated() -> None:
    eur = default_instruments()["EURUSD"]
    until = START + 120 * NS_PER_SECOND
    alone = SimMarket([eur], SimSettings(), START).advance(until)
    mixed = SimMarket(DEFAULT, SimSettings(), START).advance(until)
    mine = mixed[mixed["sym"] == DEFAULT.index(eur)]
    for f in ("ts_event", "ts_recv", "bid", "ask"):
        assert np.array_equal(alone[f], mine[f])


def test_quotes_look_like_their_market() -> None:
    ticks = SimMarket(ALL, SimSettings(faults=False), START).advance(START + 600 * NS_PER_SECOND)
    assert (np.diff(ticks["ts_event"]) >= 0).all()
    assert (ticks["ts_event"] > START).all()
    lat = (ticks["ts_recv"] - ticks["ts_event"]) / 1e6
    assert 1.0 < np.median(lat) < 30.0
    for i, inst in enumerate(ALL):
        t = ticks[ticks["sym"] == i]
        p = PROFILES[inst.symbol]
        rate = len(t) / 600
        assert 0.5 * p.rate < rate < 1.6 * p.rate, inst.symbol
        assert (t["bid"] < t["ask"]).all(), inst.symbol
        assert np.allclose(t["bid"] / inst.tick_size, np.rint(t["bid"] / inst.tick_size))
        mid = (t["bid"] + t["ask"]) / 2
        assert abs(np.log(mid / p.mid)).max() < 0.05, inst.symbol
        spread = np.median(t["ask"] - t["bid"])
        assert p.spread[0] * 0.8 <= spread <= p.spread[1] * 1.3, inst.symbol
        if inst.asset_class == "crypto":
            assert not np.isnan(t["last"]).any() and (t["volume"] > 0).all()
            assert np.isin(t["last"], np.concatenate([t["bid"], t["ask"]])).all()
        else:
            assert np.isnan(t["last"]).all() and np.isnan(t["volume"]).all()


def test_eurusd_spread_is_under_a_pip_or_so_and_gold_in_cents() -> None:
    inst = default_instruments()
    ticks = generate_ticks([inst["EURUSD"], inst["XAUUSD"]], SimSettings(faults=False), START, 5000)
    eur, xau = ticks[ticks["sym"] == 0], ticks[ticks["sym"] == 1]
    assert 0.6 <= np.median(eur["ask"] - eur["bid"]) / 0.0001 <= 1.05
    assert 0.19 <= np.median(xau["ask"] - xau["bid"]) <= 0.31


def test_start_mids_override_the_default_levels() -> None:
    eur = default_instruments()["EURUSD"]
    t = SimMarket([eur], SimSettings(), START, {"EURUSD": 1.2345}).advance(
        START + NS_PER_SECOND * 5
    )
    assert abs((t["bid"][0] + t["ask"][0]) / 2 - 1.2345) < 0.001


def test_volatility_scale_scales_the_moves() -> None:
    def spread_of_moves(scale: float) -> float:
        s = SimSettings(faults=False, volatility_scale=scale)
        t = generate_ticks([default_instruments()["BTCUSDT"]], s, START, 20_000)
        return float(np.std(np.diff(np.log((t["bid"] + t["ask"]) / 2))))

    assert spread_of_moves(10.0) / spread_of_moves(1.0) == pytest.approx(10.0, rel=0.25)


def test_every_injected_fault_reaches_the_quality_monitor() -> None:
    settings = SimSettings(fault_rate=0.05)
    ticks = SimMarket(DEFAULT, settings, START).advance(START + 900 * NS_PER_SECOND)
    qm = QualityMonitor(len(DEFAULT), QualitySettings(spike_sigma=8.0))
    rejects = []
    for i in range(0, len(ticks), 5000):
        rejects += qm.check(ticks[i : i + 5000]).rejects
    reasons = {r.reason for r in rejects}
    assert {"NaN price", "crossed quote", "timestamp from the past", "duplicate tick"} <= reasons
    totals = qm.counters().sum(axis=0)[:5]  # rejects, spikes, gaps, stale, latency
    assert (totals > 0).all(), totals
    clean = SimMarket(DEFAULT, SimSettings(faults=False), START).advance(START + 900 * 10**9)
    qm2 = QualityMonitor(len(DEFAULT), QualitySettings(spike_sigma=8.0))
    qm2.check(clean)
    # no rejects, gaps, stale, latency, locked quotes or wide spreads
    assert qm2.counters()[:, [0, 2, 3, 4, 5, 6]].sum() == 0


def test_generate_a_million_ticks_quickly() -> None:
    ticks = generate_ticks(DEFAULT, SimSettings(), START, 1_000_000)
    assert len(ticks) == 1_000_000


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    fault_rate=st.floats(0.0, 0.2),
    minutes=st.integers(1, 20),
    symbols=st.lists(st.sampled_from(sorted(default_instruments())), min_size=1, unique=True),
)
def test_any_accepted_fault_rate_runs_and_every_tick_is_well_formed(
    seed: int, fault_rate: float, minutes: int, symbols: list[str]
) -> None:
    """Faults on, any seed and any rate the settings accept: the market never raises, and its
    ticks are TICK_DTYPE with prices finite or NaN (a NaN fault), never infinite."""
    sim = SimSettings(symbols=symbols, seed=seed, faults=True, fault_rate=fault_rate)
    catalogue = default_instruments()
    market = SimMarket([catalogue[s] for s in symbols], sim, START)
    for _ in range(minutes):
        ticks = market.advance(market.now_ns + 60 * NS_PER_SECOND)
        assert ticks.dtype == TICK_DTYPE
        for side in ("bid", "ask"):
            assert not np.isinf(ticks[side]).any()
            assert (ticks[side][~np.isnan(ticks[side])] > 0).all()
        assert ((ticks["sym"] >= 0) & (ticks["sym"] < len(symbols))).all()
