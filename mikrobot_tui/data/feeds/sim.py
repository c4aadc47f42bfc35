"""The simulated-market feed: the embedded market (data/sim.py) paced by the wall clock."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import numpy as np

from mikrobot_tui.clock import Clock
from mikrobot_tui.config import Settings
from mikrobot_tui.data.feeds.health import LIVE, FeedHealth, HealthMeter
from mikrobot_tui.data.sim import SimMarket
from mikrobot_tui.domain.instruments import Instrument, default_instruments
from mikrobot_tui.domain.market import NS_PER_SECOND, TRADE_DTYPE, Depth
from mikrobot_tui.store.queries import last_event_ts, last_mids, last_quote_ts

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
        self._meter = HealthMeter("sim", "sim")

    @property
    def symbols(self) -> list[str]:
        return self.market.symbols

    def instruments(self) -> dict[str, Instrument]:
        return {i.symbol: i for i in self.market.instruments}

    def health(self) -> list[FeedHealth]:
        return [self._meter.snapshot()]

    def take_trades(self) -> np.ndarray:
        """The simulated market prints its trades on the quote record (`last`, `volume`)."""
        return np.zeros(0, dtype=TRADE_DTYPE)

    def books(self) -> dict[str, Depth]:
        """The simulated market has no depth: orders fill at the touch plus slippage."""
        return {}

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
                    self._meter.state = LIVE
                    self._meter.message(len(batch))
                    self._meter.latencies(batch["ts_recv"] - batch["ts_event"])
                    yield batch
            wait = wall0 + (done + 1) * step_wall - self._wall()
            await self._sleep(max(0, wait) / NS_PER_SECOND)


def from_settings(settings: Settings, clock: Clock, db: Path) -> SimFeed:
    """The simulated market of config.toml's [sim].

    On a database that has quoted these symbols before, the market continues from the last
    stored time and prices, with no generated history: the engine warms up from the stored
    bars instead, and nothing already stored is generated again. On a new database it starts
    now with `sim.warmup_minutes` of generated history (never before the database's last
    event: a sim that ran faster than the wall clock is ahead of it).
    """
    catalogue = default_instruments()
    instruments = [catalogue[s] for s in settings.sim.symbols]
    mids = last_mids(db, settings.sim.symbols)
    last = last_event_ts(db)
    if mids:
        start = max(last, last_quote_ts(db, settings.sim.symbols))
        market = SimMarket(instruments, settings.sim, start, start_mids=mids)
        return SimFeed(market, settings.sim.speed)
    history_ns = int(settings.sim.warmup_minutes * 60 * NS_PER_SECOND)
    now = max(clock.now_ns(), last)
    market = SimMarket(instruments, settings.sim, now - history_ns)
    return SimFeed(market, settings.sim.speed, history_ns=history_ns)
