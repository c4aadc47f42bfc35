"""Feeds: one shape for every venue, an async producer of tick batches.

Every feed has a `mode` (shown in the cockpit), `symbols` (sym indexes this list) and
`async def batches(stop)`, an async iterator of non-empty TICK_DTYPE arrays that ends when `stop`
is set or the data runs out. Live feeds write into a `ConflatingQueue`, which never blocks them.

Replay files are .npz archives with two arrays: `ticks` (TICK_DTYPE) and `symbols` (str).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import numpy as np

from mikrobot_tui.data.sim import SimMarket
from mikrobot_tui.domain.market import NS_PER_SECOND, TICK_DTYPE

Wall = Callable[[], int]
Sleep = Callable[[float], Awaitable[None]]


class SimFeed:
    """The simulated market, paced by the wall clock: `speed` simulated seconds per second.

    Every `step_s` wall seconds the market advances to start + elapsed wall time x speed (in
    whole steps), so a slow consumer gets one larger batch rather than a growing delay.
    """

    mode = "SIMULATED"
    name = "sim"

    def __init__(
        self,
        market: SimMarket,
        speed: float,
        step_s: float = 0.05,
        wall: Wall = time.monotonic_ns,
        sleep: Sleep = asyncio.sleep,
        history_ns: int = 0,
    ) -> None:
        if speed <= 0 or step_s <= 0:
            raise ValueError("speed and step_s must be positive")
        if history_ns < 0:
            raise ValueError("history_ns must not be negative")
        self.market = market
        self.history_ns = history_ns
        self.speed = speed
        self.step_s = step_s
        self._wall = wall
        self._sleep = sleep

    @property
    def symbols(self) -> list[str]:
        return self.market.symbols

    def history(self) -> Iterator[np.ndarray]:
        """The market's recent past at once, a minute per batch, so strategies start warm.

        The market is built `history_ns` before now; live batches continue where this ends.
        """
        end = self.market.now_ns + self.history_ns
        while self.market.now_ns < end:
            batch = self.market.advance(min(end, self.market.now_ns + 60 * NS_PER_SECOND))
            if len(batch):
                yield batch

    async def batches(self, stop: asyncio.Event) -> AsyncIterator[np.ndarray]:
        step_wall = max(1, round(self.step_s * NS_PER_SECOND))
        step_sim = max(1, round(self.step_s * self.speed * NS_PER_SECOND))
        sim0 = self.market.now_ns
        wall0 = self._wall()
        done = 0
        while not stop.is_set():
            steps = (self._wall() - wall0) // step_wall
            if steps > done:
                done = steps
                batch = self.market.advance(sim0 + steps * step_sim)
                if len(batch):
                    yield batch
            wait = wall0 + (done + 1) * step_wall - self._wall()
            await self._sleep(max(0, wait) / NS_PER_SECOND)


class ReplayFeed:
    """Ticks from a file, as fast as possible (speed 0) or paced by event time / speed."""

    mode = "REPLAY"
    name = "replay"

    def __init__(
        self,
        path: Path,
        batch_size: int,
        speed: float = 0.0,
        wall: Wall = time.monotonic_ns,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if speed < 0:
            raise ValueError(f"speed must be 0 (as fast as possible) or positive, got {speed}")
        self.path = Path(path)
        self.batch_size = batch_size
        self.speed = speed
        self._ticks, self._symbols = load_ticks(self.path)
        self._ticks.flags.writeable = False
        self._wall = wall
        self._sleep = sleep

    @property
    def symbols(self) -> list[str]:
        return list(self._symbols)

    def __len__(self) -> int:
        return len(self._ticks)

    def first_ts(self) -> int | None:
        """Event time of the file's first tick, None for an empty file."""
        return int(self._ticks["ts_event"][0]) if len(self._ticks) else None

    def history(self) -> Iterator[np.ndarray]:
        """A replay has no history before its file: every tick is traded."""
        return iter(())

    def iter_batches(self) -> Iterator[np.ndarray]:
        """Read-only views of batch_size ticks (the last one shorter), for backtests."""
        t, size = self._ticks, self.batch_size
        for start in range(0, len(t), size):
            yield t[start : start + size]

    async def batches(self, stop: asyncio.Event) -> AsyncIterator[np.ndarray]:
        if self.speed == 0:
            for batch in self.iter_batches():
                if stop.is_set():
                    return
                yield batch
                await asyncio.sleep(0)
            return
        t = self._ticks
        if not len(t):
            return
        due = np.maximum.accumulate(t["ts_event"])  # a tick from the past is due on arrival
        ts0 = int(due[0])
        wall0 = self._wall()
        i = 0
        while i < len(t) and not stop.is_set():
            reached = ts0 + int((self._wall() - wall0) * self.speed)
            j = int(np.searchsorted(due, reached, side="right"))
            while i < j and not stop.is_set():
                end = min(j, i + self.batch_size)
                yield t[i:end]
                i = end
                await asyncio.sleep(0)
            if i < len(t):
                wait_ns = (int(due[i]) - ts0) / self.speed - (self._wall() - wall0)
                await self._sleep(min(max(wait_ns, 0) / NS_PER_SECOND, 0.05))


