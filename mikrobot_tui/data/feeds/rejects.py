"""Frames a feed could not turn into a tick: kept with their raw text for the `rejects` table.

The quality monitor rejects ticks; a live feed also meets frames that never become one (not
JSON, a field missing or of the wrong type, a price that is not a number, a crossed book, a
stream nobody subscribed). The feed counts each in a `RejectLog` and the engine drains it
(`take`) after every batch, storing the rows with source `feed:<name>`, the reason and the
frame as received. Bounded: past `max_kept` waiting rows the oldest go, and are counted.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass

RAW_MAX = 2000  # characters of a frame kept


@dataclass(frozen=True, slots=True)
class FeedReject:
    ts_recv: int  # wall clock, ns
    feed: str  # the feed's name, e.g. "binance"
    symbol: str  # "" when the frame names no symbol we know
    reason: str
    raw: str  # the frame as received, cut at RAW_MAX characters


class RejectLog:
    def __init__(self, feed: str, max_kept: int = 10_000) -> None:
        self.feed = feed
        self.counts: Counter[str] = Counter()  # reason -> frames, since the start
        self.total = 0
        self.lost = 0  # rows dropped before the engine took them
        self._rows: deque[FeedReject] = deque(maxlen=max_kept)

    def add(self, ts_recv: int, symbol: str, reason: str, raw: str) -> None:
        self.total += 1
        self.counts[reason] += 1
        if len(self._rows) == self._rows.maxlen:
            self.lost += 1
        self._rows.append(FeedReject(ts_recv, self.feed, symbol, reason, raw[:RAW_MAX]))

    def take(self) -> list[FeedReject]:
        out = list(self._rows)
        self._rows.clear()
        return out
