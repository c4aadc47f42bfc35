"""What drives the engine: the live loop and the replay loop.

Live, the feed runs as its own task: a live feed never waits for the engine, it fills a
conflating queue that keeps the newest quote per symbol when the engine falls behind (and
counts what it dropped); a replay must see every tick, so the engine pulls it directly. Beside
the feed, the loop flushes the writer every 50 ms, polls commands every `engine.poll_ms` and
refreshes the read side `engine.snapshot_hz` times a second. A replay from a file runs without
an event loop at all, flushing by size.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from mikrobot_tui.data.feeds import ConflatingQueue
from mikrobot_tui.engine import Engine
from mikrobot_tui.store.writer import Writer


@dataclass(frozen=True, slots=True)
class RunStats:
    ticks_in: int
    ticks_clean: int
    bars: int
    events: int
    rejects: int


class Runner:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.queue = ConflatingQueue()

    def replay(self, batches: Iterator[np.ndarray]) -> RunStats:
        """Process batches as fast as they come, flushing by size. No event loop."""
        engine = self.engine
        seq0 = engine.ledger.log.last_seq
        if not engine.started:
            engine.start()
        for batch in batches:
            engine.corridor.process(batch)
            if engine.writer.pending_rows >= Writer.FLUSH_ROWS:
                engine.writer.flush()
        engine.read_side.write()
        c = engine.corridor.counts
        return RunStats(
            c.ticks_in, c.ticks_clean, c.bars, engine.ledger.log.last_seq - seq0, c.rejects
        )

    async def run(self, stop: asyncio.Event, duration_s: float | None = None) -> None:
        """Live: consume the feed until `stop` is set (or the duration passes)."""
        engine = self.engine
        if not engine.started:
            engine.start()
        consumer = asyncio.create_task(self._consume(stop), name="engine-feed")
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        # every 50 ms the writer flushes; commands and snapshots come at their own periods
        due = {"commands": t0, "snapshot": t0}
        periods = {
            "commands": engine.settings.engine.poll_ms / 1000,
            "snapshot": 1.0 / engine.settings.engine.snapshot_hz,
        }
        try:
            while not stop.is_set():
                now = loop.time()
                if duration_s is not None and now - t0 >= duration_s:
                    break
                if consumer.done():
                    consumer.result()  # re-raise a feed failure
                    break
                if now >= due["commands"]:
                    engine.control.handle_commands()
                if now >= due["snapshot"]:
                    engine.read_side.write()  # flushes too
                else:
                    engine.writer.flush()
                for what, at in due.items():
                    if now >= at:
                        due[what] = max(at + periods[what], now)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=Writer.FLUSH_SECONDS)
        finally:
            stop.set()
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer
            engine.stop()

    async def _consume(self, stop: asyncio.Event) -> None:
        feed, process = self.engine.feed, self.engine.corridor.process
        if feed.mode == "REPLAY":  # a replay must see every tick: it waits for us
            async for batch in feed.batches(stop):
                process(batch)
                if stop.is_set():
                    break
            return
        # A live feed never waits for the engine: it fills a bounded queue that conflates to
        # the newest quote per symbol when we fall behind, and counts what it dropped.
        producer = asyncio.create_task(self._produce(stop), name="engine-feed-reader")
        try:
            while not stop.is_set() and not producer.done():
                getter = asyncio.create_task(self.queue.get())
                done, _ = await asyncio.wait(
                    {getter, producer}, return_when=asyncio.FIRST_COMPLETED
                )
                if getter in done:
                    process(getter.result())
                else:
                    getter.cancel()
            rest = self.queue.get_nowait()
            if rest is not None:
                process(rest)
            if producer.done():
                producer.result()  # a feed that failed says why
        finally:
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await producer

    async def _produce(self, stop: asyncio.Event) -> None:
        async for batch in self.engine.feed.batches(stop):
            self.queue.put_nowait(batch)
