"""Where in a batch of ticks each working order next does something: the matching rules.

Matching is by array search over one symbol's ticks, not by a Python loop over ticks. An order
decided at tick i reaches the venue at the first tick of its symbol whose event time is at or
after i's time plus its latency (with latency zero, tick i itself), never earlier (invariant 2).
From there on:

- a resting buy limit fills at its price when the ask goes below it (or the market trades
  below it: `last`), or touches it when touch fills are on; a sell limit mirrors on the bid. A
  resting limit is never filled better than its price, even when the market gaps through it;
- a buy stop triggers when the ask reaches its trigger, a sell stop when the bid does, and
  then fills at that tick's price: a stop gapped through fills at the first available price,
  not at the stop;
- a stop-limit triggers the same way and then rests (or takes) as a limit at its price;
- a trailing stop's trigger follows the best bid (a sell) or ask (a buy) at its distance; it is
  moved whenever the best price gains a pip, and each move is an event; it fills when the
  market reaches the trigger it was last moved to (a gain under a pip moves nothing);
- a good-till-date order is cancelled at its symbol's first tick at or after its expiry.

`next_step` only says what comes next for one order; the venue (paper/venue.py) applies the
earliest step of all orders, asks again for the orders it changed, and turns it all into
events in tick order, which makes the outcome independent of how ticks were batched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mikrobot_tui.domain.orders import Order, OrderType, Side, TimeInForce


class BatchQuotes:
    """Per-batch views of one symbol's ticks, built lazily, with the quotes carried over."""

    def __init__(self, ticks: np.ndarray, carry_bid: np.ndarray, carry_ask: np.ndarray) -> None:
        self.ticks = ticks
        # the columns as views, once: a decision asks for quotes a dozen times, and reading a
        # structured row costs three times what two column reads do
        self._bid, self._ask = ticks["bid"], ticks["ask"]
        self._carry_bid = carry_bid
        self._carry_ask = carry_ask
        self._idx: dict[int, np.ndarray] = {}
        self._filled: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def indices(self, sym: int) -> np.ndarray:
        idx = self._idx.get(sym)
        if idx is None:
            idx = np.flatnonzero(self.ticks["sym"] == sym)
            self._idx[sym] = idx
        return idx

    def quote_at(self, sym: int, k: int) -> tuple[float, float] | None:
        """The symbol's latest bid and ask as of batch index k (inclusive)."""
        idx = self.indices(sym)
        j = int(idx.searchsorted(k, side="right")) - 1
        if j >= 0:
            i = idx[j]
            return float(self._bid[i]), float(self._ask[i])
        if sym >= len(self._carry_bid):
            return None
        bid, ask = self._carry_bid[sym], self._carry_ask[sym]
        if np.isnan(bid) or np.isnan(ask):
            return None
        return float(bid), float(ask)

    def mid_at(self, sym: int, k: int) -> float | None:
        q = self.quote_at(sym, k)
        return None if q is None else (q[0] + q[1]) / 2

    def filled(self, sym: int) -> tuple[np.ndarray, np.ndarray]:
        """The symbol's bid and ask as of every batch index (NaN before any quote)."""
        got = self._filled.get(sym)
        if got is None:
            idx = self.indices(sym)
            at = np.searchsorted(idx, np.arange(len(self.ticks)), side="right") - 1
            carry_b = self._carry_bid[sym] if sym < len(self._carry_bid) else np.nan
            carry_a = self._carry_ask[sym] if sym < len(self._carry_ask) else np.nan
            safe = idx[np.maximum(at, 0)] if len(idx) else np.zeros(len(at), dtype=np.int64)
            if len(idx):
                bid = np.where(at >= 0, self.ticks["bid"][safe], carry_b)
                ask = np.where(at >= 0, self.ticks["ask"][safe], carry_a)
            else:
                bid = np.full(len(at), carry_b)
                ask = np.full(len(at), carry_a)
            got = (bid, ask)
            self._filled[sym] = got
        return got


@dataclass(frozen=True, slots=True)
class Step:
    """What an order does next, at batch index `idx`.

    kind: "arrive" (reaches the venue), "fill" (a resting limit at `price`, or a stop or a
    market remainder at the touch), "trigger" (a stop-limit becomes a limit), "trail" (a
    trailing stop's trigger moves to `price`), "expire" (good till date, now past).
    """

    idx: int
    kind: str
    price: float = math.nan


