"""Strategies: objects that see closed bars (or ticks) and may return a Signal.

A strategy keeps its own per-symbol state, never sizes or places orders (the orchestrator does)
and never reads a clock: time comes from the bars.

A strategy that asks for ticks (`TickStrategy`, timeframe "tick") gets each batch's tradeable
ticks of each symbol at once as a TICK_DTYPE array, and answers with the positions in that
array where it decides, each with its Signal: vectorised work over the batch, and decisions
that still happen in tick order, at the tick that caused them, whatever the batching.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Protocol, runtime_checkable

import numpy as np

from mikrobot_tui.domain.market import Bar
from mikrobot_tui.domain.orders import Signal
from mikrobot_tui.trading.strategies.ema_cross import EmaCross

__all__ = [
    "STRATEGIES",
    "TICK",
    "EmaCross",
    "Strategy",
    "TickStrategy",
    "build_strategy",
    "strategy_params",
]

TICK = "tick"  # the timeframe of a strategy that asks for ticks


@runtime_checkable
class Strategy(Protocol):
    name: str  # unique per parameter set, e.g. "ema_cross(5,20)"
    timeframe: str  # the bars it wants, e.g. "M1"

    def on_bar(self, bar: Bar) -> Signal | None: ...


@runtime_checkable
class TickStrategy(Protocol):
    name: str
    timeframe: str  # TICK

    def on_bar(self, bar: Bar) -> Signal | None: ...

    def on_ticks(self, symbol: str, ticks: np.ndarray) -> Iterable[tuple[int, Signal]]:
        """This batch's tradeable ticks of `symbol`, in arrival order; (index into `ticks`,
        signal) for each decision, indices ascending."""
        ...


STRATEGIES: dict[str, type] = {"ema_cross": EmaCross}


def strategy_params(name: str) -> dict[str, float]:
    """The parameters a registered strategy accepts, with their defaults."""
    cls = _lookup(name)
    return {
        p.name: p.default
        for p in inspect.signature(cls).parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


def _lookup(name: str) -> type:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ValueError(
            f"unknown strategy {name!r}; choose one of {', '.join(sorted(STRATEGIES))}"
        ) from None


def build_strategy(name: str, params: dict[str, float]) -> Strategy:
    """Build a registered strategy from config params.

    Raises ValueError naming the unknown strategy or the unknown / bad parameter and listing
    the allowed ones.
    """
    allowed = strategy_params(name)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(
            f"{name}: unknown param {', '.join(repr(u) for u in unknown)}; "
            f"allowed: {', '.join(f'{k} (default {v})' for k, v in allowed.items())}"
        )
    try:
        strategy = STRATEGIES[name](**params)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}; allowed: {', '.join(allowed)}") from None
    return strategy
