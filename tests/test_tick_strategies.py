"""Strategies that ask for ticks get them as arrays and decide at the tick that caused it."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest
from engine_data import install_probe, waves

from mikrobot_tui.clock import ReplayClock
from mikrobot_tui.data.feeds import ReplayFeed, save_ticks
from mikrobot_tui.domain.events import EventKind
from mikrobot_tui.domain.orders import Side, Signal
from mikrobot_tui.engine import Engine
from mikrobot_tui.engine.runner import Runner
from mikrobot_tui.store.events import raw_events, read_events
from mikrobot_tui.trading.strategies import TICK, TickStrategy


class EveryNthTick:
    """Decides on every n-th tick of each symbol, alternating sides (vectorised per batch)."""

    timeframe = TICK

    def __init__(self, n: int = 250) -> None:
        self.n = n
        self.name = f"every_nth_tick({n})"
        self.seen: dict[str, int] = {}
        self.calls = 0

    def on_bar(self, bar) -> None:
        return None

    def on_ticks(self, symbol: str, ticks: np.ndarray) -> Iterable[tuple[int, Signal]]:
        self.calls += 1
        before = self.seen.get(symbol, 0)
        self.seen[symbol] = before + len(ticks)
        count = before + np.arange(1, len(ticks) + 1)
        for i in np.flatnonzero(count % self.n == 0).tolist():
            side = Side.BUY if (count[i] // self.n) % 2 else Side.SELL
            mid = float(ticks["bid"][i] + ticks["ask"][i]) / 2
            yield i, Signal(self.name, symbol, side, 0, mid, mid * 0.001, mid * 0.002, "n-th tick")


def run(make_settings, tmp_path: Path, batch: int, monkeypatch) -> tuple[Engine, EveryNthTick]:
    probe = EveryNthTick()
    install_probe(monkeypatch, probe)
    settings = make_settings(
        engine={"db": tmp_path / f"t{batch}.db", "store_ticks": False},
        accounts=[{"name": "A", "params": {"fast": 99, "slow": 100}}, {"name": "B"}],
        risk={"max_positions": 10},
    )
    file = tmp_path / "ticks.npz"
    save_ticks(file, waves(3000), ["EURUSD", "USDJPY"])
    feed = ReplayFeed(file, batch_size=batch)
    engine = Engine(settings, feed=feed, clock=ReplayClock())
    Runner(engine).replay(feed.iter_batches())
    return engine, probe


def test_a_tick_strategy_trades_at_the_tick_it_decides_on(make_settings, tmp_path, monkeypatch):
    engine, probe = run(make_settings, tmp_path, 500, monkeypatch)
    assert isinstance(probe, TickStrategy)
    assert probe.calls == 2 * 6  # one array per symbol per batch, never a call per tick
    kinds = (EventKind.ORDER_SUBMITTED, EventKind.ORDER_REFUSED)
    decisions = [  # a bracket's stop and target are the venue's orders, not decisions
        e
        for e in read_events(engine.conn)
        if e.account == "A" and e.kind in kinds and "parent_id" not in e.payload
    ]
    assert sum(e.kind is EventKind.ORDER_SUBMITTED for e in decisions) >= 4
    ticks = waves(3000)
    eur = ticks[ticks["sym"] == 0]
    decided = {e.ts for e in decisions if e.payload["symbol"] == "EURUSD"}
    assert decided == {int(eur["ts_event"][i]) for i in range(249, len(eur), 250)}
    engine.close()


@pytest.mark.parametrize("batch", [1, 7])
def test_tick_strategy_events_do_not_depend_on_the_batch_size(
    make_settings, tmp_path, monkeypatch, batch
) -> None:
    big, _ = run(make_settings, tmp_path, 3000, monkeypatch)
    small, _ = run(make_settings, tmp_path, batch, monkeypatch)
    assert raw_events(small.conn) == raw_events(big.conn)
    assert sum(1 for e in raw_events(big.conn) if e[2] == "order_filled") >= 6
    big.close()
    small.close()
