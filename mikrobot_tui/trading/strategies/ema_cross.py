"""EMA crossover on closed bars: buy when the fast EMA of closes crosses above the slow one.

EMAs and ATR use the TA-Lib definitions of `trading.indicators` (SMA-seeded EMA, Wilder ATR that
skips the first bar). A cross is a change in the sign of fast - slow between two bars where both
EMAs exist; a bar where they are exactly equal keeps the previous sign, so touching and turning
back is not a cross. The bar on which the slow EMA first appears only sets the starting side: no
signal there, because there is no earlier value to have crossed from.

The stop is `stop_atr` x ATR(atr_period) away from the close, the take-profit `reward_risk`
times the stop distance. No signal while the ATR is not ready or is 0 (a flat market gives no
stop to size against); a cross in that state is consumed, not deferred.

Signal.ts is the bar's close time (ts_open + period): the moment the decision can be made. The
engine overwrites it with the time of the tick that closed the bar, which is what the
latency model needs (invariant 2).
"""

from __future__ import annotations

from dataclasses import dataclass

from mikrobot_tui.domain.market import TIMEFRAMES, Bar
from mikrobot_tui.domain.orders import Side, Signal
from mikrobot_tui.trading.indicators import StreamingATR, StreamingEMA
from mikrobot_tui.trading.strategies.params import Param, resolve


@dataclass(slots=True)
class _SymbolState:
    fast: StreamingEMA
    slow: StreamingEMA
    atr: StreamingATR
    last_ts_open: int | None = None
    side: int = 0  # sign of fast - slow at the last bar where it was nonzero; 0 = not yet known
    bars: int = 0


class EmaCross:
    """EMA(fast) / EMA(slow) crossover on M1 closes, one independent state per symbol."""

    timeframe = "M1"
    timeframes = ("M1",)
    PARAMS = (
        Param("fast", int, 5, 1, 500, "bars of the fast EMA of closes"),
        Param("slow", int, 20, 2, 1000, "bars of the slow EMA; more than fast"),
        Param("atr_period", int, 14, 1, 500, "bars of the Wilder ATR the stop is measured in"),
        Param("stop_atr", float, 2.0, 0, 50, "stop distance in ATRs", low_open=True),
        Param("reward_risk", float, 1.5, 0, 50, "take-profit distance in stops", low_open=True),
    )

    def __init__(
        self,
        fast: float = 5,
        slow: float = 20,
        atr_period: float = 14,
        stop_atr: float = 2.0,
        reward_risk: float = 1.5,
    ) -> None:
        given = {
            "fast": fast,
            "slow": slow,
            "atr_period": atr_period,
            "stop_atr": stop_atr,
            "reward_risk": reward_risk,
        }
        v = resolve(self.PARAMS, given)
        self.fast, self.slow, self.atr_period = int(v["fast"]), int(v["slow"]), int(v["atr_period"])
        if self.fast >= self.slow:
            raise ValueError(f"fast must be < slow, got fast={self.fast}, slow={self.slow}")
        self.stop_atr, self.reward_risk = float(v["stop_atr"]), float(v["reward_risk"])
        self.name = f"ema_cross({self.fast},{self.slow})"
        self._period_ns = TIMEFRAMES[self.timeframe]
        self._states: dict[str, _SymbolState] = {}

    @property
    def params(self) -> dict[str, float]:
        return {
            "fast": self.fast,
            "slow": self.slow,
            "atr_period": self.atr_period,
            "stop_atr": self.stop_atr,
            "reward_risk": self.reward_risk,
        }

    @property
    def warmup_bars(self) -> int:
        """Bars a symbol needs before a signal is possible (slow EMA seed + one bar to cross)."""
        return max(self.slow + 1, self.atr_period + 1)

    def _state(self, symbol: str) -> _SymbolState:
        state = self._states.get(symbol)
        if state is None:
            state = _SymbolState(
                StreamingEMA(self.fast), StreamingEMA(self.slow), StreamingATR(self.atr_period)
            )
            self._states[symbol] = state
        return state

    def on_bar(self, bar: Bar) -> Signal | None:
        """Feed one closed bar; returns a Signal on the bar where the EMAs cross.

        Bars of another timeframe are ignored, and so is a bar of a symbol that does not start
        after the last one seen (a replayed or duplicated bar must not advance the EMAs twice).
        """
        if bar.timeframe != self.timeframe:
            return None
        state = self._state(bar.symbol)
        if state.last_ts_open is not None and bar.ts_open <= state.last_ts_open:
            return None
        state.last_ts_open = bar.ts_open
        state.bars += 1
        fast = state.fast.update(bar.close)
        slow = state.slow.update(bar.close)
        atr = state.atr.update(bar.high, bar.low, bar.close)
        if fast is None or slow is None:
            return None
        diff = fast - slow
        sign = (diff > 0) - (diff < 0)
        if sign == 0 or sign == state.side:
            return None
        previous, state.side = state.side, sign
        if previous == 0 or atr is None or atr <= 0:
            return None
        side = Side.BUY if sign > 0 else Side.SELL
        stop_distance = self.stop_atr * atr
        direction = "above" if sign > 0 else "below"
        return Signal(
            strategy=self.name,
            symbol=bar.symbol,
            side=side,
            ts=bar.ts_open + self._period_ns,
            price=bar.close,
            stop_distance=stop_distance,
            take_profit_distance=self.reward_risk * stop_distance,
            reason=(
                f"EMA({self.fast}) {fast:.6g} crossed {direction} EMA({self.slow}) {slow:.6g}; "
                f"ATR({self.atr_period}) {atr:.6g}"
            ),
        )
