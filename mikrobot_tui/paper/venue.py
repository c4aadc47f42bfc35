"""The paper venue: working orders meet the ticks, in tick order, and every change is an event.

For one batch, each working order's next step is found by array search (paper/execution.py);
the venue applies the earliest step of all orders and of the accounts' watch (equity points,
swap, margin call and stop-out: paper/watch.py), asks again only for what that step changed,
and goes on until the index it was asked to reach. Decisions in between add orders, which are
matched from their decision tick on. So the events do not depend on how ticks were batched.

On arrival an order is checked as a venue would (trading halted, market closed, below the
minimum size or notional, reduce-only with nothing to reduce, post-only that would cross,
insufficient margin) and rejected with the reason, or taken: a market order (and a marketable
limit) walks the book where the feed has depth and fills the rest by its time in force, and
fills at the touch plus modelled slippage and square-root impact where it has none; a limit or
stop that cannot execute yet rests (`order_accepted`). A bracket's entry places its stop-loss
and take-profit as reduce-only orders, one cancelling the other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from mikrobot_tui.domain.events import EventKind
from mikrobot_tui.domain.orders import (
    Order,
    OrderIntent,
    OrderType,
    Side,
    TimeInForce,
)
from mikrobot_tui.paper import booking, brackets, checks
from mikrobot_tui.paper.execution import BatchQuotes, Step, marketable, next_step, stop_due, window
from mikrobot_tui.paper.ledger import EPS, Ledger
from mikrobot_tui.paper.portfolio import order_payload
from mikrobot_tui.paper.pricing import Pricing
from mikrobot_tui.paper.watch import AccountWatch

Cached = tuple[
    Order | None, int, Step | None
]  # (the order as searched, searched from, its next step)


class Venue:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.pricing = Pricing(ledger)
        self.books, self.volatility = self.pricing.books, self.pricing.volatility
        self.touch_fills = ledger.paper.touch_fills
        self.watch = AccountWatch(ledger, self.take_at_market)
        self._quotes: BatchQuotes | None = None
        self._stream = np.zeros(0, dtype=np.int64)
        self._cache: dict[str, Cached] = {}
        self._scan_seq = -1  # the log's last event when the working orders were last scanned
        self._scan_best: tuple[int, str] | None = None
        self.at = 0  # where new orders start being matched

    # ---------------------------------------------------------------- a batch

    def begin(
        self, quotes: BatchQuotes, stream: np.ndarray, m1: np.ndarray, m1_closes: np.ndarray
    ) -> None:
        """A new batch: its ticks, their running market time, and the M1 bars it closes with
        the index of the tick that closed each (they feed the slippage model's volatility)."""
        self._quotes, self._stream = quotes, stream
        self._cache.clear()
        self._scan_seq = -1
        self.at = 0
        self.pricing.begin(m1, m1_closes)
        self.watch.begin(quotes, stream)

    def advance(self, stop: int, on_step: Callable[[int], None] | None = None) -> None:
        """Apply every step before batch index `stop`, in tick order; `on_step(index)` is
        called before each."""
        quotes = self._quotes
        assert quotes is not None
        while True:
            best = self._earliest()
            if best is not None and best[0] >= stop:
                best = None
            watch_at = self.watch.next_index(self.at, stop)
            if watch_at is not None and (best is None or watch_at <= best[0]):
                if on_step is not None:
                    on_step(watch_at)
                self.at = watch_at
                self.watch.apply(watch_at)
                continue
            if best is None:
                break
            order = self._find(best[1])
            cached = self._cache[order.order_id]
            step = cached[2]
            assert step is not None
            if on_step is not None:
                on_step(step.idx)
            self.at = step.idx + 1  # what the step creates or changes is matched from the next tick
            self._apply(order, step)
            self.watch.settle(step.idx)  # a fill that moved a balance is judged at its tick
        self.at = stop
        self.pricing.catch_up(stop - 1)

    def _earliest(self) -> tuple[int, str] | None:
        """(index, order id) of the earliest step of all working orders; the first order
        wins a tie. Nothing changes an order's next step but an event, so while the log
        stands still the last answer holds and no order is looked at again."""
        seq = self.ledger.log.last_seq
        if seq == self._scan_seq:
            return self._scan_best
        best: tuple[int, str] | None = None
        for order in self._working():
            step = self._step(order)
            if step is not None and (best is None or step.idx < best[0]):
                best = (step.idx, order.order_id)
        self._scan_seq, self._scan_best = seq, best
        return best

    def _working(self) -> list[Order]:
        known = self.ledger.symbol_index
        return [
            o
            for a in self.ledger.state.accounts.values()
            for o in a.working.values()
            if o.symbol in known
        ]

    def _find(self, order_id: str) -> Order:
        for acct in self.ledger.state.accounts.values():
            if order_id in acct.working:
                return acct.working[order_id]
        raise KeyError(order_id)

    def _step(self, order: Order) -> Step | None:
        cached = self._cache.get(order.order_id)
        if cached is not None and cached[0] is order:
            return cached[2]
        start = self.at if cached is None else max(cached[1], self.at)
        quotes = self._quotes
        assert quotes is not None
        sym = self.ledger.symbol_index[order.symbol]
        w = window(quotes, sym, start, len(quotes.ticks), max(order.due_ts, order.ts_submitted))
        inst = self.ledger.instruments[sym]
        step = next_step(order, quotes, w, self.touch_fills, inst.pip_size)
        self._cache[order.order_id] = (order, start, step)
        return step

    def _moved_on(self, order_id: str, idx: int) -> None:
        """The order did its step at `idx`: search it again from the next tick."""
        self._cache[order_id] = (None, idx + 1, None)
        self._scan_seq = -1

    # ---------------------------------------------------------------- steps

    def _apply(self, order: Order, step: Step) -> None:
        k = step.idx
        ts = int(self._ticks["ts_event"][k])
        led = self.ledger
        if step.kind == "arrive":
            self._arrive(order, k, ts)
        elif step.kind == "expire":
            self._cancel(order, ts, "expired (good till date)")
        elif step.kind == "trail":
            inst = led.instrument(order.symbol)
            trigger = inst.round_price(step.price)
            payload = {
                "order_id": order.order_id,
                "changes": {"trigger": trigger},
                "reason": "trail",
            }
            led.emit(ts, EventKind.ORDER_MODIFIED, order.account, payload)
        elif step.kind == "trigger":
            payload = {"order_id": order.order_id, "trigger": order.trigger}
            led.emit(ts, EventKind.ORDER_TRIGGERED, order.account, payload)
            now = led.state.accounts[order.account].working[order.order_id]
            bid, ask = self._touch(now, k)
            if marketable(now, bid, ask):
                self._take(now, k, ts, now.price)
        elif order.type is OrderType.LIMIT or order.type is OrderType.STOP_LIMIT:
            self._fill(order, order.remaining, step.price, k, ts, "maker")
        else:  # a stop reached, or a market order's remainder
            self._take(order, k, ts, None)
        self._moved_on(order.order_id, k)

    def _arrive(self, order: Order, k: int, ts: int) -> None:
        bid, ask = self._touch(order, k)
        refusal = checks.refusal(self.ledger, order, self._quotes, k, ts, bid, ask)
        if refusal is not None:
            self._reject(order, ts, refusal)
            return
        t = order.type
        if t is OrderType.MARKET:
            self._take(order, k, ts, None)
            return
        if t is OrderType.LIMIT:
            if marketable(order, bid, ask):
                self._take(order, k, ts, order.price)
            else:
                self._rest(order, ts, k)
            return
        if order.trail_atr is not None and order.trail_distance is None:
            sym = self.ledger.symbol_index[order.symbol]
            distance = order.trail_atr * self.pricing.volatility_at(sym, k)
            if distance <= 0:
                self._reject(order, ts, "trailing by ATR: no M1 bars yet to measure it")
                return
            order = replace(order, trail_distance=distance)
        if order.trail_distance is not None and order.trigger is None:
            touch = bid if order.side is Side.SELL else ask
            trigger = touch - order.side.opposite.sign * order.trail_distance
            order = replace(
                order, trigger=self.ledger.instrument(order.symbol).round_price(trigger)
            )
        if not stop_due(order, bid, ask):
            self._rest(order, ts, k)
        elif t is OrderType.STOP:
            self._take(order, k, ts, None)
        else:
            led = self.ledger
            payload = {"order_id": order.order_id, "trigger": order.trigger}
            led.emit(ts, EventKind.ORDER_TRIGGERED, order.account, payload)
            if marketable(order, bid, ask):
                self._take(order, k, ts, order.price)
            else:
                self._rest(replace(order, triggered=True), ts, k)

    def _rest(self, order: Order, ts: int, k: int) -> None:
        if order.tif in (TimeInForce.IOC, TimeInForce.FOK):
            self._cancel(order, ts, f"{order.tif}: nothing to take on arrival")
            return
        payload: dict[str, object] = {"order_id": order.order_id}
        if order.trigger is not None:
            payload["trigger"] = order.trigger
        if order.trail_distance is not None:
            payload["trail_distance"] = order.trail_distance
        self.ledger.emit(ts, EventKind.ORDER_ACCEPTED, order.account, payload)

    # ---------------------------------------------------------------- fills

    @property
    def _ticks(self) -> np.ndarray:
        assert self._quotes is not None
        return self._quotes.ticks

    def _touch(self, order: Order, k: int) -> tuple[float, float]:
        q = self.ledger.quote(order.symbol, self._quotes, k)
        assert q is not None  # matched on its own symbol's tick
        return q

    def _take(self, order: Order, k: int, ts: int, limit: float | None) -> None:
        """Take liquidity for the order's remaining lots; the rest follows its time in force."""
        want = order.remaining
        if order.reduces:
            want = min(want, checks.reducible(self.ledger, order))
            if want <= EPS:
                self._cancel(order, ts, "reduce-only: no position to reduce")
                return
        bid, ask = self._touch(order, k)
        filled, price = self.pricing.take(order.symbol, order.side, want, bid, ask, k, ts, limit)
        inst = self.ledger.instrument(order.symbol)
        filled = inst.round_lots(filled + EPS) if filled > 0 else 0.0
        if order.tif is TimeInForce.FOK and filled < want - EPS:
            self._cancel(order, ts, f"FOK: only {filled} of {want} lots available")
            return
        if filled <= EPS:
            if order.tif is TimeInForce.IOC:
                self._cancel(order, ts, "IOC: nothing to take")
            return  # nothing at or inside the limit: it waits (a market order: the next tick)
        self._fill(order, filled, price, k, ts, "taker")
        now = self.ledger.state.accounts[order.account].working.get(order.order_id)
        if now is None:
            return
        if order.tif is TimeInForce.IOC or (
            order.reduces and checks.reducible(self.ledger, now) <= EPS
        ):
            self._cancel(
                now,
                ts,
                "IOC: rest cancelled" if order.tif is TimeInForce.IOC else "nothing left to reduce",
            )
        elif order.type is OrderType.LIMIT and not now.accepted:
            self._rest(now, ts, k)

    def _fill(
        self, order: Order, lots: float, price: float, k: int, ts: int, liquidity: str
    ) -> None:
        led = self.ledger
        if order.reduces:
            lots = min(lots, checks.reducible(self.ledger, order))
            if lots <= EPS:
                self._cancel(order, ts, "reduce-only: no position to reduce")
                return
        refusal = None if order.reduces else checks.state_refusal(led, order)
        if refusal is None:  # a resting entry meets a halt or REDUCING that came after it
            refusal = checks.margin_refusal(self.ledger, order, lots, price, self._quotes, k)
        if refusal is not None:
            self._reject(order, ts, refusal)
            return
        reference = order.decision_price
        if reference is None:
            reference = order.price if order.type is OrderType.LIMIT else order.trigger
        slippage = 0.0 if reference is None else (price - reference) * order.side.sign
        position_id = booking.book(
            led, order, lots, price, ts, self._quotes, k, liquidity, slippage
        )
        self.watch.changed(order.account)
        if position_id is not None and (
            order.stop_loss is not None or order.take_profit is not None
        ):
            entry = order
            if order.trail_atr is not None and order.trail_distance is None:
                sym = led.symbol_index[order.symbol]
                distance = order.trail_atr * self.pricing.volatility_at(sym, k)
                entry = replace(order, trail_distance=distance if distance > 0 else None)
            brackets.protect(led, entry, position_id, lots, ts)
        brackets.settle(led, order, lots, ts, self._cancel)

    def take_at_market(self, account: str, position_id: str, k: int, ts: int, reason: str) -> None:
        """Close a whole position now at market through the simulator (stop-out)."""
        led = self.ledger
        acct = led.state.accounts[account]
        pos = acct.positions[position_id]
        order = Order(
            order_id=acct.next_order_id(),
            account=account,
            symbol=pos.symbol,
            side=pos.side.opposite,
            lots=pos.lots,
            intent=OrderIntent.CLOSE,
            ts_submitted=ts,
            due_ts=ts,
            position_id=position_id,
            strategy=reason,
        )
        led.emit(ts, EventKind.ORDER_SUBMITTED, account, order_payload(order))
        q = led.quote(pos.symbol, self._quotes, k)
        assert q is not None  # a margin level needs the position's price
        filled, price = self.pricing.take(pos.symbol, order.side, pos.lots, *q, k, ts, None)
        self._fill(order, filled if filled > EPS else pos.lots, price, k, ts, "taker")
        live = acct.working.get(order.order_id)
        if live is not None:  # a book too thin for all of it: the rest at the touch
            self._cancel(live, ts, "stop-out: rest at the next tick")

    def _cancel(self, order: Order, ts: int, reason: str) -> None:
        payload = {"order_id": order.order_id, "reason": reason}
        self.ledger.emit(ts, EventKind.ORDER_CANCELLED, order.account, payload)

    def _reject(self, order: Order, ts: int, reason: str) -> None:
        payload = {"order_id": order.order_id, "reason": reason}
        self.ledger.emit(ts, EventKind.ORDER_REJECTED, order.account, payload)
