"""The books: every change to an account is an event, and fills and exits become money here.

`emit` appends an event to the log and applies it to the state in the same step, so what the
engine knows is always a fold of what it has logged (invariant 3). A fill opens a position at
a price rounded to the tick, with its commission and the risk to its stop in the account
currency; an exit closes one with its P&L, converted through the current quotes (USDJPY for a
JPY-quoted pair), never through a constant. Marks and equity come from the quotes as of a tick
of the batch being matched, or from the last quotes between batches.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from mikrobot_tui.domain.events import Event, EventKind
from mikrobot_tui.domain.instruments import Instrument, conversion_rate, currency_pairs
from mikrobot_tui.domain.orders import Fill, Position, Side
from mikrobot_tui.paper.execution import BatchQuotes, Exit, OrderFill
from mikrobot_tui.paper.margin import (
    DEFAULT_LEVERAGE,
    DEFAULT_MARGIN_CALL_LEVEL,
    MarginFigures,
    margin_level,
)
from mikrobot_tui.paper.portfolio import AccountState, EngineState, apply
from mikrobot_tui.paper.quotes import LastQuotes
from mikrobot_tui.store.events import EventLog
from mikrobot_tui.store.schema import COLUMNS
from mikrobot_tui.store.writer import Writer


def money(x: float) -> float:
    return round(x, 2)


class Ledger:
    def __init__(
        self,
        state: EngineState,
        writer: Writer,
        catalogue: Mapping[str, Instrument],
        quotes: LastQuotes,
        equivalents: Mapping[str, str],
    ) -> None:
        self.state = state
        self.log = EventLog(writer, state.last_seq)
        self._writer = writer
        self._catalogue = catalogue
        self._quotes = quotes
        self.symbol_index = quotes.index  # sym of a batch's ticks, by symbol name
        self.instruments = [catalogue[s] for s in quotes.symbols]  # indexed by sym
        self._equivalents = equivalents
        self._pairs = currency_pairs(self.instruments, equivalents)

    # ---------------------------------------------------------------- events

    def emit(self, ts: int, kind: EventKind, account: str | None, payload: dict[str, Any]) -> Event:
        event = self.log.append(ts, kind, account, payload)
        apply(self.state, event)
        return event

    # ---------------------------------------------------------------- fills and exits

    def fill(self, fill: OrderFill, quotes: BatchQuotes) -> None:
        order = fill.order
        acct = self.state.accounts[order.account]
        inst = self._catalogue[order.symbol]
        rate = self.rate(inst.quote, acct.currency, quotes, fill.idx)
        if rate is None:
            payload = {"order_id": order.order_id, "reason": "no conversion rate at fill"}
            self.emit(fill.ts, EventKind.ORDER_CANCELLED, acct.name, payload)
            return
        price = inst.round_price(fill.price)
        commission = money(inst.commission(order.lots, price, rate))
        equity = self.equity(acct, quotes, fill.idx)
        risk = 0.0
        if order.stop_loss is not None:
            risk = abs(price - order.stop_loss) * inst.value_per_price_unit(order.lots) * rate
        done = Fill(
            order.order_id,
            acct.name,
            order.symbol,
            order.side,
            order.lots,
            price,
            commission,
            fill.ts,
        )
        self.emit(fill.ts, EventKind.ORDER_FILLED, acct.name, done.payload())
        self.emit(
            fill.ts,
            EventKind.POSITION_OPENED,
            acct.name,
            {
                "position_id": order.order_id,
                "order_id": order.order_id,
                "symbol": order.symbol,
                "side": str(order.side),
                "lots": order.lots,
                "entry_price": price,
                "stop_loss": order.stop_loss,
                "take_profit": order.take_profit,
                "commission": commission,
                "risk_amount": money(risk),
                "equity_at_open": money(equity),
                "strategy": order.strategy,
            },
        )

    def exit(self, ex: Exit, quotes: BatchQuotes) -> None:
        acct = next(a for a in self.state.accounts.values() if ex.position_id in a.positions)
        pos = acct.positions[ex.position_id]
        inst = self._catalogue[pos.symbol]
        rate = self.rate(inst.quote, acct.currency, quotes, ex.idx)
        if rate is None:  # cannot happen once the position's own symbol has quoted
            rate = 1.0
        price = inst.round_price(ex.price)
        move = (price - pos.entry_price) * pos.side.sign
        pnl = money(move * inst.value_per_price_unit(pos.lots) * rate)
        commission = money(inst.commission(pos.lots, price, rate))
        net = pnl - commission - pos.entry_commission
        if ex.order is not None:
            o = ex.order
            done = Fill(o.order_id, acct.name, o.symbol, o.side, pos.lots, price, commission, ex.ts)
            self.emit(ex.ts, EventKind.ORDER_FILLED, acct.name, done.payload())
        payload = {
            "position_id": pos.position_id,
            "exit_price": price,
            "reason": ex.reason,
            "pnl": pnl,
            "commission": commission,
            "rate": rate,
            "return_pct": net / pos.equity_at_open * 100 if pos.equity_at_open else 0.0,
            "r_multiple": net / pos.risk_amount if pos.risk_amount > 0 else None,
        }
        self.emit(ex.ts, EventKind.POSITION_CLOSED, acct.name, payload)
        trade = acct.trades[-1]  # ClosedTrade's fields are the table's columns
        row = tuple(getattr(trade, column) for column in COLUMNS["trades"])
        self._writer.upsert("trades", COLUMNS["trades"], [row])

    # ---------------------------------------------------------------- marks and money

    def _mid_fn(self, quotes: BatchQuotes | None, k: int) -> Callable[[str], float | None]:
        if quotes is None:
            return self._quotes.mid
        index = self._quotes.index

        def mid_of(symbol: str) -> float | None:
            s = index.get(symbol)
            return None if s is None else quotes.mid_at(s, k)

        return mid_of

    def rate(self, src: str, dst: str, quotes: BatchQuotes | None, k: int = 0) -> float | None:
        """What one unit of `src` is worth in `dst` at batch tick k (or now, without a batch)."""
        return conversion_rate(
            src, dst, self.instruments, self._mid_fn(quotes, k), self._equivalents, self._pairs
        )

    def mark(self, symbol: str, side: Side, quotes: BatchQuotes | None, k: int) -> float | None:
        """What closing a position would get: the bid for a long, the ask for a short."""
        s = self._quotes.index.get(symbol)
        if s is None:  # a position on a symbol this feed does not carry: no mark
            return None
        q = quotes.quote_at(s, k) if quotes is not None else self._quotes.quote(s)
        if q is None:
            return None
        return float(q[0] if side is Side.BUY else q[1])

    def open_pnl(
        self, acct: AccountState, pos: Position, quotes: BatchQuotes | None, k: int
    ) -> tuple[float | None, float]:
        """(mark, unrealized P&L in the account currency); 0 while no price or rate is known."""
        inst = self._catalogue[pos.symbol]
        mark = self.mark(pos.symbol, pos.side, quotes, k)
        rate = self.rate(inst.quote, acct.currency, quotes, k)
        if mark is None or rate is None:
            return mark, 0.0
        move = (mark - pos.entry_price) * pos.side.sign
        return mark, move * inst.value_per_price_unit(pos.lots) * rate

    def equity(self, acct: AccountState, quotes: BatchQuotes | None, k: int) -> float:
        unrealized = sum(self.open_pnl(acct, p, quotes, k)[1] for p in acct.positions.values())
        return acct.balance + unrealized

    def instrument(self, symbol: str) -> Instrument:
        return self._catalogue[symbol]

    def margin(self, acct: AccountState) -> MarginFigures:
        """Balance, equity and the margin the open positions use, at the last quotes.

        STAND-IN until the core's booking lands: used margin is each position's notional
        (lots x contract size x mark, the entry price while no mark is known) converted into
        the account currency at the current rate (the rate at entry when none is known),
        divided by the account's leverage (30 when it has none).
        """
        leverage = float(getattr(acct, "leverage", None) or DEFAULT_LEVERAGE)
        used = 0.0
        for pos in acct.positions.values():
            inst = self._catalogue[pos.symbol]
            mark = self.mark(pos.symbol, pos.side, None, 0) or pos.entry_price
            rate = self.rate(inst.quote, acct.currency, None)
            rate = pos.rate_at_entry if rate is None else rate
            used += pos.lots * inst.contract_size * mark * rate / leverage
        equity = self.equity(acct, None, 0)
        level = margin_level(equity, used)
        call_level = getattr(acct, "margin_call_level", None) or DEFAULT_MARGIN_CALL_LEVEL
        in_call = bool(getattr(acct, "margin_call", False)) or (
            level is not None and level < call_level
        )
        return MarginFigures(acct.balance, equity, used, equity - used, level, in_call)
