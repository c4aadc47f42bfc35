"""The execution simulator: market orders, stop-losses and take-profits against the tick stream.

Matching is by array search, not by a Python loop over ticks. An order decided at tick i is
filled at the first tick of its symbol whose event time is at or after i's time plus the
modelled latency (with latency zero, tick i itself), never earlier (invariant 2). A buy fills
at that tick's ask, a sell at its bid. A stop or target triggers on the first tick that crosses
it (a long watches the bid, a short the ask) and fills at that tick's price, so a gap through a
stop costs what it would cost in the market.

`match` only computes what happens in ticks[start:stop]; the engine turns the result into
events in tick order, which makes the outcome independent of how ticks were batched.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from mikrobot_tui.domain.orders import Order, OrderIntent, Position, Side


class BatchQuotes:
    """Per-batch views of one symbol's ticks, built lazily, with the quotes carried over."""

    def __init__(self, ticks: np.ndarray, carry_bid: np.ndarray, carry_ask: np.ndarray) -> None:
        self.ticks = ticks
        self._carry_bid = carry_bid
        self._carry_ask = carry_ask
        self._idx: dict[int, np.ndarray] = {}

    def indices(self, sym: int) -> np.ndarray:
        idx = self._idx.get(sym)
        if idx is None:
            idx = np.flatnonzero(self.ticks["sym"] == sym)
            self._idx[sym] = idx
        return idx

    def quote_at(self, sym: int, k: int) -> tuple[float, float] | None:
        """The symbol's latest bid and ask as of batch index k (inclusive)."""
        idx = self.indices(sym)
        j = int(np.searchsorted(idx, k, side="right")) - 1
        if j >= 0:
            row = self.ticks[idx[j]]
            return float(row["bid"]), float(row["ask"])
        bid, ask = self._carry_bid[sym], self._carry_ask[sym]
        if np.isnan(bid) or np.isnan(ask):
            return None
        return float(bid), float(ask)

    def mid_at(self, sym: int, k: int) -> float | None:
        q = self.quote_at(sym, k)
        return None if q is None else (q[0] + q[1]) / 2


@dataclass(frozen=True, slots=True)
class OrderFill:
    idx: int
    ts: int
    order: Order
    price: float


@dataclass(frozen=True, slots=True)
class Exit:
    idx: int
    ts: int
    position_id: str
    price: float
    reason: str  # stop_loss, take_profit, or close (a market close order: flatten)
    order: Order | None  # the close order, when one did it


@dataclass(frozen=True, slots=True)
class Cancel:
    idx: int
    order: Order
    reason: str


Execution = OrderFill | Exit | Cancel


def _window(quotes: BatchQuotes, sym: int, start: int, stop: int) -> np.ndarray:
    idx = quotes.indices(sym)
    return idx[np.searchsorted(idx, start) : np.searchsorted(idx, stop)]


def _first_exit(
    ticks: np.ndarray,
    window: np.ndarray,
    side: Side,
    stop_loss: float | None,
    take_profit: float | None,
) -> tuple[int, str] | None:
    if len(window) == 0 or (stop_loss is None and take_profit is None):
        return None
    watch = ticks["bid"][window] if side is Side.BUY else ticks["ask"][window]
    hit_sl = np.zeros(len(window), dtype=bool)
    hit_tp = np.zeros(len(window), dtype=bool)
    if stop_loss is not None:
        hit_sl = watch <= stop_loss if side is Side.BUY else watch >= stop_loss
    if take_profit is not None:
        hit_tp = watch >= take_profit if side is Side.BUY else watch <= take_profit
    hits = np.flatnonzero(hit_sl | hit_tp)
    if len(hits) == 0:
        return None
    j = int(hits[0])
    return int(window[j]), "stop_loss" if hit_sl[j] else "take_profit"


def match(
    quotes: BatchQuotes,
    start: int,
    stop: int,
    working: Iterable[Order],
    positions: Iterable[Position],
    sym_index: dict[str, int],
) -> list[Execution]:
    """What fills and exits happen in ticks[start:stop], in tick order.

    Positions opened by a fill here are watched for their stop and target from the next tick
    on. A close order and a stop on the same position: whichever comes first wins, and the
    close order that loses the race is cancelled.
    """
    ticks = quotes.ticks
    ts = ticks["ts_event"]
    out: list[tuple[int, int, int, Execution]] = []  # (idx, phase, rank, execution)
    close_orders: dict[str, OrderFill] = {}
    # (position, symbol, side, stop, target, first index, earliest tick time) to watch
    watch: list[tuple[str, str, Side, float | None, float | None, int, int]] = []

    rank = 0
    for order in working:
        rank += 1
        sym = sym_index[order.symbol]
        window = _window(quotes, sym, start, stop)
        if len(window) == 0:
            continue
        j = int(np.searchsorted(ts[window], order.due_ts, side="left"))
        if j >= len(window):
            continue
        k = int(window[j])
        price = float(ticks["ask"][k] if order.side is Side.BUY else ticks["bid"][k])
        fill = OrderFill(k, int(ts[k]), order, price)
        if order.intent is OrderIntent.OPEN:
            out.append((k, 0, rank, fill))
            watch.append(
                (
                    order.order_id,
                    order.symbol,
                    order.side,
                    order.stop_loss,
                    order.take_profit,
                    k + 1,
                    int(ts[k]),
                )
            )
        elif order.position_id is not None:
            close_orders[order.position_id] = fill

    existing = [
        (p.position_id, p.symbol, p.side, p.stop_loss, p.take_profit, start, p.ts_opened)
        for p in positions
    ]
    for position_id, symbol, side, sl, tp, from_idx, not_before in existing + watch:
        rank += 1
        window = _window(quotes, sym_index[symbol], from_idx, stop)
        # a feed restarted earlier in time must not close a position on its own past
        window = window[np.searchsorted(ts[window], not_before) :]
        hit = _first_exit(ticks, window, side, sl, tp)
        close = close_orders.pop(position_id, None)
        if close is not None and (hit is None or close.idx <= hit[0]):
            out.append(
                (
                    close.idx,
                    1,
                    rank,
                    Exit(close.idx, close.ts, position_id, close.price, "close", close.order),
                )
            )
        elif hit is not None:
            k, reason = hit
            price = float(ticks["bid"][k] if side is Side.BUY else ticks["ask"][k])
            out.append((k, 1, rank, Exit(k, int(ts[k]), position_id, price, reason, None)))
            if close is not None:
                out.append((k, 2, rank, Cancel(k, close.order, "position already closed")))
    for position_id, fill in close_orders.items():  # its position was gone before the fill
        rank += 1
        out.append((fill.idx, 2, rank, Cancel(fill.idx, fill.order, f"no position {position_id}")))
    out.sort(key=lambda item: item[:3])
    return [item[3] for item in out]
