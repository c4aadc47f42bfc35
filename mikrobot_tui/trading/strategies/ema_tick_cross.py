"""EMA crossover on every tick's mid: long on a cross up, short on a cross down, always in.

The definition (the benchmark strategy of DESIGN.md's speed figures, a contract):

- mid = (bid + ask) / 2 of each tick of the symbol, in arrival order;
- two EMAs of the mid with alpha = 2 / (n + 1) (`fast` 50 and `slow` 200 by default), both
  seeded with the first mid: e[0] = mid[0], then e[i] = alpha * mid[i] + (1 - alpha) * e[i-1],
  with `1 - alpha` computed once as a float. This is not the TA-Lib EMA of
  trading/indicators (seeded with an SMA): the strategy defines its own smoothing;
- diff = fast - slow; from the symbol's tick index `slow` on (the 201st tick, index 200, by
  default: the slow EMA has seen `slow` ticks after its seed), diff > 0 after diff <= 0 at the
  tick before is a cross up, diff < 0 after diff >= 0 a cross down;
- a cross up asks for a long of `units` (100,000 by default, so 1 lot of EURUSD), a short of
  the symbol closed first; a cross down for a short, a long closed first. No stop, no
  take-profit: the signal carries its size (`Signal.units`) and asks the engine to close the
  opposite positions first (`Signal.reverse`); engine/decisions.py does both, so a reversal is
  two orders and two fills at the same tick when the latency is 0.

The work is vectorised per batch (`on_ticks`): the EMA recurrence runs in scipy.signal.lfilter,
with b = [alpha], a = [1, -(1 - alpha)] and the initial condition zi = (1 - alpha) * e_prev,
which computes y[i] = alpha * x[i] + (1 - alpha) * y[i-1] in that order of operations, so its
values equal the plain-Python recurrence above bit for bit (tests/test_ema_tick_cross.py holds
it to that, in one batch and in many). Python runs per cross, never per tick. Each symbol's
state (the last EMAs, the last diff and the tick count) is carried from batch to batch, so any
batching gives the same crosses at the same ticks.

A restart on the same database does not carry the EMAs over (they live in a replay's
checkpoint, engine/checkpoint.py, not in the log): a live restart seeds them afresh.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mikrobot_tui.domain.market import Bar
from mikrobot_tui.domain.orders import Side, Signal
from mikrobot_tui.trading.strategies.params import Param, resolve

TICK = "tick"  # as trading.strategies.TICK (that package imports this module)


@dataclass(slots=True)
class _SymbolState:
    fast: float  # the EMAs at the symbol's last tick
    slow: float
    diff: float  # fast - slow at the last tick
    ticks: int  # ticks of the symbol seen so far


class EmaTickCross:
    """EMA(fast) / EMA(slow) crossover on tick mids, always in the market after the first cross."""

    timeframe = TICK
    PARAMS = (
        Param("fast", int, 50, 1, 100_000, "ticks of the fast EMA of the mid"),
        Param("slow", int, 200, 2, 1_000_000, "ticks of the slow EMA; more than fast"),
        Param("units", float, 100_000, 0, 1e12, "the position's size in units", low_open=True),
    )

    def __init__(self, fast: float = 50, slow: float = 200, units: float = 100_000) -> None:
        v = resolve(self.PARAMS, {"fast": fast, "slow": slow, "units": units})
        self.fast, self.slow, self.units = int(v["fast"]), int(v["slow"]), float(v["units"])
        if self.fast >= self.slow:
            raise ValueError(f"fast must be < slow, got fast={self.fast}, slow={self.slow}")
        self.params = {"fast": self.fast, "slow": self.slow, "units": self.units}
        self.name = f"ema_tick_cross({self.fast},{self.slow})"
        self._alpha_fast = 2 / (self.fast + 1)
        self._alpha_slow = 2 / (self.slow + 1)
        self._states: dict[str, _SymbolState] = {}
        # scipy takes about a second to import: paid here, when the strategy is built (the
        # engines that never run it never pay), not at its first batch of ticks
        import scipy.signal  # noqa: F401

    def on_bar(self, bar: Bar) -> Signal | None:
        return None  # ticks only

    def emas(self, symbol: str, ticks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The batch's fast and slow EMAs and the symbol's tick indices, the state moved on."""
        from scipy.signal import lfilter  # imported already, when the strategy was built

        mid = (ticks["bid"] + ticks["ask"]) / 2
        n = len(mid)
        state = self._states.get(symbol)
        if state is None:
            first = float(mid[0])
            state = self._states[symbol] = _SymbolState(first, first, 0.0, 0)
            fast, slow = np.empty(n), np.empty(n)
            fast[0] = slow[0] = first
            rest, at = mid[1:], 1
        else:
            fast, slow = np.empty(n), np.empty(n)
            rest, at = mid, 0
        if len(rest):
            for out, alpha, last in (
                (fast, self._alpha_fast, state.fast),
                (slow, self._alpha_slow, state.slow),
            ):
                keep = 1 - alpha
                out[at:] = lfilter([alpha], [1.0, -keep], rest, zi=[keep * last])[0]
        index = state.ticks + np.arange(n)
        state.fast, state.slow = float(fast[-1]), float(slow[-1])
        state.ticks += n
        return fast, slow, index

    def on_ticks(self, symbol: str, ticks: np.ndarray) -> list[tuple[int, Signal]]:
        """(index, signal) for each cross in the batch; eager, so the state moves on even when
        nobody reads the answer."""
        if len(ticks) == 0:
            return []
        state = self._states.get(symbol)
        before = 0.0 if state is None else state.diff
        fast, slow, index = self.emas(symbol, ticks)
        diff = fast - slow
        self._states[symbol].diff = float(diff[-1])
        prev = np.empty_like(diff)
        prev[0] = before
        prev[1:] = diff[:-1]
        ready = index >= self.slow
        up = ready & (diff > 0) & (prev <= 0)
        down = ready & (diff < 0) & (prev >= 0)
        return [
            (i, self._signal(symbol, Side.BUY if up[i] else Side.SELL, ticks, i, fast, slow))
            for i in np.flatnonzero(up | down).tolist()
        ]

    def _signal(
        self, symbol: str, side: Side, ticks: np.ndarray, i: int, fast: np.ndarray, slow: np.ndarray
    ) -> Signal:
        way = "above" if side is Side.BUY else "below"
        return Signal(
            strategy=self.name,
            symbol=symbol,
            side=side,
            ts=int(ticks["ts_event"][i]),
            price=float(ticks["bid"][i] + ticks["ask"][i]) / 2,
            stop_distance=0.0,  # no stop: the signal is sized by its units
            take_profit_distance=0.0,
            reason=(
                f"tick EMA({self.fast}) {fast[i]:.6g} crossed {way} EMA({self.slow}) {slow[i]:.6g}"
            ),
            units=self.units,
            reverse=True,
        )
