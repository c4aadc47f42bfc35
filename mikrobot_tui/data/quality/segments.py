"""The shape every check works on: a batch sorted by symbol, cut into one run per symbol."""

from __future__ import annotations

import numpy as np


class Segments:
    """The runs of one symbol in an array sorted by symbol: first and last position of each."""

    __slots__ = ("first", "last", "sym")

    def __init__(self, sym: np.ndarray, first: np.ndarray, last: np.ndarray) -> None:
        self.sym, self.first, self.last = sym, first, last

    @classmethod
    def of(cls, sym: np.ndarray) -> Segments:
        bounds = np.flatnonzero(sym[1:] != sym[:-1])
        first = np.empty(len(bounds) + 1, dtype=np.int64)
        first[0] = 0
        np.add(bounds, 1, out=first[1:])
        last = np.empty_like(first)
        last[:-1] = bounds
        last[-1] = len(sym) - 1
        return cls(sym[first], first, last)

    @property
    def length(self) -> np.ndarray:
        return self.last - self.first + 1

    def without(self, gone: np.ndarray) -> Segments:
        """The segments once the positions `gone` (ascending) are taken out, empty ones dropped."""
        lo = self.first - np.searchsorted(gone, self.first)
        hi = self.last - np.searchsorted(gone, self.last, side="right")
        keep = hi >= lo
        if keep.all():
            return Segments(self.sym, lo, hi)
        return Segments(self.sym[keep], lo[keep], hi[keep])


def select(ticks: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """ticks[mask], ten times faster: structured rows copied as opaque bytes."""
    if not ticks.flags.c_contiguous:
        return ticks[mask]
    raw = ticks.view(np.dtype((np.void, ticks.dtype.itemsize)))
    return raw[mask].view(ticks.dtype)
