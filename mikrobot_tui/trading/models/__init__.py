"""Predictive models for the house strategy's setups: datasets, training, serving.

A `Dataset` is one row per `bos_retest` setup that reached an entry: its features
(trading/features.py, FEATURE_NAMES order) at the entry's decision time and its labels, each
1.0, 0.0 or NaN (not known: the outcome did not happen inside the data, or the order was never
filled):

- `tp_first`: the trade the setup opened reached its take-profit before its stop, with the
  strategy's real fills (the paper venue's), from the event log;
- `retest_held`: after the entry, no M1 bar closed through the broken level by more than the
  strategy's tolerance within `HOLD_BARS` M1 bars;
- `false_break`: an M5 bar closed back through the broken level within `FALSE_BREAK_BARS` M5
  bars of the break.

Rows are in time order: validation is walk-forward, never a random split across time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LABELS = ("tp_first", "retest_held", "false_break")
HOLD_BARS = 15  # M1 bars after the entry that the retest must hold
FALSE_BREAK_BARS = 6  # M5 bars after the break in which a close back through is a false break


@dataclass(frozen=True)
class Dataset:
    features: np.ndarray  # (n, len(names)) float64, NaN where a feature is unknown
    names: tuple[str, ...]  # the feature names, trading.features.FEATURE_NAMES
    labels: dict[str, np.ndarray]  # LABELS -> (n,) float64 of 1.0, 0.0 or NaN
    ts: np.ndarray  # (n,) int64 ns, the setups' decision times, ascending
    symbols: np.ndarray  # (n,) str
    sources: tuple[str, ...] = ()  # the data files the rows came from

    def __len__(self) -> int:
        return len(self.ts)
