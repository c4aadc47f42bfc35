"""What a replay needs to resume exactly: the pipeline's memory, stored with the rows it explains.

The accounts are a fold of the event log, but the corridor remembers more than the log says:
the quality monitor's variance and windows, half-built candles, the strategies' indicators, the
breakers' counts, the last quotes. A replay killed midway (kill -9 at any moment) and restarted
on its own database must end with the same event log as a run never interrupted. So every
flush of a file replay carries, in the same transaction, a checkpoint: which file (by content),
how many of its ticks the stored rows account for, and that memory, pickled. A restart finds
the checkpoint of the same file, restores the memory, and goes on from the next tick.

The memory is read back with an unpickler that only builds this package's classes, numpy
arrays and builtin containers: a database file handed over by someone else cannot run code.
"""

from __future__ import annotations

import io
import pickle
import sqlite3
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel

from mikrobot_tui.clock import Clock, ReplayClock
from mikrobot_tui.config import Settings
from mikrobot_tui.data.candles import CandleSet
from mikrobot_tui.data.quality import QualityMonitor
from mikrobot_tui.engine.corridor import Corridor, Counts
from mikrobot_tui.engine.decisions import Decisions
from mikrobot_tui.engine.models import Drift
from mikrobot_tui.paper.fillmodel import RecentVolatility
from mikrobot_tui.paper.quotes import LastQuotes
from mikrobot_tui.store.writer import Writer
from mikrobot_tui.trading.breakers import CircuitBreaker
from mikrobot_tui.trading.judges import FeedJudge, QualityJudge
from mikrobot_tui.trading.scoring import SignalScorer
from mikrobot_tui.trading.strategies import Strategy
from mikrobot_tui.trading.timeframes import BarHistory

COLUMNS = ("id", "fingerprint", "file", "position", "state", "ts")


@dataclass
class Memory:
    """Everything a corridor remembers beyond the event log."""

    quality: QualityMonitor
    candles: CandleSet
    feed_judge: FeedJudge  # holds the feed's breaker
    counts: Counts
    clean_stream: int
    bar_floor: np.ndarray | None
    strategies: dict[str, Strategy]
    strategy_breakers: dict[str, CircuitBreaker]
    quotes: LastQuotes
    clock_ns: int
    volatility: RecentVolatility  # the venue's slippage model learns from M1 bars
    watch_time: tuple[int | None, int]  # the account watch's last minute and time
    # the symbols' quality breakers with the problems they judge, and the order path's
    # breaker (None in a checkpoint written before they existed)
    quality_judge: QualityJudge | None = None
    orders_breaker: CircuitBreaker | None = None
    scorer: SignalScorer | None = None  # the orchestrator's trend and ATR per symbol
    # the bars strategies look back on across timeframes (None before it existed)
    history: BarHistory | None = None
    # served models' drift windows, per account (engine/models.py; None before it existed)
    drift: dict[str, Drift] | None = None

    @classmethod
    def of(cls, corridor: Corridor, decisions: Decisions, clock: Clock) -> Memory:
        return cls(
            corridor.quality,
            corridor.candles,
            corridor.feed_judge,
            corridor.counts,
            corridor.clean_stream,
            corridor.bar_floor,
            decisions.strategies,
            decisions.breakers,
            corridor.quotes,
            clock.now_ns(),
            corridor.venue.volatility,
            (corridor.venue.watch.last_minute, corridor.venue.watch.last_ts),
            decisions.quality,
            decisions.orders,
            decisions.scorer,
            decisions.history,
            decisions.models.drift_state() if decisions.models is not None else None,
        )

    def dumps(self) -> bytes:
        out = io.BytesIO()
        _Pickler(out, protocol=pickle.HIGHEST_PROTOCOL).dump(self)
        return zlib.compress(out.getvalue(), 1)

    @staticmethod
    def loads(blob: bytes, settings: Settings) -> Memory:
        memory = _SafeUnpickler(io.BytesIO(zlib.decompress(blob)), settings).load()
        if not isinstance(memory, Memory):
            raise pickle.UnpicklingError("not a pipeline memory")
        return memory


class Checkpoints:
    """Writes a checkpoint with every flush of a file replay; finds and restores the last."""

    def __init__(
        self,
        writer: Writer,
        fingerprint: Callable[[], str],  # computed at the first checkpoint, then kept
        file: str,
        memory: Callable[[], Memory],
        wall: Clock,
    ) -> None:
        self._writer = writer
        self._fingerprint = fingerprint
        self._file = file
        self._memory = memory
        self._wall = wall
        writer.before_flush = self.write

    def write(self) -> None:
        memory: Memory = self._memory()
        row = (
            1,
            self._fingerprint(),
            self._file,
            memory.counts.ticks_in,
            memory.dumps(),
            self._wall.now_ns(),
        )
        self._writer.snapshot("replay_checkpoint", COLUMNS, [row])


