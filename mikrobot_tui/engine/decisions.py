"""Strategies see what they asked for; each signal becomes an order or a refusal on record.

One strategy per account, each behind its own circuit breaker: a strategy that raises counts a
failure and never stops the engine. A signal is priced at what the order can get (the ask for a
buy, the bid for a sell) as of the tick that closed its bar, then goes through the feed's and
the strategy's breakers and the orchestrator's risk checks and sizing; the outcome, an order
submitted or refused with its reason, is an event. An external signal (engine/external.py)
takes the same way, behind its source's breaker instead of a strategy's, and its event says
where it came from.

Two more breakers stand in every order's way. A symbol's data quality (`quality:<SYMBOL>`,
trading/judges.QualityJudge) is judged at each of its decision points: a score under
`breakers.min_quality` opens it and the symbol takes no new orders until its score recovers;
orders that close positions (a bracket's stop and target, a flatten) never come this way, so
positions keep their stops. The order path (`orders`) is around deciding and booking an
order: an exception there refuses the order with its reason and counts a failure, as a
strategy's does, and never stops the engine.

Every signal that reaches the order path is scored first (trading/scoring.py): trend on the
higher timeframe, ATR in its band, the session, spread against ATR, data quality, the
strategy's recent record and its own confidence. The score approves it at full risk, resizes
it (its risk scaled down) or refuses it, and goes into the `order_submitted` or
`order_refused` event with every factor and its contribution, so the operator can read why a
trade happened or did not.

A signal that carries its size (`Signal.units`, trading/orchestrator.py) and asks to reverse
(`Signal.reverse`) has the account's positions of its symbol on the other side, as held at the
decision, closed first: for the checks (max positions, margin affordability, the account
limits) they are already gone; if the entry passes, a close order for each (built as flatten
builds them) is submitted, then the entry, due no earlier than the last close, so it reaches
the venue after them whatever latency each draws, and a netting account never nets the entry
against the position. A refused entry closes nothing: the signal is refused as a whole.
Entries still on their way to the venue are not closed.

An account that is a variant of a bandit experiment (engine/allocation.py) has its risk
multiplied, in the same place, by its share of the experiment's risk budget x the number of
variants (equal shares: 1x), and the product capped at 1: a trade never risks more than the
account's risk_per_trade, which the account limits would refuse. So the bandit takes risk
away from the variants the evidence turns against, down to a tenth, and lets a favoured
variant trade a resized signal up to full risk. The multiplier goes into `order_submitted`
as `allocation`; the account limits are checked after, on the order as sized.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from mikrobot_tui.config import RiskSettings
from mikrobot_tui.domain.events import EventKind
from mikrobot_tui.domain.instruments import Instrument
from mikrobot_tui.domain.market import Bar
from mikrobot_tui.domain.orders import EntryType, Order, Position, Side, Signal, TradingState
from mikrobot_tui.engine.allocation import Allocator
from mikrobot_tui.engine.closing import submit_close
from mikrobot_tui.engine.limits import Limits
from mikrobot_tui.engine.models import ModelWatch
from mikrobot_tui.paper.execution import BatchQuotes
from mikrobot_tui.paper.ledger import Ledger
from mikrobot_tui.paper.portfolio import AccountState, order_payload
from mikrobot_tui.trading.breakers import BreakerChange, CircuitBreaker
from mikrobot_tui.trading.judges import QualityJudge
from mikrobot_tui.trading.orchestrator import decide
from mikrobot_tui.trading.scoring import Score, SignalScorer, Verdict
from mikrobot_tui.trading.strategies import TICK, Strategy
from mikrobot_tui.trading.timeframes import BarHistory

MARGIN_LEVEL_FLOOR = 2.0  # sizing keeps the margin level at twice the margin call level
# closed bars kept per symbol and timeframe for strategies that look across timeframes:
# 500 H1 bars are three weeks, room for a slow trend filter
HISTORY_BARS = 500


def wanted(strategy: Strategy) -> tuple[str, ...]:
    """The bar timeframes a strategy is shown: its `timeframes`, or its one `timeframe`."""
    return tuple(getattr(strategy, "timeframes", (strategy.timeframe,)))


def _entry_price(signal: Signal) -> float:
    """Where the order enters: its limit price, or the price a market order can get."""
    if signal.entry is EntryType.LIMIT and signal.limit_price:
        return signal.limit_price
    return signal.price


def _opposite(acct: AccountState, signal: Signal) -> list[Position]:
    """The account's positions of the signal's symbol on the other side, oldest first."""
    return sorted(
        (
            p
            for p in acct.positions.values()
            if p.symbol == signal.symbol and p.side is not signal.side
        ),
        key=lambda p: (p.ts_opened, p.position_id),
    )


def record_breaker(ledger: Ledger, change: BreakerChange | None) -> None:
    """A breaker's change of state is an event like any other."""
    if change is not None:
        ledger.emit(change.ts, EventKind.BREAKER_CHANGED, None, change.to_payload())


