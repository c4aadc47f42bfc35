"""A mean-reversion baseline for A/B tests: fade RSI extremes on M1 closes.

RSI(period) (Wilder, as `trading.indicators.rsi`) crossing back up through `oversold` is a buy;
crossing back down through `overbought` a sell: the move that stretched the price is
fading. The stop is `stop_atr` x ATR(atr_period) from the close, the target `reward_risk`
times that. Nothing while the ATR is not ready or is 0.
"""

from __future__ import annotations

from dataclasses import dataclass

from mikrobot_tui.domain.market import TIMEFRAMES, Bar
from mikrobot_tui.domain.orders import Side, Signal
from mikrobot_tui.trading.indicators import StreamingATR, StreamingRSI
from mikrobot_tui.trading.strategies.params import Param, resolve


@dataclass(slots=True)
class _State:
    rsi: StreamingRSI
    atr: StreamingATR
    last_ts_open: int | None = None
    previous: float | None = None  # the RSI of the bar before


class RsiReversion:
    timeframe = "M1"
    timeframes = ("M1",)
    PARAMS = (
        Param("period", int, 14, 2, 500, "bars of the RSI"),
        Param("oversold", float, 30.0, 1, 49, "RSI crossing back up through this: buy"),
        Param("overbought", float, 70.0, 51, 99, "RSI crossing back down through this: sell"),
        Param("atr_period", int, 14, 1, 500, "bars of the Wilder ATR the stop is measured in"),
        Param("stop_atr", float, 1.5, 0, 50, "stop distance in ATRs", low_open=True),
        Param("reward_risk", float, 1.5, 0, 50, "take-profit distance in stops", low_open=True),
    )

    def __init__(self, **params: float) -> None:
        v = resolve(self.PARAMS, params)
        self.period, self.atr_period = int(v["period"]), int(v["atr_period"])
        self.oversold, self.overbought = float(v["oversold"]), float(v["overbought"])
        self.stop_atr, self.reward_risk = float(v["stop_atr"]), float(v["reward_risk"])
        self.name = f"rsi_reversion({self.period},{self.oversold:g},{self.overbought:g})"
        self.params = v
        self._states: dict[str, _State] = {}

    @property
    def warmup_bars(self) -> int:
        return max(self.period, self.atr_period) + 2

    def on_bar(self, bar: Bar) -> Signal | None:
        if bar.timeframe != self.timeframe:
            return None
        state = self._states.get(bar.symbol)
        if state is None:
            state = _State(StreamingRSI(self.period), StreamingATR(self.atr_period))
            self._states[bar.symbol] = state
        if state.last_ts_open is not None and bar.ts_open <= state.last_ts_open:
            return None
        state.last_ts_open = bar.ts_open
        rsi = state.rsi.update(bar.close)
        atr = state.atr.update(bar.high, bar.low, bar.close)
        previous, state.previous = state.previous, rsi
        if rsi is None or previous is None or atr is None or atr <= 0:
            return None
        if previous < self.oversold <= rsi:
            side, word, level = Side.BUY, "up through", self.oversold
        elif previous > self.overbought >= rsi:
            side, word, level = Side.SELL, "down through", self.overbought
        else:
            return None
        stop = self.stop_atr * atr
        return Signal(
            strategy=self.name,
            symbol=bar.symbol,
            side=side,
            ts=bar.ts_open + TIMEFRAMES[self.timeframe],
            price=bar.close,
            stop_distance=stop,
            take_profit_distance=self.reward_risk * stop,
            reason=f"RSI({self.period}) {previous:.1f} -> {rsi:.1f} crossed {word} {level:g}",
        )
