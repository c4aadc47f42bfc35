"""Strategies: objects that see closed bars (or ticks) and may return a Signal.

A strategy keeps its own per-symbol state, never sizes or places orders (the orchestrator does)
and never reads a clock: time comes from the bars.

A strategy that asks for ticks (`TickStrategy`, timeframe "tick") gets each batch's tradeable
ticks of each symbol at once as a TICK_DTYPE array, and answers with the positions in that
array where it decides, each with its Signal: vectorised work over the batch, and decisions
that still happen in tick order, at the tick that caused them, whatever the batching.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol, runtime_checkable

import numpy as np

from mikrobot_tui.domain.market import Bar
from mikrobot_tui.domain.orders import Signal
from mikrobot_tui.trading.strategies.bos_retest import BosRetest
from mikrobot_tui.trading.strategies.ema_cross import EmaCross
from mikrobot_tui.trading.strategies.ema_tick_cross import EmaTickCross
from mikrobot_tui.trading.strategies.params import Param, resolve
from mikrobot_tui.trading.strategies.rsi_reversion import RsiReversion

__all__ = [
    "STRATEGIES",
    "TICK",
    "BosRetest",
    "EmaCross",
    "EmaTickCross",
    "Param",
    "RsiReversion",
    "Strategy",
    "TickStrategy",
    "build_strategy",
    "strategy_params",
    "strategy_specs",
]

TICK = "tick"  # the timeframe of a strategy that asks for ticks


@runtime_checkable
class Strategy(Protocol):
    """A strategy declares `PARAMS` (params.Param: name, type, default, range), the bars it
    is shown (`timeframes`, e.g. ("M1", "M5"); `timeframe` is its main one) and answers each
    closed bar of those with a Signal or None. A signal carries its side, its entry (market,
    or limit at a price), stop and take-profit distances, a confidence and a reason.

    Timeframes are "M1", "M5", "M15" and "H1". Optional hooks, called once when the engine is
    built: `bind(instruments)` gets the venue's instruments (pip sizes, asset classes), and
    `bind_history(history)` gets the engine's `trading.timeframes.BarHistory`, which holds
    the last closed bars of every symbol on every timeframe, whatever the strategy declared.
    At a bar, `history.last(symbol, "H1", 50)` gives the H1 bars closed at or before that
    bar's closing tick (the bar itself included), never a later one, in a replay, live and
    during warm-up alike."""

    name: str  # unique per parameter set, e.g. "ema_cross(5,20)"
    timeframe: str  # the bars it trades on, e.g. "M1"

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


STRATEGIES: dict[str, type] = {
    "ema_cross": EmaCross,
    "bos_retest": BosRetest,
    "rsi_reversion": RsiReversion,
    "ema_tick_cross": EmaTickCross,
}


def strategy_specs(name: str) -> tuple[Param, ...]:
    """A registered strategy's declared parameters (name, type, default, range, meaning)."""
    return tuple(_lookup(name).PARAMS)


def strategy_params(name: str) -> dict[str, float | str]:
    """The parameters a registered strategy accepts, with their defaults."""
    return {p.name: p.default for p in strategy_specs(name)}


def _lookup(name: str) -> type:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ValueError(
            f"unknown strategy {name!r}; choose one of {', '.join(sorted(STRATEGIES))}"
        ) from None


def build_strategy(name: str, params: Mapping[str, float | str]) -> Strategy:
    """Build a registered strategy from config params.

    Raises ValueError naming the unknown strategy or the unknown / bad parameter and listing
    the allowed ones with their ranges.
    """
    specs = strategy_specs(name)
    try:
        values = resolve(specs, params)
        strategy = STRATEGIES[name](**values)
    except ValueError as exc:
        allowed = ", ".join(p.name for p in specs)
        raise ValueError(f"{name}: {exc}; allowed: {allowed}") from None
    return strategy
