"""How much the orchestrator trusts a signal: a confidence from 0 to 1, factor by factor.

Each factor scores the signal from 0 (against it) to 1 (for it); the confidence is their
weighted mean (`[orchestrator] weights`), and each factor's contribution is its weighted score
over the sum of the weights, so the contributions add up to the confidence:

- trend: the higher timeframe's EMA (`trend_timeframe`, `trend_period`; H1 EMA(20) by
  default). Price on the signal's side of the EMA and the EMA sloping that way: 1; one of the
  two: 0.5; neither: 0. Not enough bars yet: 0.5, and it says so.
- atr: Wilder's ATR (`atr_timeframe`, `atr_period`; M5 ATR(14)) inside its band (forex
  `atr_band_pips`, other classes `ATR_BANDS_BPS` of the price): 1; outside, it falls linearly
  to 0 at half the low edge or twice the high edge.
- session: one of the symbol's sessions (`sessions`, per symbol or asset class: London and New
  York for EURUSD, also Asia for the yen) open: 1; otherwise `off_session_score`.
- spread: the spread against the ATR, 1 at no spread falling to 0 at `max_spread_atr`.
- quality: the symbol's data-quality score at the decision, from the breaker's floor
  (`breakers.min_quality`, 0) to a clean feed (1).
- record: the strategy's mean R over its last `record_trades` closed trades in the account:
  +1 R or better 1, -1 R or worse 0, linear between; fewer than `record_min_trades`: 0.5.
  A signal without a stop (one that carries its own size) has no R to be judged by: the
  factor is left out (weight 0) and the others carry the confidence, unless it is the only
  weighted factor, when it stays neutral. No factor refuses a signal for having no stop.
- signal: the strategy's own confidence.

The verdict: at or above `approve_at` the signal is approved at full risk; below
`refuse_below` it is refused; between the two it is resized, its risk multiplied by
confidence / approve_at. Every factor is a pure function of what happened before the decision
(bars closed, the quote at the decision tick), so a replay scores every signal the same.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from mikrobot_tui.config import OrchestratorSettings
from mikrobot_tui.domain.hours import session_words, sessions_open
from mikrobot_tui.domain.instruments import ATR_BANDS_BPS, PIP_CLASSES, Instrument
from mikrobot_tui.domain.market import Bar
from mikrobot_tui.domain.orders import Side, Signal
from mikrobot_tui.trading.indicators import StreamingATR, StreamingEMA

NEUTRAL = 0.5  # a factor that cannot tell yet neither helps nor hurts


class Verdict(StrEnum):
    APPROVE = "approve"
    RESIZE = "resize"
    REFUSE = "refuse"


@dataclass(frozen=True, slots=True)
class Factor:
    name: str
    score: float  # 0 against the signal .. 1 for it
    weight: float
    contribution: float  # weight x score / sum of weights: the contributions sum to confidence
    value: float | None  # what was measured (pips, a ratio, R), None when nothing could be
    why: str


@dataclass(frozen=True, slots=True)
class Score:
    confidence: float
    verdict: Verdict
    risk_multiplier: float  # 1 approved, confidence / approve_at resized, 0 refused
    factors: tuple[Factor, ...]

    @property
    def reason(self) -> str:
        """The refusal in a line: the confidence and the factors that pulled it down most."""
        weakest = sorted((f for f in self.factors if f.weight > 0), key=lambda f: f.score)[:2]
        low = "; ".join(f"{f.name}: {f.why}" for f in weakest)
        return f"confidence {self.confidence:.2f} {self.verdict}: {low}"

    def to_payload(self) -> dict[str, Any]:
        return {
            "confidence": round(self.confidence, 6),
            "verdict": str(self.verdict),
            "risk_multiplier": round(self.risk_multiplier, 6),
            "factors": [  # by hand: dataclasses.asdict deep-copies, 60 us a score
                {
                    "name": f.name,
                    "score": round(f.score, 6),
                    "weight": round(f.weight, 6),
                    "contribution": round(f.contribution, 6),
                    "value": None if f.value is None else round(f.value, 6),
                    "why": f.why,
                }
                for f in self.factors
            ],
        }


@dataclass(slots=True)
class _Context:
    """What the scorer keeps per symbol: the trend EMA (with its last value for the slope) and
    the ATR, each fed the closed bars of its timeframe."""

    ema: StreamingEMA
    atr: StreamingATR
    ema_before: float | None = None
    trend_bars: int = 0
    last_close: float | None = None


class SignalScorer:
    """Scores signals from the bars it has been fed (`note_bar`) and the decision's facts."""

    # A restart warms the scorer from stored bars as it warms a strategy (engine/warmup.py):
    # it is shown the bars of `timeframes`, enough to cover `warmup_bars` M1 bars.
    timeframe = "M1"

    def __init__(self, settings: OrchestratorSettings) -> None:
        self.settings = settings
        self.timeframes = (settings.trend_timeframe, settings.atr_timeframe)
        minutes = {"M1": 1, "M5": 5, "M15": 15, "H1": 60}
        self.warmup_bars = max(
            (settings.trend_period + 1) * minutes[settings.trend_timeframe],
            (settings.atr_period + 1) * minutes[settings.atr_timeframe],
        )
        self._symbols: dict[str, _Context] = {}

    def _context(self, symbol: str) -> _Context:
        ctx = self._symbols.get(symbol)
        if ctx is None:
            s = self.settings
            ctx = self._symbols[symbol] = _Context(
                StreamingEMA(s.trend_period), StreamingATR(s.atr_period)
            )
        return ctx

    def note_bar(self, bar: Bar) -> None:
        """A closed bar; the scorer keeps those of its trend and ATR timeframes."""
        s = self.settings
        if bar.timeframe == s.trend_timeframe:
            ctx = self._context(bar.symbol)
            ctx.ema_before = ctx.ema.value
            ctx.ema.update(bar.close)
            ctx.trend_bars += 1
            ctx.last_close = bar.close
        if bar.timeframe == s.atr_timeframe:
            self._context(bar.symbol).atr.update(bar.high, bar.low, bar.close)

    def on_bar(self, bar: Bar) -> None:
        """Warm-up's way in: as `note_bar` (a scorer never signals)."""
        self.note_bar(bar)

    def atr(self, symbol: str) -> float | None:
        ctx = self._symbols.get(symbol)
        return None if ctx is None else ctx.atr.value

    def score(
        self,
        signal: Signal,
        instrument: Instrument,
        *,
        spread: float | None,
        quality: float | None,
        min_quality: float,
        r_multiples: Sequence[float],
    ) -> Score:
        """Score `signal` at its decision time (`signal.ts`, `signal.price`): the factors, the
        confidence and the verdict (module doc). `quality` None: the symbol is not judged."""
        s = self.settings
        ctx = self._context(signal.symbol)
        atr = ctx.atr.value
        raw = [
            ("trend", *self._trend(signal, ctx)),
            ("atr", *self._atr_band(instrument, atr, signal.price)),
            ("session", *self._session(signal, instrument)),
            ("spread", *self._spread(instrument, spread, atr)),
            ("quality", *_quality(quality, min_quality)),
            ("record", *self._record(r_multiples, signal.has_stop)),
            (
                "signal",
                _clip(signal.confidence),
                signal.confidence,
                f"the strategy's own confidence {signal.confidence:.2f}",
            ),
        ]
        weights = dict(s.weights)
        if not signal.has_stop and sum(w for n, w in weights.items() if n != "record") > 0:
            weights["record"] = 0.0
        total = sum(weights[name] for name, *_ in raw)
        factors = tuple(
            Factor(name, score, weights[name], weights[name] * score / total, value, why)
            for name, score, value, why in raw
        )
        confidence = _clip(sum(f.contribution for f in factors))
        if confidence >= s.approve_at:
            verdict, multiplier = Verdict.APPROVE, 1.0
        elif confidence >= s.refuse_below:
            verdict, multiplier = Verdict.RESIZE, confidence / s.approve_at
        else:
            verdict, multiplier = Verdict.REFUSE, 0.0
        return Score(confidence, verdict, multiplier, factors)

    # ---------------------------------------------------------------- the factors

    def _trend(self, signal: Signal, ctx: _Context) -> tuple[float, float | None, str]:
        s = self.settings
        tf, ema, before = s.trend_timeframe, ctx.ema.value, ctx.ema_before
        if ema is None or before is None:
            need = s.trend_period + 1
            return NEUTRAL, None, f"{ctx.trend_bars} of {need} {tf} bars for its EMA yet"
        sign = signal.side.sign
        above = (signal.price - ema) * sign > 0
        rising = (ema - before) * sign > 0
        way = "up" if signal.side is Side.BUY else "down"
        score = (above + rising) / 2
        words = {
            1.0: f"{tf} trend {way}, with the trade",
            0.5: f"{tf} trend mixed (price {'with' if above else 'against'}, "
            f"EMA slope {'with' if rising else 'against'})",
            0.0: f"{tf} trend against the trade",
        }
        return score, signal.price - ema, f"{words[score]} (EMA({s.trend_period}) {ema:.6g})"

    def _atr_band(
        self, inst: Instrument, atr: float | None, price: float
    ) -> tuple[float, float | None, str]:
        tf = self.settings.atr_timeframe
        if atr is None:
            return NEUTRAL, None, f"not enough {tf} bars for the ATR yet"
        if inst.asset_class in PIP_CLASSES:
            value, (low, high), unit = inst.pips(atr), self.settings.atr_band_pips, "pips"
        else:
            low, high = ATR_BANDS_BPS.get(inst.asset_class, (0.0, math.inf))
            value, unit = (atr / price * 10_000 if price > 0 else 0.0), "bps"
        if low <= value <= high:
            score, where = 1.0, "inside"
        elif value < low:  # a dead market: nothing at half the low edge
            score, where = _clip(2 * value / low - 1) if low > 0 else 1.0, "below"
        else:  # a wild one: nothing at twice the high edge
            score, where = _clip(2 - value / high), "above"
        return score, value, f"{tf} ATR {value:.1f} {unit}, {where} [{low:g}, {high:g}]"

    def _session(self, signal: Signal, inst: Instrument) -> tuple[float, float | None, str]:
        s = self.settings
        wanted = s.sessions_for(signal.symbol, inst.asset_class.value)
        now = sessions_open(signal.ts)
        words = session_words(now)
        if "any" in wanted:
            return 1.0, None, f"{words}; {signal.symbol} trades at every hour"
        if any(name in wanted for name in now):
            return 1.0, None, f"{words}, a session of {signal.symbol}"
        return s.off_session_score, None, f"{words}: none of {', '.join(wanted)} is open"

    def _spread(
        self, inst: Instrument, spread: float | None, atr: float | None
    ) -> tuple[float, float | None, str]:
        if spread is None or atr is None or atr <= 0:
            return NEUTRAL, None, "no spread or ATR to compare yet"
        ratio = spread / atr
        limit = self.settings.max_spread_atr
        return _clip(1 - ratio / limit), ratio, f"spread {ratio:.2f} ATR (0 at {limit:g})"

    def _record(
        self, r_multiples: Sequence[float], has_stop: bool = True
    ) -> tuple[float, float | None, str]:
        s = self.settings
        if not has_stop:
            return NEUTRAL, None, "no stop: the signal has no R to judge a record by"
        recent = list(r_multiples)[-s.record_trades :]
        if len(recent) < s.record_min_trades:
            return NEUTRAL, None, f"{len(recent)} closed trades, {s.record_min_trades} to judge"
        mean = math.fsum(recent) / len(recent)
        return _clip((mean + 1) / 2), mean, f"mean {mean:+.2f} R over the last {len(recent)}"


def _quality(quality: float | None, floor: float) -> tuple[float, float | None, str]:
    if quality is None:
        return 1.0, None, "not judged for this symbol"
    score = _clip((quality - floor) / (1 - floor)) if floor < 1 else float(quality >= 1)
    return score, quality, f"data quality {quality:.3f} (breaker below {floor:g})"


def _clip(x: float) -> float:
    return min(1.0, max(0.0, x))
