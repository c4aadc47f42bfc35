"""The house strategy: a break of structure on M5, entered on an M1 retest of the broken level.

1. Structure (M5). A swing high is an M5 bar whose high is above the `swing_width` highs
   before it and at least as high as the `swing_width` after it (a fractal, as
   `trading.indicators.swings` defines it); it is confirmed `swing_width` bars later.
2. Break (M5). A close above the last confirmed, unbroken swing high is a bullish break of
   structure; a close below the last swing low a bearish one. The broken level is the swing's
   price. The ATR gate first: ATR(atr_period) of M5 must lie between `atr_min_pips` and
   `atr_max_pips` (forex; other asset classes use `GATES_BPS` of the price), so a dead or a wild
   market sets nothing up.
3. Retest (M1). Within `expiry_bars` M1 bars the price must come back to the level: for a
   bullish break an M1 low within `tolerance_pips` of the level (not below it by more). Then
   an M1 candle that closes back in the break's direction (a bullish candle closing above the
   level) is the entry, at market.
   - An M1 close beyond the level on the wrong side by more than the tolerance fails the setup.
   - No retest and entry within `expiry_bars` M1 bars: the setup expires.
4. Exits. The stop goes beyond the retest's extreme or `stop_atr` ATRs (M5) from the entry,
   whichever is farther; the take-profit at `reward_risk` (2.5) times that.

A symbol holds at most one setup; a new break replaces it. The README draws a worked example.

Features (trading/features.py). Given a sink (`record_setups`), the strategy keeps a
FeatureBook of every M1, M5 and H1 bar it is shown and hands the sink each entry's setup and
features, with the spread and the data quality at the decision tick when the engine offers
them (`bind_market`): the rows a model is trained on (engine/dataset.py).

A model (`model` = a trained model's name, `mikrobot model list`). The engine loads it and
hands the strategy its predictor (`bind_model`); each entry's features then get a probability
of reaching the take-profit first, and only an entry whose probability is at least
`threshold` is signalled, with that probability as its confidence (the orchestrator's score
uses it). The others are counted (`filtered`), not signalled.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from mikrobot_tui.domain.instruments import (
    ATR_BANDS_BPS,
    PIP_CLASSES,
    Instrument,
    default_instruments,
)
from mikrobot_tui.domain.market import TIMEFRAMES, Bar
from mikrobot_tui.domain.orders import Side, Signal
from mikrobot_tui.trading.features import FeatureBook, SetupPoint
from mikrobot_tui.trading.indicators import StreamingATR, StreamingSwings
from mikrobot_tui.trading.strategies.params import Param, resolve

GATES_BPS = ATR_BANDS_BPS  # the gate for asset classes not counted in pips
NAN = float("nan")

SetupSink = Callable[[SetupPoint, np.ndarray], None]
# (the setup, its features) -> the probability of the take-profit first
Predictor = Callable[[SetupPoint, np.ndarray], float]
# the market at the decision point: symbol -> (spread, data-quality score), NaN when unknown
MarketView = Callable[[str], tuple[float, float]]


@dataclass(slots=True)
class _Setup:
    side: Side
    level: float
    bars_left: int
    atr: float  # M5 ATR when the break happened (price units)
    bar: Bar  # the M5 bar that broke the level
    touched: bool = False  # the retest reached the level
    extreme: float = 0.0  # the retest's low (bullish) or high (bearish) so far


@dataclass(slots=True)
class _Symbol:
    atr: StreamingATR
    swings: StreamingSwings
    swing_high: float | None = None  # last confirmed, not yet broken
    swing_low: float | None = None
    last_m5: int | None = None
    last_m1: int | None = None
    setup: _Setup | None = None
    log: list[str] = field(default_factory=list)


class BosRetest:
    """M5 break of structure, M1 retest; one independent state per symbol."""

    timeframe = "M1"
    timeframes = ("M1", "M5", "H1")  # H1 only for the features' trend and ranges
    PARAMS = (
        Param("swing_width", int, 2, 1, 10, "M5 bars on each side of a swing (fractal width)"),
        Param("tolerance_pips", float, 0.8, 0, 100, "how near the level a retest must come"),
        Param("expiry_bars", int, 15, 1, 1000, "M1 bars a setup waits for its retest entry"),
        Param("atr_period", int, 14, 1, 200, "M5 bars of the Wilder ATR"),
        Param("atr_min_pips", float, 4.0, 0, 10_000, "ATR gate, forex: below is a dead market"),
        Param("atr_max_pips", float, 15.0, 0, 10_000, "ATR gate, forex: above is a wild one"),
        Param("stop_atr", float, 0.5, 0, 20, "least stop distance in M5 ATRs", low_open=True),
        Param("reward_risk", float, 2.5, 0, 50, "take-profit in stops (R)", low_open=True),
        Param("model", str, "", 0, 0, "a trained model's name: entries it rates low are skipped"),
        Param("threshold", float, 0.5, 0, 1, "the least probability the model must give"),
    )

    def __init__(self, **params: float) -> None:
        v = resolve(self.PARAMS, params)
        self.swing_width = int(v["swing_width"])
        self.tolerance_pips = float(v["tolerance_pips"])
        self.expiry_bars = int(v["expiry_bars"])
        self.atr_period = int(v["atr_period"])
        self.atr_min_pips, self.atr_max_pips = float(v["atr_min_pips"]), float(v["atr_max_pips"])
        if self.atr_min_pips >= self.atr_max_pips:
            raise ValueError(
                f"atr_min_pips must be < atr_max_pips, got {self.atr_min_pips}, {self.atr_max_pips}"
            )
        self.stop_atr, self.reward_risk = float(v["stop_atr"]), float(v["reward_risk"])
        self.model, self.threshold = str(v["model"]), float(v["threshold"])
        self.name = f"bos_retest({self.swing_width},{self.tolerance_pips:g})"
        if self.model:
            self.name += f"+{self.model}"
        self.params = v
        self._instruments: Mapping[str, Instrument] = default_instruments()
        self._states: dict[str, _Symbol] = {}
        self._book: FeatureBook | None = FeatureBook() if self.model else None
        self._sink: SetupSink | None = None
        self._market: MarketView | None = None
        self._predict: Predictor | None = None
        self.filtered = 0  # entries the model rated below the threshold

    def record_setups(self, sink: SetupSink) -> None:
        """From now on keep the features of every bar and hand `sink` each entry's setup and
        features (call it before the first bar: the features need the bars before a setup)."""
        self._book = self._book or FeatureBook()
        self._sink = sink

    def bind_model(self, predict: Predictor) -> None:
        """The predictor of the model named by `model` (the engine loads it)."""
        self._predict = predict

    def bind_market(self, market: MarketView) -> None:
        """The engine's view of the spread and the data quality at the decision point."""
        self._market = market

    def __getstate__(self) -> dict[str, object]:
        # a checkpoint keeps the strategy's memory, not the engine's callbacks it was handed
        callbacks = ("_sink", "_market", "_predict")
        return {k: v for k, v in vars(self).items() if k not in callbacks}

    @property
    def warmup_bars(self) -> int:
        return max(self.atr_period + 1, 2 * self.swing_width + 1) * 5  # in M1 bars

    def bind(self, instruments: Mapping[str, Instrument]) -> None:
        """The venue's instruments: pip sizes and asset classes for the tolerance and the gate."""
        self._instruments = {**self._instruments, **instruments}

    def _state(self, symbol: str) -> _Symbol:
        state = self._states.get(symbol)
        if state is None:
            state = _Symbol(StreamingATR(self.atr_period), StreamingSwings(self.swing_width))
            self._states[symbol] = state
        return state

    def on_bar(self, bar: Bar) -> Signal | None:
        if self._book is not None:
            self._book.on_bar(bar)
        state = self._state(bar.symbol)
        if bar.timeframe == "M5":
            if state.last_m5 is not None and bar.ts_open <= state.last_m5:
                return None
            state.last_m5 = bar.ts_open
            self._on_m5(bar, state)
            return None
        if bar.timeframe == "M1":
            if state.last_m1 is not None and bar.ts_open <= state.last_m1:
                return None
            state.last_m1 = bar.ts_open
            return self._on_m1(bar, state)
        return None

    # ---------------------------------------------------------------- M5: structure and breaks

    def _on_m5(self, bar: Bar, state: _Symbol) -> None:
        atr = state.atr.update(bar.high, bar.low, bar.close)
        high, low = state.swings.update(bar.high, bar.low)  # confirmed swing_width bars late
        if high is not None:
            state.swing_high = high
        if low is not None:
            state.swing_low = low
        side, level = None, None
        if state.swing_high is not None and bar.close > state.swing_high:
            side, level, state.swing_high = Side.BUY, state.swing_high, None
        elif state.swing_low is not None and bar.close < state.swing_low:
            side, level, state.swing_low = Side.SELL, state.swing_low, None
        if side is None or level is None or atr is None:
            return
        if not self._gate_open(bar.symbol, atr, bar.close):
            return
        state.setup = _Setup(side, level, self.expiry_bars, atr, bar)

    def _gate_open(self, symbol: str, atr: float, price: float) -> bool:
        inst = self._instruments.get(symbol)
        if inst is None:
            return False
        if inst.asset_class in PIP_CLASSES:
            pips = inst.pips(atr)
            return self.atr_min_pips <= pips <= self.atr_max_pips
        low, high = GATES_BPS.get(inst.asset_class, (0.0, float("inf")))
        bps = atr / price * 10_000 if price > 0 else 0.0
        return low <= bps <= high

    # ---------------------------------------------------------------- M1: retest and entry

    def _on_m1(self, bar: Bar, state: _Symbol) -> Signal | None:
        setup = state.setup
        if setup is None:
            return None
        inst = self._instruments.get(bar.symbol)
        if inst is None:
            return None
        tol = self.tolerance_pips * inst.pip_size
        buy = setup.side is Side.BUY
        level = setup.level
        # a close through the level by more than the tolerance: the break failed
        if (buy and bar.close < level - tol) or (not buy and bar.close > level + tol):
            state.setup = None
            return None
        reached = bar.low <= level + tol if buy else bar.high >= level - tol
        if reached:
            extreme = bar.low if buy else bar.high
            if not setup.touched:
                setup.touched, setup.extreme = True, extreme
            else:
                setup.extreme = min(setup.extreme, extreme) if buy else max(setup.extreme, extreme)
        closes_back = (
            bar.close > level and bar.close > bar.open
            if buy
            else bar.close < level and bar.close < bar.open
        )
        if setup.touched and closes_back:
            state.setup = None
            signal = self._signal(bar, setup, inst)
            if self._book is None:
                return signal
            point, features = self._features(signal, setup)
            if self._sink is not None:
                self._sink(point, features)
            return self._judged(signal, point, features)
        setup.bars_left -= 1
        if setup.bars_left <= 0:
            state.setup = None
        return None

    def _signal(self, bar: Bar, setup: _Setup, inst: Instrument) -> Signal:
        buy = setup.side is Side.BUY
        entry = bar.close
        beyond = entry - setup.extreme if buy else setup.extreme - entry
        stop = max(beyond, self.stop_atr * setup.atr, inst.tick_size)
        word = "above" if buy else "below"
        return Signal(
            strategy=self.name,
            symbol=bar.symbol,
            side=setup.side,
            ts=bar.ts_open + TIMEFRAMES["M1"],
            price=entry,
            stop_distance=stop,
            take_profit_distance=self.reward_risk * stop,
            reason=(
                f"M5 broke {'up' if buy else 'down'} through the swing at {setup.level:.6g}; "
                f"M1 retested to {setup.extreme:.6g} and closed {word} it at {entry:.6g}; "
                f"ATR(M5) {self._atr_words(inst, setup.atr, entry)}"
            ),
        )

    def _judged(self, signal: Signal, point: SetupPoint, features: np.ndarray) -> Signal | None:
        """The signal with the model's probability as its confidence, or None below the
        threshold; unchanged without a model."""
        if not self.model:
            return signal
        if self._predict is None:
            raise RuntimeError(f"model {self.model!r} was never loaded (bind_model)")
        p = float(self._predict(point, features))
        if p < self.threshold:
            self.filtered += 1
            return None
        reason = f"{signal.reason}; model {self.model} gives p={p:.2f}"
        return replace(signal, confidence=p, reason=reason)

    def _features(self, signal: Signal, setup: _Setup) -> tuple[SetupPoint, np.ndarray]:
        assert self._book is not None
        spread, quality = NAN, NAN
        if self._market is not None:
            spread, quality = self._market(signal.symbol)
        point = SetupPoint(
            signal.symbol,
            1 if setup.side is Side.BUY else -1,
            setup.level,
            setup.bar,
            signal.ts,
            signal.price,
            spread,
            quality,
        )
        return point, self._book.features(point)

    @staticmethod
    def _atr_words(inst: Instrument, atr: float, price: float) -> str:
        if inst.asset_class in PIP_CLASSES:
            return f"{inst.pips(atr):.1f} pips"
        return f"{atr / price * 10_000:.1f} bps of the price"
