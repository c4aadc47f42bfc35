"""The replay feed: ticks from a file, as fast as possible or paced by their event times.

Replay files are .npz archives with two arrays: `ticks` (TICK_DTYPE, one dimension, event
and receive times in nanoseconds since the Unix epoch, from 1980 on) and `symbols` (str: each
a known instrument, listed once; a tick's `sym` indexes this list). `load_ticks` refuses any
other file with a ValueError that names the file and the problem.
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
from mikrobot_tui.data.feeds.health import LIVE, FeedHealth, HealthMeter
from mikrobot_tui.domain.instruments import Instrument, default_instruments
from mikrobot_tui.domain.market import NS_PER_SECOND, TICK_DTYPE, TRADE_DTYPE, Depth
from mikrobot_tui.store.queries import last_event_ts, replay_checkpoint

Wall = Callable[[], int]
Sleep = Callable[[float], Awaitable[None]]

# no tick data is older: an earlier time is a value in seconds, ms or us, or garbage
EARLIEST_NS = 315_532_800 * NS_PER_SECOND  # 1980-01-01 00:00 UTC


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
        *,
        loaded: tuple[np.ndarray, list[str]] | None = None,
    ) -> None:
        """The ticks of the replay file at `path`, or `loaded` (ticks and symbols a backtest
        already holds: checked as a file's are, never written out and read back)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if speed < 0:
            raise ValueError(f"speed must be 0 (as fast as possible) or positive, got {speed}")
        self.path = Path(path)
        self.batch_size = batch_size
        self.speed = speed
        if loaded is None:
            self._ticks, self._symbols = load_ticks(self.path)
        else:
            ticks, symbols = loaded
            _check_ticks(self.path, ticks, list(symbols))
            self._ticks, self._symbols = ticks.view(), list(symbols)  # the caller's stays writable
        self._ticks.flags.writeable = False
        self._wall = wall
        self._sleep = sleep
        self._meter = HealthMeter("replay", "replay")
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

    def instruments(self) -> dict[str, Instrument]:
        catalogue = default_instruments()
        return {s: catalogue[s] for s in self._symbols if s in catalogue}

    def health(self) -> list[FeedHealth]:
        return [self._meter.snapshot()]

    def take_trades(self) -> np.ndarray:
        return np.zeros(0, dtype=TRADE_DTYPE)

    def books(self) -> dict[str, Depth]:
        """A replay file carries quotes, not depth."""
        return {}

    def _count(self, batch: np.ndarray) -> None:
        self._meter.state = LIVE
        self._meter.message(len(batch))

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
            self._count(t[start : start + size])
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
                self._count(t[i:end])
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
    """Read a replay file; ValueError names the file and what is wrong with it."""
    path = Path(path)
    if path.is_file() and path.stat().st_size == 0:
        raise ValueError(f"{path}: the file is empty (0 bytes), not a replay archive")
    unreadable = (EOFError, OSError, ValueError, zipfile.BadZipFile)
    try:
        data = np.load(path, allow_pickle=False)
    except unreadable as exc:
        raise ValueError(f"{path}: cannot be read as an .npz replay archive ({exc})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError(
            f"{path}: a single .npy array (renamed?), not an .npz replay archive with the "
            "arrays 'ticks' and 'symbols'"
        )
    try:
        with data:
            ticks, names = data["ticks"], data["symbols"]
    except KeyError as exc:
        raise ValueError(f"{path}: not a replay file, missing array {exc}") from None
    except unreadable as exc:
        raise ValueError(f"{path}: cannot be read as an .npz replay archive ({exc})") from None
    if ticks.dtype != TICK_DTYPE or ticks.ndim != 1:
        _check_ticks(path, ticks, [])  # says what is wrong with them
    if names.dtype.kind != "U" or names.ndim != 1:
        raise ValueError(f"{path}: symbols must be a list of strings, got {names.dtype}")
    symbols = [str(s) for s in names]
    _check_ticks(path, ticks, symbols)
    return ticks, symbols


def _check_ticks(path: Path, ticks: np.ndarray, symbols: list[str]) -> None:
    """What a replay's ticks must be (dtype, known symbols listed once, times from 1980 on);
    ValueError names `path` and the problem."""
    if ticks.dtype != TICK_DTYPE or ticks.ndim != 1:
        raise ValueError(
            f"{path}: ticks have dtype {ticks.dtype} in {ticks.ndim} dimension(s), expected "
            f"one dimension of {TICK_DTYPE}"
        )
    _check_symbols(path, symbols)
    if len(ticks) and int(ticks["sym"].max()) >= len(symbols):
        raise ValueError(f"{path}: a tick's sym is beyond the {len(symbols)} symbols listed")
    for field in ("ts_event", "ts_recv"):
        early = np.flatnonzero(ticks[field] < EARLIEST_NS)
        if len(early):
            i = int(early[0])
            raise ValueError(
                f"{path}: {len(early)} tick(s) have a {field} before 1980, the first is tick "
                f"{i} at {int(ticks[field][i])} ({_iso(ticks[field][i])}): times must be "
                "nanoseconds since the Unix epoch (seconds, milliseconds or microseconds look "
                "like this)"
            )


def _check_symbols(path: Path, symbols: list[str]) -> None:
    """Every symbol known, and listed once (two entries would be one series cut in two)."""
    twice = sorted({s for i, s in enumerate(symbols) if s in symbols[:i]})
    if twice:
        raise ValueError(
            f"{path}: symbols {twice} are listed more than once; list each once (a tick names "
            "its symbol by its position in the list)"
        )
    known = default_instruments()
    unknown = [s for s in symbols if s not in known]
    if unknown:
        hint = [f"{s!r} -> {s.upper()!r}" for s in unknown if s.upper() in known]
        raise ValueError(
            f"{path}: unknown symbols {unknown}"
            + (f" (symbols are upper case: {', '.join(hint)})" if hint else "")
            + f"; known: {', '.join(sorted(known))}"
        )


def from_settings(settings: Settings) -> ReplayFeed:
    """The replay of config.toml's [replay] file; ConfigError says what is wrong with it."""
    file = settings.replay.file
    assert file is not None  # Settings refuses a replay feed without one
    if not file.exists():
        raise ConfigError(f"replay.file: {file} does not exist")
    try:
        feed = ReplayFeed(file, settings.engine.batch_max, speed=settings.replay.speed)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ConfigError(f"replay.file: {exc}") from None
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
    seconds = int(ts) / NS_PER_SECOND
    try:
        return datetime.fromtimestamp(seconds, tz=UTC).isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):  # beyond what datetime can show
        return f"{seconds:.0f} s from 1970"
