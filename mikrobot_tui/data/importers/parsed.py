"""What every importer returns: ticks or bars as numpy arrays, and the rows it turned down."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mikrobot_tui.data.importers.text import Reject


@dataclass
class Parsed:
    format: str  # one of FORMATS
    symbols: list[str]  # `sym` in the arrays indexes this list
    rows: int  # data lines read: good rows + rejects
    rejects: list[Reject] = field(default_factory=list)  # (line, reason), by line
    ticks: np.ndarray | None = None  # TICK_DTYPE, file order (per symbol in time order)
    bars: np.ndarray | None = None  # BAR_DTYPE, one period (`period_ns`), time order
    raw: dict[int, str] = field(default_factory=dict)  # each rejected line's text, by line

    @property
    def good(self) -> int:
        return self.rows - len(self.rejects)

    @property
    def times(self) -> np.ndarray:
        """Tick event times, or bar open times."""
        if self.ticks is not None:
            return self.ticks["ts_event"]
        assert self.bars is not None
        return self.bars["ts_open"]