class Decisions:
    def __init__(
        self,
        strategies: Mapping[str, Strategy],
        breakers: Mapping[str, CircuitBreaker],
        feed_breaker: CircuitBreaker,
        ledger: Ledger,
        risk: RiskSettings,
        latency: Callable[[str], int],
        quality: QualityJudge | None = None,
        orders: CircuitBreaker | None = None,
        scorer: SignalScorer | None = None,
        limits: Limits | None = None,
        allocator: Allocator | None = None,
        models: ModelWatch | None = None,
    ) -> None:
        self.strategies = dict(strategies)  # account -> its strategy
        self.allocator = allocator  # the bandits' shares of each experiment's risk budget
        self.models = models  # the models strategies trade by: their drift is checkpointed
        self.breakers = dict(breakers)  # account -> its strategy's breaker
        self.feed_breaker = feed_breaker
        self.quality = quality  # a breaker per symbol, on its data-quality score
        self.orders = orders or CircuitBreaker("orders")  # around deciding and booking
        self.scorer = scorer  # None: every signal goes at full risk, unscored
        self.timeframes = {t for s in self.strategies.values() for t in wanted(s)}
        if scorer is not None:  # the scorer's trend and ATR learn from their bars too
            self.timeframes.update(scorer.timeframes)
        self.tick_strategies = [n for n, s in self.strategies.items() if s.timeframe == TICK]
        # timeframe -> the accounts whose strategy is shown its bars, in account order
        self._shown: dict[str, list[str]] = {}
        for name, strategy in self.strategies.items():
            for timeframe in dict.fromkeys(wanted(strategy)):
                self._shown.setdefault(timeframe, []).append(name)
        # every closed bar of every timeframe, fed by the corridor (and the warm-up) before
        # strategies see the bars of a decision point; strategies get it through bind_history
        self.history = BarHistory(HISTORY_BARS)
        for strategy in self.strategies.values():
            bind_history = getattr(strategy, "bind_history", None)
            if bind_history is not None:
                bind_history(self.history)
            bind_market = getattr(strategy, "bind_market", None)
            if bind_market is not None:
                bind_market(self.market_at)
        self._point: tuple[BatchQuotes, int, int] | None = None  # the bar's decision point
        self._ledger = ledger
        self._risk = risk
        self._latency = latency  # order id -> ns: drawn per order, seeded
        self._limits = limits  # the account limits (engine/limits.py): asked before an entry

    def on_bar(self, bar: Bar, quotes: BatchQuotes, k: int, *, trading: bool) -> bool:
        """Let each strategy on the bar's timeframe see it; True when an order was submitted.

        `k` is the batch index of the tick that closed the bar: the decision's time and price.
        Without `trading` (warm-up on history) strategies learn but nothing is decided.
        """
        ledger = self._ledger
        ordered = False
        sym = ledger.symbol_index[bar.symbol]
        now = int(quotes.ticks["ts_event"][k])
        self._point = (quotes, k, now)
        if trading:  # a decision point of the symbol: its data quality is judged here
            self.judge_quality(sym, now)
        if self.scorer is not None:
            self.scorer.note_bar(bar)
        for name in self._shown.get(bar.timeframe, ()):
            breaker = self.breakers[name]
            record_breaker(ledger, breaker.poll(now))  # an OPEN breaker's timeout may be up
            try:
                signal = self.strategies[name].on_bar(bar)
            except Exception as exc:  # a strategy's bug must not stop the engine
                failure = breaker.record_failure(now, f"{type(exc).__name__}: {exc}")
                record_breaker(ledger, failure)
                continue
            record_breaker(ledger, breaker.record_success(now))
            if signal is None or not trading:
                continue
            ordered |= self._decide(name, breaker, signal, sym, quotes, k, now)
        return ordered

    def market_at(self, symbol: str) -> tuple[float, float]:
        """The spread and the data-quality score of `symbol` at the bar being shown to the
        strategies (NaN when unknown): what a strategy's features see of the market."""
        point, sym = self._point, self._ledger.symbol_index.get(symbol)
        if point is None or sym is None:
            return math.nan, math.nan
        quotes, k, now = point
        quote = quotes.quote_at(sym, k)
        spread = math.nan if quote is None else quote[1] - quote[0]
        judge = self.quality
        judged = judge is not None and judge.enabled and 0 <= sym < len(judge.breakers)
        quality = judge.score(sym, now) if judged and judge is not None else math.nan
        return spread, quality

    def tick_signals(self, ticks: np.ndarray, symbols: list[str]) -> list[tuple[int, str, Signal]]:
        """Hand each tick strategy its symbols' ticks of the batch: (batch index, account,
        signal) for every decision, in tick order. A strategy that raises fails its breaker
        once for the batch."""
        out: list[tuple[int, str, Signal]] = []
        syms = ticks["sym"]
        for s in np.unique(syms).tolist():
            at = np.flatnonzero(syms == s)
            mine = ticks[at]
            for name in self.tick_strategies:
                try:
                    for i, signal in self.strategies[name].on_ticks(symbols[s], mine):
                        out.append((int(at[i]), name, signal))
                except Exception as exc:  # a strategy's bug must not stop the engine
                    now = int(mine["ts_event"][-1])
                    failure = self.breakers[name].record_failure(
                        now, f"{type(exc).__name__}: {exc}"
                    )
                    record_breaker(self._ledger, failure)
        out.sort(key=lambda item: item[0])
        return out

    def on_signal(self, name: str, signal: Signal, quotes: BatchQuotes, k: int) -> bool:
        """A tick strategy's signal at batch tick k, decided like a bar's."""
        ledger = self._ledger
        now = int(quotes.ticks["ts_event"][k])
        breaker = self.breakers[name]
        record_breaker(ledger, breaker.poll(now))
        record_breaker(ledger, breaker.record_success(now))
        sym = ledger.symbol_index[signal.symbol]
        return self._decide(name, breaker, signal, sym, quotes, k, now)

    def decide_external(
        self,
        account: str,
        guard: CircuitBreaker,
        signal: Signal,
        sym: int,
        quotes: BatchQuotes,
        k: int,
        now: int,
        extra: dict[str, Any],
    ) -> bool:
        """An external signal (engine/external.py) at batch tick k, behind the feed's breaker
        and its source's (`guard`); `extra` (its source, its id) goes into the event."""
        return self._decide(account, guard, signal, sym, quotes, k, now, extra)

    def judge_quality(self, sym: int, now: int) -> CircuitBreaker | None:
        """Judge the symbol's data quality at a decision point; its breaker (None when the
        engine has none, or the symbol is not the feed's)."""
        quality = self.quality
        if quality is None or not 0 <= sym < len(quality.breakers):
            return None
        for change in quality.judge(sym, now):
            record_breaker(self._ledger, change)
        return quality.breakers[sym]

    def _affordable(
        self,
        acct: AccountState,
        inst: Instrument,
        price: float,
        rate: float | None,
        quotes: BatchQuotes,
        k: int,
        closing: Sequence[Position] = (),
    ) -> float | None:
        """The lots that keep the margin level at or above twice the margin call level after
        the trade: room for the market to move against every position before a margin call.
        The positions `closing` (closed first by a reversing signal) hold no margin then."""
        if rate is None or not price > 0:
            return None
        ledger = self._ledger
        per_lot = inst.value_per_price_unit(1.0) * price * rate / ledger.leverage(acct.name, inst)
        m = ledger.margin(acct, quotes, k)
        used = m.used_margin - sum(ledger.position_margin(acct, p, quotes, k) for p in closing)
        floor = MARGIN_LEVEL_FLOOR * ledger.account_terms(acct.name).margin_call_level / 100
        return max(0.0, m.equity / floor - used) / per_lot

    def _decide(
        self,
        name: str,
        breaker: CircuitBreaker,
        signal: Signal,
        sym: int,
        quotes: BatchQuotes,
        k: int,
        now: int,
        extra: dict[str, Any] | None = None,
    ) -> bool:
        ledger = self._ledger
        # stops and targets are placed from the price the order can get (the ask for a buy,
        # the bid for a sell), not from the bar's mid, so a stop-out costs about 1 R
        quote = quotes.quote_at(sym, k)
        if quote is not None:
            entry = quote[1] if signal.side is Side.BUY else quote[0]
            signal = replace(signal, ts=now, price=entry)
        else:
            signal = replace(signal, ts=now)
        blocked = None
        guards = [self.feed_breaker, breaker]
        quality = self.judge_quality(sym, now)
        if quality is not None:
            guards.append(quality)
        guards.append(self.orders)
        for guard in guards:
            allowed, change = guard.allow(now)
            record_breaker(ledger, change)
            if not allowed and blocked is None:
                blocked = guard.name
        if blocked == self.orders.name:  # the failing path itself is not tried again
            self._refuse(name, signal, now, f"circuit breaker {blocked} is open", extra)
            return False
        try:
            ordered = self._order(name, signal, sym, quotes, k, now, blocked, extra)
        except Exception as exc:  # a bug on the order path must not stop the engine
            why = f"{type(exc).__name__}: {exc}"
            record_breaker(ledger, self.orders.record_failure(now, why))
            self._refuse(name, signal, now, f"order path failed: {why}", extra)
            return False
        record_breaker(ledger, self.orders.record_success(now))
        return ordered

    def _refuse(
        self,
        name: str,
        signal: Signal,
        now: int,
        reason: str | None,
        extra: dict[str, Any] | None,
        score: Score | None = None,
    ) -> None:
        payload: dict[str, Any] = {
            "symbol": signal.symbol,
            "side": str(signal.side),
            "strategy": signal.strategy,
            "reason": reason,
            **(extra or {}),
        }
        if score is not None:
            payload["score"] = score.to_payload()
        self._ledger.emit(now, EventKind.ORDER_REFUSED, name, payload)

    def _order(
        self,
        name: str,
        signal: Signal,
        sym: int,
        quotes: BatchQuotes,
        k: int,
        now: int,
        blocked: str | None,
        extra: dict[str, Any] | None,
    ) -> bool:
        """Decide the order (sized, checked) and book it, or refuse it with the reason."""
        ledger = self._ledger
        acct = ledger.state.accounts[name]
        inst = ledger.instruments[sym]
        score = self._score(acct, signal, sym, quotes, k, now)
        if score is not None and score.verdict is Verdict.REFUSE and blocked is None:
            self._refuse(name, signal, now, score.reason, extra, score)
            return False
        rate = ledger.rate(inst.quote, acct.currency, quotes, k)
        risk_scale = 1.0 if score is None else score.risk_multiplier
        allocated = self.allocator is not None and self.allocator.in_bandit(name)
        if allocated:  # the bandit's share x the number of variants: equal shares are 1x
            assert self.allocator is not None
            # never above the account's risk per trade (the limits refuse more than that)
            risk_scale = min(1.0, risk_scale * self.allocator.factor(name))
        # a reversing signal's opposite positions are closed first: they count as gone
        closing = _opposite(acct, signal) if signal.reverse else []
        decision = decide(
            signal,
            account=name,
            order_id=(order_id := acct.next_order_id()),
            instrument=inst,
            quote_to_account=rate,
            equity=ledger.equity(acct, quotes, k),
            # entries on their way count; a bracket's stop and target do not
            open_positions=len(acct.positions)
            - len(closing)
            + sum(not o.reduces for o in acct.working.values()),
            risk=self._risk,
            halted=ledger.state.trading_state is TradingState.HALTED,
            blocked_by=blocked,
            decision_ts=now,
            latency_ns=self._latency(order_id),
            max_lots=self._affordable(acct, inst, _entry_price(signal), rate, quotes, k, closing),
            trade_results=[t.r_multiple for t in acct.trades if t.r_multiple is not None],
            risk_scale=risk_scale,
        )
        refusal = decision.refusal
        if decision.order is not None and self._limits is not None:
            risk_amount = decision.risk_amount
            if decision.order.stop_loss is None:  # as its position will count (engine/limits)
                risk_amount = self._risk.risk_per_trade * ledger.equity(acct, quotes, k)
            ids = {p.position_id for p in closing}
            refusal = self._limits.refusal(decision.order, risk_amount, quotes, k, now, ids)
        if decision.order is None or refusal is not None:
            self._refuse(name, signal, now, refusal, extra, score)
            return False
        order = decision.order
        if closing:
            order = self._close_first(acct, closing, order, now)
        payload = order_payload(order)
        payload["reason"] = signal.reason
        payload.update(extra or {})
        if score is not None:
            payload["score"] = score.to_payload()
        if allocated and self.allocator is not None:
            payload["allocation"] = round(self.allocator.factor(name), 6)
        ledger.emit(now, EventKind.ORDER_SUBMITTED, name, payload)  # the limits count it
        return True

    def _close_first(
        self, acct: AccountState, closing: list[Position], order: Order, now: int
    ) -> Order:
        """Submit a close order for each position in `closing` (as flatten builds them), then
        return the entry renumbered after them and due no earlier than the last of them, so
        it reaches the venue after the closes whatever the latency model draws."""
        due = order.due_ts
        for pos in closing:
            close = submit_close(
                self._ledger, pos, ts=now, latency=self._latency, reason=order.strategy
            )
            due = max(due, close.due_ts)
        order_id = acct.next_order_id()
        return replace(order, order_id=order_id, due_ts=max(due, now + self._latency(order_id)))

    def _score(
        self, acct: AccountState, signal: Signal, sym: int, quotes: BatchQuotes, k: int, now: int
    ) -> Score | None:
        """The signal's score at the decision tick (None without a scorer)."""
        if self.scorer is None:
            return None
        quote = quotes.quote_at(sym, k)
        judge = self.quality
        judged = judge is not None and judge.enabled and 0 <= sym < len(judge.breakers)
        return self.scorer.score(
            signal,
            self._ledger.instruments[sym],
            spread=None if quote is None else quote[1] - quote[0],
            quality=judge.score(sym, now) if judged and judge is not None else None,
            min_quality=judge.min_quality if judge is not None else 0.0,
            r_multiples=[
                t.r_multiple
                for t in acct.trades
                if t.r_multiple is not None and t.strategy == signal.strategy
            ],
        )
