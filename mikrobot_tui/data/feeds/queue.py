"""The bounded queue between a live feed and the engine: it conflates, it never blocks."""

from __future__ import annotations

import asyncio

import numpy as np


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