def save_ticks(path: Path, ticks: np.ndarray, symbols: list[str]) -> None:
    """Write a replay file (.npz with arrays 'ticks' and 'symbols'), exactly at `path`."""
    if ticks.dtype != TICK_DTYPE:
        raise TypeError(f"ticks must be TICK_DTYPE, got {ticks.dtype}")
    with open(path, "wb") as f:  # np.savez(path) would append ".npz" to other names
        np.savez(f, ticks=ticks, symbols=np.array(symbols, dtype=str))


def load_ticks(path: Path) -> tuple[np.ndarray, list[str]]:
    """Read a replay file; ValueError names what is wrong with it."""
    try:
        with np.load(path, allow_pickle=False) as data:
            ticks, symbols = data["ticks"], [str(s) for s in data["symbols"]]
    except KeyError as exc:
        raise ValueError(f"{path}: not a replay file, missing array {exc}") from None
    if ticks.dtype != TICK_DTYPE:
        raise ValueError(f"{path}: ticks have dtype {ticks.dtype}, expected {TICK_DTYPE}")
    if len(ticks) and int(ticks["sym"].max()) >= len(symbols):
        raise ValueError(f"{path}: a tick's sym is beyond the {len(symbols)} symbols listed")
    return ticks, symbols


class ConflatingQueue:
    """A bounded queue of tick batches between a live feed and the engine.

    put_nowait never blocks and never fails. Above `max_batches` pending batches they are joined
    into one (nothing lost); above `max_ticks` pending ticks everything pending is conflated to
    the newest tick per symbol, and the ticks thrown away are added to `dropped`. So the queue
    holds at most max(max_ticks, symbols) ticks. get() returns all pending ticks as one batch in
    arrival order (batch independence makes one big batch as good as many small ones).
    """

    def __init__(self, max_ticks: int = 100_000, max_batches: int = 1_000) -> None:
        if max_ticks < 1 or max_batches < 1:
            raise ValueError("max_ticks and max_batches must be at least 1")
        self.max_ticks = max_ticks
        self.max_batches = max_batches
        self.dropped = 0
        self._items: list[np.ndarray] = []
        self._pending = 0
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        """Pending ticks."""
        return self._pending

    def put_nowait(self, batch: np.ndarray) -> None:
        if not len(batch):
            return
        self._items.append(batch)
        self._pending += len(batch)
        if len(self._items) > self.max_batches:
            self._items = [np.concatenate(self._items)]
        if self._pending > self.max_ticks:
            merged = np.concatenate(self._items)
            rev = merged["sym"][::-1]
            _, first_in_rev = np.unique(rev, return_index=True)
            keep = np.sort(len(merged) - 1 - first_in_rev)
            self._items = [merged[keep]]
            self.dropped += len(merged) - len(keep)
            self._pending = len(keep)
        self._ready.set()

    def get_nowait(self) -> np.ndarray | None:
        if not self._items:
            return None
        items = self._items
        self._items, self._pending = [], 0
        self._ready.clear()
        return items[0] if len(items) == 1 else np.concatenate(items)

    async def get(self) -> np.ndarray:
        while True:
            batch = self.get_nowait()
            if batch is not None:
                return batch
            await self._ready.wait()
