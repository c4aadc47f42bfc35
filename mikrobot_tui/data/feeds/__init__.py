"""Feeds: one shape for every venue, an async producer of tick batches; `build_feed` picks one.

Every feed has a `mode` (shown in the cockpit: SIMULATED, REPLAY or LIVE), a `name`, `symbols`
(a tick's `sym` indexes this list), `history()` (ticks from before the start that warm the
strategies up, never traded) and `async def batches(stop)`, an async iterator of non-empty
TICK_DTYPE arrays that ends when `stop` is set or the data runs out. One module per venue:
sim, replay, binance; several venues merge into one stream (`MergedFeed`).

A live venue may also have `take_rejects()` (frames that never became a tick, as FeedReject
rows for the `rejects` table) and `take_failures()` ((wall ns, reason) of each dropped, stale
or refused connection, for the feed's circuit breaker); `feed_rejects` and `feed_failures`
ask any feed, and give nothing for one without them (sim, replay).

`books()` is the latest order book per symbol (a `Depth`, top 20 levels) for the execution
simulator's book walk: Binance's depth stream; an empty dict for a feed without depth (sim,
replay, mt5).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Protocol

import numpy as np

from mikrobot_tui.clock import Clock
from mikrobot_tui.config import ConfigError, Settings
from mikrobot_tui.data.feeds.health import FeedHealth, HealthMeter
from mikrobot_tui.data.feeds.queue import ConflatingQueue
from mikrobot_tui.data.feeds.rejects import FeedReject
from mikrobot_tui.data.feeds.replay import ReplayFeed, load_ticks, save_ticks
from mikrobot_tui.data.feeds.sim import SimFeed
from mikrobot_tui.domain.instruments import Instrument
from mikrobot_tui.domain.market import TRADE_DTYPE, Depth

__all__ = [
    "ConflatingQueue",
    "Feed",
    "FeedHealth",
    "FeedReject",
    "HealthMeter",
    "MergedFeed",
    "ReplayFeed",
    "SimFeed",
    "build_feed",
    "feed_failures",
    "feed_rejects",
    "load_ticks",
    "save_ticks",
]


class Feed(Protocol):
    mode: str  # SIMULATED, REPLAY or LIVE
    name: str

    @property
    def symbols(self) -> list[str]: ...

    def batches(self, stop: asyncio.Event) -> AsyncIterator[np.ndarray]: ...

    def history(self) -> Iterator[np.ndarray]: ...

    def instruments(self) -> dict[str, Instrument]:
        """The venue's own description of its symbols (tick size, lot step, currencies)."""
        ...

    def health(self) -> list[FeedHealth]:
        """One entry per connection."""
        ...

    def take_trades(self) -> np.ndarray:
        """Trades (TRADE_DTYPE) received since the last call, in arrival order."""
        ...

    def books(self) -> dict[str, Depth]:
        """The latest order book per symbol; empty for a feed without depth."""
        ...


def feed_rejects(feed: Feed) -> list[FeedReject]:
    """Frames the feed could not use since the last call (none for a feed without any)."""
    take = getattr(feed, "take_rejects", None)
    return take() if take is not None else []


def feed_failures(feed: Feed) -> list[tuple[int, str]]:
    """(wall ns, reason) of the feed's connection failures since the last call."""
    take = getattr(feed, "take_failures", None)
    return take() if take is not None else []


def build_feed(settings: Settings, clock: Clock) -> Feed:
    """The feed config.toml names; ConfigError names the key when it cannot be built."""
    from mikrobot_tui.data.feeds import replay, sim

    feed = settings.engine.feed
    if feed == "replay":
        return replay.from_settings(settings)
    if feed == "sim":
        return sim.from_settings(settings, clock, Path(settings.engine.db))
    if feed == "mixed":
        return MergedFeed(
            [_venue(spec.venue, settings, clock, spec.symbols) for spec in settings.feeds]
        )
    return _venue(feed, settings, clock, None)


def _venue(venue: str, settings: Settings, clock: Clock, symbols: list[str] | None) -> Feed:
    """One venue's feed, on `symbols` when a mixed feed gives them (else its own section's)."""
    from mikrobot_tui.data.feeds import sim

    if venue == "sim":
        if symbols is not None:
            settings = settings.model_copy(
                update={"sim": settings.sim.model_copy(update={"symbols": symbols})}
            )
        return sim.from_settings(settings, clock, Path(settings.engine.db))
    try:
        module = importlib.import_module(f"mikrobot_tui.data.feeds.{venue}")
    except ModuleNotFoundError:
        raise ConfigError(f"engine.feed: the {venue} feed is not in this build") from None
    return module.from_settings(settings, clock, symbols)


class MergedFeed:
    """Several venues as one stream: symbols side by side, each feed's `sym` shifted to match.

    Batches are handed on as they arrive from any venue (a live stream has no global order to
    wait for); history is the venues' histories one after the other.
    """

    def __init__(self, feeds: list[Feed]) -> None:
        if not feeds:
            raise ValueError("a merged feed needs at least one feed")
        names = [s for f in feeds for s in f.symbols]
        if len(set(names)) != len(names):
            raise ValueError(f"two venues quote the same symbol: {sorted(names)}")
        self.feeds = list(feeds)
        self.symbols = names
        modes = {f.mode for f in feeds}
        self.mode = modes.pop() if len(modes) == 1 else "LIVE"
        self.name = "+".join(f.name for f in feeds)
        self._offsets = np.cumsum([0] + [len(f.symbols) for f in feeds[:-1]]).tolist()

    def _shift(self, batch: np.ndarray, i: int) -> np.ndarray:
        if self._offsets[i] == 0 or not len(batch):
            return batch
        out = batch.copy()
        out["sym"] += self._offsets[i]
        return out

    def history(self) -> Iterator[np.ndarray]:
        for i, feed in enumerate(self.feeds):
            for batch in feed.history():
                yield self._shift(batch, i)

    def instruments(self) -> dict[str, Instrument]:
        return {k: v for f in self.feeds for k, v in f.instruments().items()}

    def health(self) -> list[FeedHealth]:
        return [h for f in self.feeds for h in f.health()]

    def take_trades(self) -> np.ndarray:
        parts = [self._shift(f.take_trades(), i) for i, f in enumerate(self.feeds)]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=TRADE_DTYPE)

    def books(self) -> dict[str, Depth]:
        return {k: v for f in self.feeds for k, v in f.books().items()}

    def take_rejects(self) -> list[FeedReject]:
        return [r for f in self.feeds for r in feed_rejects(f)]

    def take_failures(self) -> list[tuple[int, str]]:
        return sorted(x for f in self.feeds for x in feed_failures(f))

    async def batches(self, stop: asyncio.Event) -> AsyncIterator[np.ndarray]:
        queue: asyncio.Queue[tuple[int, np.ndarray | Exception | None]] = asyncio.Queue(64)

        async def pump(i: int, feed: Feed) -> None:
            try:
                async for batch in feed.batches(stop):
                    await queue.put((i, batch))
            except Exception as exc:  # a venue that fails says why, through the merged feed
                await queue.put((i, exc))
                return
            await queue.put((i, None))

        tasks = [asyncio.create_task(pump(i, f)) for i, f in enumerate(self.feeds)]
        running = len(tasks)
        try:
            while running and not stop.is_set():
                i, item = await queue.get()
                if item is None:
                    running -= 1
                elif isinstance(item, Exception):
                    raise item
                else:
                    yield self._shift(item, i)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