def window(quotes: BatchQuotes, sym: int, start: int, stop: int, not_before: int) -> np.ndarray:
    """The symbol's batch indices in [start, stop) whose event time is at or after
    `not_before` (per symbol, event times only grow)."""
    idx = quotes.indices(sym)
    w = idx[np.searchsorted(idx, start) : np.searchsorted(idx, stop)]
    if len(w) and not_before > 0:
        w = w[np.searchsorted(quotes.ticks["ts_event"][w], not_before) :]
    return w


def next_step(
    order: Order, quotes: BatchQuotes, w: np.ndarray, touch_fills: bool, trail_step: float
) -> Step | None:
    """The order's next step among the batch indices `w` (its symbol's ticks, due ones only)."""
    if len(w) == 0:
        return None
    if not order.accepted:
        return Step(int(w[0]), "arrive")
    expiry = None
    if order.tif is TimeInForce.GTD and order.expire_ts is not None:
        j = int(np.searchsorted(quotes.ticks["ts_event"][w], order.expire_ts))
        if j < len(w):
            expiry, w = int(w[j]), w[:j]
    hit = _resting(order, quotes.ticks, w, touch_fills, trail_step) if len(w) else None
    if hit is not None:
        return hit
    return None if expiry is None else Step(expiry, "expire")


def _resting(
    order: Order, ticks: np.ndarray, w: np.ndarray, touch_fills: bool, trail_step: float
) -> Step | None:
    buy = order.side is Side.BUY
    if order.type is OrderType.MARKET:  # a remainder the book could not take: the next tick
        return Step(int(w[0]), "fill")
    if order.type is OrderType.LIMIT or (order.type is OrderType.STOP_LIMIT and order.triggered):
        assert order.price is not None
        return _first(
            w, limit_crossed(ticks, w, buy, order.price, touch_fills), "fill", order.price
        )
    assert order.trigger is not None
    if order.trail_distance is not None:
        return _trailing(order, ticks, w, buy, trail_step)
    hit = stop_reached(ticks, w, buy, order.trigger)
    return _first(w, hit, "fill" if order.type is OrderType.STOP else "trigger")


def limit_crossed(
    ticks: np.ndarray, w: np.ndarray, buy: bool, price: float, touch: bool
) -> np.ndarray:
    """Where the market quotes or trades through a resting limit (or touches it, if asked)."""
    last = ticks["last"][w]
    if buy:
        ask = ticks["ask"][w]
        hit = (ask <= price) if touch else (ask < price)
        return hit | (last < price)  # NaN compares False: quote-only markets
    bid = ticks["bid"][w]
    hit = (bid >= price) if touch else (bid > price)
    return hit | (last > price)


def stop_reached(ticks: np.ndarray, w: np.ndarray, buy: bool, trigger: float) -> np.ndarray:
    """A buy stop watches the ask, a sell stop the bid."""
    return ticks["ask"][w] >= trigger if buy else ticks["bid"][w] <= trigger


def _trailing(
    order: Order, ticks: np.ndarray, w: np.ndarray, buy: bool, step: float
) -> Step | None:
    d = order.trail_distance
    assert d is not None and order.trigger is not None
    # Until the first move the trigger is the recorded one: the best price so far moves it
    # only a whole step at a time (each move an event), so a lesser gain, which a batch
    # boundary would forget, must not bring the fill forward either.
    if buy:  # a buy stop trails the lowest ask from above
        ask = ticks["ask"][w]
        best = np.minimum.accumulate(np.minimum(ask, order.trigger - d))
        level = best + d
        hit = ask >= order.trigger
        moved = level <= order.trigger - step
    else:
        bid = ticks["bid"][w]
        best = np.maximum.accumulate(np.maximum(bid, order.trigger + d))
        level = best - d
        hit = bid <= order.trigger
        moved = level >= order.trigger + step
    first_hit = int(np.argmax(hit)) if hit.any() else len(w)
    first_move = int(np.argmax(moved)) if moved.any() else len(w)
    if first_move < first_hit:
        return Step(int(w[first_move]), "trail", float(level[first_move]))
    if first_hit < len(w):
        return Step(int(w[first_hit]), "fill")
    return None


def _first(w: np.ndarray, hit: np.ndarray, kind: str, price: float = math.nan) -> Step | None:
    if not hit.any():
        return None
    return Step(int(w[int(np.argmax(hit))]), kind, price)


def marketable(order: Order, bid: float, ask: float) -> bool:
    """Would this limit take liquidity now (a buy at or above the ask)?"""
    assert order.price is not None
    return ask <= order.price if order.side is Side.BUY else bid >= order.price


def stop_due(order: Order, bid: float, ask: float) -> bool:
    """Has the market reached this stop's trigger now?"""
    assert order.trigger is not None
    return ask >= order.trigger if order.side is Side.BUY else bid <= order.trigger
