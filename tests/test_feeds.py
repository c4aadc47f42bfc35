"""Feeds: the simulated market paced by the clock, replay files, and the conflating queue."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from mikrobot_tui.config import SimSettings
from mikrobot_tui.data.feeds import (
    ConflatingQueue,
    ReplayFeed,
    SimFeed,
    load_ticks,
    save_ticks,
)
from mikrobot_tui.data.sim import SimMarket, generate_ticks
from mikrobot_tui.domain.instruments import default_instruments
from mikrobot_tui.domain.market import NS_PER_SECOND, TICK_DTYPE

START = 1_700_000_000 * NS_PER_SECOND
INSTRUMENTS = [default_instruments()[s] for s in SimSettings().symbols]
SYMBOLS = [i.symbol for i in INSTRUMENTS]


class FakeWall:
    """A wall clock that moves only when the feed sleeps."""

    def __init__(self) -> None:
        self.now = 0
        self.sleeps: list[float] = []

    def __call__(self) -> int:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(1, round(seconds * NS_PER_SECOND))
        await asyncio.sleep(0)


async def test_sim_feed_advances_speed_times_the_wall_clock() -> None:
    wall = FakeWall()
    market = SimMarket(INSTRUMENTS, SimSettings(), START)
    feed = SimFeed(market, speed=10.0, step_s=0.05, wall=wall, sleep=wall.sleep)
    assert feed.mode == "SIMULATED" and feed.symbols == SYMBOLS
    stop = asyncio.Event()
    got = []
    async for batch in feed.batches(stop):
        assert len(batch) > 0
        assert batch["ts_event"].max() <= START + wall.now * 10  # never ahead of the clock
        got.append(batch)
        if wall.now >= 3 * NS_PER_SECOND:
            stopped_at = wall.now
            stop.set()
    assert market.now_ns == START + 10 * stopped_at
    assert all(s == pytest.approx(0.05) for s in wall.sleeps[1:])
    reference = SimMarket(INSTRUMENTS, SimSettings(), START).advance(market.now_ns)
    assert np.concatenate(got).tobytes() == reference.tobytes()


async def test_a_slow_consumer_gets_one_bigger_batch_not_a_backlog() -> None:
    wall = FakeWall()
    market = SimMarket(INSTRUMENTS, SimSettings(), START)
    feed = SimFeed(market, speed=1.0, wall=wall, sleep=wall.sleep)
    stop = asyncio.Event()
    it = feed.batches(stop)
    await anext(it)
    wall.now += 2 * NS_PER_SECOND  # the consumer was busy for 2 s
    batch = await anext(it)
    assert batch["ts_event"].max() > market.now_ns - NS_PER_SECOND  # caught up in one go
    assert market.now_ns - START >= 2 * NS_PER_SECOND


def test_replay_file_round_trip_keeps_its_exact_name(tmp_path: Path) -> None:
    ticks = generate_ticks(INSTRUMENTS, SimSettings(), START, 1000)
    path = tmp_path / "day.ticks"
    save_ticks(path, ticks, SYMBOLS)
    assert path.exists() and not (tmp_path / "day.ticks.npz").exists()
    back, symbols = load_ticks(path)
    assert back.tobytes() == ticks.tobytes() and symbols == SYMBOLS


def test_a_bad_replay_file_is_refused_with_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, ticks=np.zeros(3, dtype=TICK_DTYPE))
    with pytest.raises(ValueError, match="missing array"):
        load_ticks(path)
    t = np.zeros(3, dtype=TICK_DTYPE)
    t["sym"] = 5
    save_ticks(path, t, ["EURUSD"])
    with pytest.raises(ValueError, match="beyond the 1 symbols"):
        load_ticks(path)


@pytest.fixture
def replay_file(tmp_path: Path) -> tuple[Path, np.ndarray]:
    ticks = generate_ticks(INSTRUMENTS, SimSettings(fault_rate=0.05), START, 5000)
    path = tmp_path / "replay.npz"
    save_ticks(path, ticks, SYMBOLS)
    return path, ticks


def test_replay_batches_cover_the_file_in_order(replay_file: tuple[Path, np.ndarray]) -> None:
    path, ticks = replay_file
    feed = ReplayFeed(path, batch_size=777)
    assert feed.mode == "REPLAY" and feed.symbols == SYMBOLS and len(feed) == 5000
    batches = list(feed.iter_batches())
    assert [len(b) for b in batches] == [777] * 6 + [5000 - 6 * 777]
    assert np.concatenate(batches).tobytes() == ticks.tobytes()
    assert not batches[0].flags.writeable


async def test_replay_as_fast_as_possible_yields_the_same_batches(
    replay_file: tuple[Path, np.ndarray],
) -> None:
    path, _ = replay_file
    feed = ReplayFeed(path, batch_size=1000)
    got = [b async for b in feed.batches(asyncio.Event())]
    assert [len(b) for b in got] == [1000] * 5
    stop = asyncio.Event()
    stop.set()
    assert [b async for b in feed.batches(stop)] == []


async def test_paced_replay_never_runs_ahead_of_event_time(
    replay_file: tuple[Path, np.ndarray],
) -> None:
    path, ticks = replay_file
    wall = FakeWall()
    feed = ReplayFeed(path, batch_size=50, speed=20.0, wall=wall, sleep=wall.sleep)
    t0 = int(ticks["ts_event"][0])
    got = []
    async for b in feed.batches(asyncio.Event()):
        assert len(b) <= 50
        assert b["ts_event"].max() <= t0 + wall.now * 20
        got.append(b)
    assert np.concatenate(got).tobytes() == ticks.tobytes()
    span = int(np.maximum.accumulate(ticks["ts_event"])[-1]) - t0
    assert span / 20 <= wall.now <= span / 20 + 0.1 * NS_PER_SECOND


def quotes(syms: list[int], start: int = 0) -> np.ndarray:
    t = np.zeros(len(syms), dtype=TICK_DTYPE)
    t["sym"] = syms
    t["ts_event"] = START + np.arange(start, start + len(syms))
    t["bid"] = np.arange(start, start + len(syms))
    return t


def test_queue_conflates_to_the_newest_quote_per_symbol_and_counts_the_rest() -> None:
    q = ConflatingQueue(max_ticks=10)
    q.put_nowait(quotes([0, 1, 0, 1, 2, 0]))  # 6 pending
    q.put_nowait(quotes([1, 1, 0, 2, 1], start=6))  # 11 > 10: conflate
    assert q.dropped == 8 and len(q) == 3
    out = q.get_nowait()
    assert out is not None
    assert out["sym"].tolist() == [0, 2, 1] and out["bid"].tolist() == [8.0, 9.0, 10.0]
    assert q.get_nowait() is None and len(q) == 0


def test_queue_never_grows_without_bound() -> None:
    q = ConflatingQueue(max_ticks=1000, max_batches=5)
    rng = np.random.default_rng(0)
    for i in range(2000):
        q.put_nowait(quotes(rng.integers(0, 6, 37).tolist(), start=i * 37))
        assert len(q) <= 1000 and len(q._items) <= 5
    out = q.get_nowait()
    assert out is not None
    assert q.dropped + len(out) == 2000 * 37
    assert (np.diff(out["ts_event"]) > 0).all()  # still in arrival order


def test_queue_joins_many_small_batches_without_losing_any() -> None:
    q = ConflatingQueue(max_ticks=1000, max_batches=3)
    for i in range(10):
        q.put_nowait(quotes([i % 3], start=i))
    out = q.get_nowait()
    assert q.dropped == 0 and out is not None and out["bid"].tolist() == list(range(10))


async def test_queue_get_waits_for_a_batch() -> None:
    q = ConflatingQueue()
    waiter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    assert not waiter.done()
    q.put_nowait(quotes([0, 1]))
    q.put_nowait(quotes([2], start=2))
    got = await asyncio.wait_for(waiter, 1.0)
    assert got["sym"].tolist() == [0, 1, 2]
    q.put_nowait(np.zeros(0, dtype=TICK_DTYPE))  # empty batches are ignored
    assert len(q) == 0


async def test_several_venues_merge_into_one_stream_with_their_symbols_side_by_side() -> None:
    from mikrobot_tui.data.feeds import MergedFeed

    catalogue = default_instruments()
    sim = SimSettings(symbols=["EURUSD", "BTCUSDT"], faults=False)

    def venue(symbol: str, seed: int) -> SimFeed:
        settings = sim.model_copy(update={"seed": seed})
        market = SimMarket([catalogue[symbol]], settings, START)
        return SimFeed(market, speed=600, step_s=0.01, history_ns=60 * NS_PER_SECOND)

    fx, crypto = venue("EURUSD", 1), venue("BTCUSDT", 2)
    merged = MergedFeed([fx, crypto])
    assert merged.symbols == ["EURUSD", "BTCUSDT"] and merged.mode == "SIMULATED"
    history = np.concatenate(list(merged.history()))
    assert set(history["sym"].tolist()) == {0, 1}
    stop = asyncio.Event()
    seen: list[np.ndarray] = []
    async for batch in merged.batches(stop):
        seen.append(batch)
        both = len({int(s) for b in seen for s in b["sym"]}) == 2
        if (both and len(seen) > 4) or len(seen) > 500:  # bounded: stops by itself
            stop.set()
    ticks = np.concatenate(seen)
    btc = ticks[ticks["sym"] == 1]
    assert len(btc) and btc["bid"].min() > 1000  # BTC prices under the shifted index
    assert ticks[ticks["sym"] == 0]["bid"].max() < 10
    with pytest.raises(ValueError, match="same symbol"):
        MergedFeed([fx, venue("EURUSD", 3)])
