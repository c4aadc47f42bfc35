"""The replay feed: ticks from a file, as fast as possible or paced by their event times.

Replay files are .npz archives with two arrays: `ticks` (TICK_DTYPE) and `symbols` (str).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from mikrobot_tui.config import ConfigError, Settings
from mikrobot_tui.domain.market import NS_PER_SECOND, TICK_DTYPE
from mikrobot_tui.store.queries import last_event_ts, replay_checkpoint

Wall = Callable[[], int]
Sleep = Callable[[float], Awaitable[None]]


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
        self._start = 0  # ticks already processed by an earlier run that this one resumes
        self._fingerprint: str | None = None

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

    def fingerprint(self) -> str:
        """What identifies the file's content (symbols and every tick), whatever its name."""
        if self._fingerprint is None:
            h = hashlib.sha1(usedforsecurity=False)  # identity, not security: the fastest here
            h.update("\n".join(self._symbols).encode())
            h.update(np.ascontiguousarray(self._ticks).view(np.uint8))
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    def resume_at(self, position: int) -> None:
        """Start after the first `position` ticks: an earlier run processed them."""
        if not 0 <= position <= len(self._ticks):
            raise ValueError(f"cannot resume {self.path} at tick {position}")
        self._start = position

    def iter_batches(self) -> Iterator[np.ndarray]:
        """Read-only views of batch_size ticks (the last one shorter), for backtests."""
        t, size = self._ticks, self.batch_size
        for start in range(self._start, len(t), size):
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
        if self._start >= len(t):
            return
        due = np.maximum.accumulate(t["ts_event"])  # a tick from the past is due on arrival
        i = self._start
        ts0 = int(due[i])
        wall0 = self._wall()
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


def from_settings(settings: Settings) -> ReplayFeed:
    """The replay of config.toml's [replay] file; ConfigError says what is wrong with it."""
    file = settings.replay.file
    assert file is not None  # Settings refuses a replay feed without one
    if not file.exists():
        raise ConfigError(f"replay.file: {file} does not exist")
    try:
        feed = ReplayFeed(file, settings.engine.batch_max, speed=settings.replay.speed)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ConfigError(f"replay.file: {file} cannot be read: {exc}") from None
    first = feed.first_ts()
    db = Path(settings.engine.db)
    last = last_event_ts(db)
    resumed = replay_checkpoint(db)
    if resumed is not None and resumed[0] == feed.fingerprint():
        return feed  # the engine resumes it where the last run stopped (engine/checkpoint.py)
    if first is not None and first < last:
        raise ConfigError(
            f"replay.file: its first tick ({_iso(first)}) is before the last event in "
            f"{db} ({_iso(last)}); replay into a new database with --db"
        )
    return feed


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts / NS_PER_SECOND, tz=UTC).isoformat(timespec="seconds")
