"""Tick streams with known shapes for engine tests, and a replay of them through the engine."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mikrobot_tui.clock import ReplayClock
from mikrobot_tui.config import Settings
from mikrobot_tui.data.feeds import ReplayFeed, save_ticks
from mikrobot_tui.domain.market import NS_PER_SECOND, TICK_DTYPE
from mikrobot_tui.engine import Engine
from mikrobot_tui.engine.runner import Runner

T0 = 1_767_225_600 * NS_PER_SECOND  # 2026-01-01 00:00 UTC
SYMBOLS = ["EURUSD", "USDJPY"]

# the orchestrator approves every signal at full risk: for tests of sizing and limits, whose
# figures assume the risk per trade a signal is sized to (tests/test_scoring.py tests the score)
FULL_RISK = {"approve_at": 0.01, "refuse_below": 0.0}

FAST_ACCOUNTS = [
    {"name": "A", "params": {"fast": 2, "slow": 4, "atr_period": 3}},
    {"name": "B", "params": {"fast": 3, "slow": 6, "atr_period": 3}},
]


def waves(n_ticks: int, seed: int = 3, every_s: float = 5.0) -> np.ndarray:
    """Two symbols ticking alternately, prices on slow waves with noise: EMAs cross often."""
    rng = np.random.default_rng(seed)
    t = np.zeros(n_ticks, dtype=TICK_DTYPE)
    i = np.arange(n_ticks)
    ts = T0 + (i * every_s / 2 * NS_PER_SECOND).astype(np.int64)
    sym = (i % 2).astype(np.uint16)
    phase = i * every_s / 2 / 600.0 * 2 * np.pi  # a ten-minute wave
    noise = rng.normal(0, 1, n_ticks).cumsum() * 0.05
    eur = 1.1 + 0.002 * np.sin(phase) + 0.0001 * noise
    jpy = 150.0 + 0.3 * np.sin(phase * 0.7) + 0.01 * noise
    mid = np.where(sym == 0, np.round(eur, 5), np.round(jpy, 3))
    half = np.where(sym == 0, 0.00005, 0.005)
    t["ts_event"], t["ts_recv"], t["sym"] = ts, ts + 1_000_000, sym
    t["bid"], t["ask"] = np.round(mid - half, 5), np.round(mid + half, 5)
    t["last"], t["volume"] = np.nan, np.nan
    return t


def replay(
    settings: Settings, ticks: np.ndarray, path: Path, batch: int, symbols=SYMBOLS
) -> Engine:
    """Run the engine over `ticks` in batches of `batch` and return it (still open)."""
    file = path.with_suffix(".npz")
    save_ticks(file, ticks, symbols)
    feed = ReplayFeed(file, batch_size=batch)
    engine = Engine(settings, feed=feed, clock=ReplayClock())
    Runner(engine).replay(feed.iter_batches())
    return engine


def replay_feed_engine(settings: Settings, path: Path, n_ticks: int = 2000) -> Engine:
    """An engine on a replay feed of `waves`, not started: for runs through the live loop."""
    file = path.with_suffix(".npz")
    save_ticks(file, waves(n_ticks), SYMBOLS)
    return Engine(settings, feed=ReplayFeed(file, batch_size=100), clock=ReplayClock())


def install_probe(monkeypatch, probe) -> None:
    """Make the engine build `probe` as the strategy of the account whose params hold
    `"fast": 99`; the other accounts get their real strategies."""
    import mikrobot_tui.engine as engine_module

    real = engine_module.build_strategy
    monkeypatch.setattr(
        engine_module,
        "build_strategy",
        lambda name, params: probe if params.get("fast") == 99 else real(name, params),
    )