def load(conn: sqlite3.Connection, fingerprint: str, settings: Settings) -> Memory | None:
    """The memory of the last checkpoint of this file's replay, None when there is none."""
    row = conn.execute("SELECT fingerprint, state FROM replay_checkpoint WHERE id = 1").fetchone()
    if row is None or row[0] != fingerprint:
        return None
    return Memory.loads(row[1], settings)


def stored_fingerprint(conn: sqlite3.Connection) -> str | None:
    row = conn.execute("SELECT fingerprint FROM replay_checkpoint WHERE id = 1").fetchone()
    return row[0] if row else None


def restore(memory: Memory, corridor: Corridor, decisions: Decisions, clock: Clock) -> None:
    """Put a stored memory back into the rooms, in place: every room that holds one of these
    objects keeps holding it."""
    _adopt(corridor.quality, memory.quality)
    builders = corridor.candles.builders
    _adopt(corridor.candles, memory.candles)
    # a checkpoint from before M15 and H1 has no builders for them: they start afresh
    for period, builder in builders.items():
        corridor.candles.builders.setdefault(period, builder)
    _adopt(corridor.counts, memory.counts)
    _adopt(decisions.feed_breaker, memory.feed_judge.breaker)
    _adopt(corridor.feed_judge, memory.feed_judge)
    corridor.feed_judge.breaker = decisions.feed_breaker
    for name, strategy in decisions.strategies.items():
        _adopt(strategy, memory.strategies[name])
        _adopt(decisions.breakers[name], memory.strategy_breakers[name])
    _adopt(corridor.quotes, memory.quotes)
    corridor.clean_stream, corridor.bar_floor = memory.clean_stream, memory.bar_floor
    floor = corridor.bar_floor
    if floor is not None and floor.shape[1] < len(builders):
        pad = np.full((len(floor), len(builders) - floor.shape[1]), np.iinfo(np.int64).min)
        corridor.bar_floor = np.hstack([floor, pad])
    _adopt(corridor.venue.volatility, memory.volatility)
    corridor.venue.watch.last_minute, corridor.venue.watch.last_ts = memory.watch_time
    judge = decisions.quality
    if memory.quality_judge is not None and judge is not None:
        breakers = judge.breakers  # the engine's list holds these very objects
        for mine, saved in zip(breakers, memory.quality_judge.breakers, strict=False):
            if mine.name == saved.name:
                _adopt(mine, saved)
        _adopt(judge, memory.quality_judge)
        judge.breakers = breakers
    if memory.orders_breaker is not None:
        _adopt(decisions.orders, memory.orders_breaker)
    if memory.scorer is not None and decisions.scorer is not None:
        settings = decisions.scorer.settings  # the configuration given now, not the stored
        _adopt(decisions.scorer, memory.scorer)
        decisions.scorer.settings = settings
    if memory.history is not None:
        _adopt(decisions.history, memory.history)
    if decisions.models is not None:
        decisions.models.restore_drift(memory.drift)
    if isinstance(clock, ReplayClock):
        clock.advance_to(memory.clock_ns)


def _adopt(target: object, source: object) -> None:
    """Give `target` the state of `source`, an object of the same class."""
    if type(target) is not type(source):
        raise pickle.UnpicklingError(
            f"checkpoint holds a {type(source).__name__} where a {type(target).__name__} is"
        )
    if hasattr(source, "__dict__"):
        vars(target).update(vars(source))
    for cls in type(source).__mro__:
        for slot in getattr(cls, "__slots__", ()):
            if slot != "__dict__" and hasattr(source, slot):
                object.__setattr__(target, slot, getattr(source, slot))


_ALLOWED = {
    ("builtins", name)
    for name in ("dict", "list", "set", "frozenset", "tuple", "int", "float", "complex", "str")
} | {
    ("builtins", "bytes"),
    ("builtins", "bytearray"),
    ("builtins", "bool"),
    ("builtins", "slice"),
    ("collections", "deque"),
    ("collections", "OrderedDict"),
    ("collections", "defaultdict"),
    ("copyreg", "_reconstructor"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
}


class _Pickler(pickle.Pickler):
    """Leaves configuration out: a resumed replay runs under the configuration it is given."""

    def persistent_id(self, obj: Any) -> str | None:
        if isinstance(obj, BaseModel):
            return type(obj).__name__
        return None


class _SafeUnpickler(pickle.Unpickler):
    """Builds this package's classes (never calls its functions), numpy arrays and scalars,
    and builtin containers; anything else in a checkpoint is refused."""

    def __init__(self, file: io.BytesIO, settings: Settings) -> None:
        super().__init__(file)
        self._sections = {
            type(getattr(settings, name)).__name__: getattr(settings, name)
            for name in type(settings).model_fields
            if isinstance(getattr(settings, name), BaseModel)
        }

    def persistent_load(self, pid: Any) -> Any:
        try:
            return self._sections[pid]
        except (KeyError, TypeError):
            raise pickle.UnpicklingError(f"checkpoint refers to unknown settings {pid!r}") from None

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        if module.startswith("mikrobot_tui."):
            found = super().find_class(module, name)
            if isinstance(found, type):
                return found
        raise pickle.UnpicklingError(f"refusing {module}.{name} in a checkpoint")
