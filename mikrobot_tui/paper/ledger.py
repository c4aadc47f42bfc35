"""The books: every change to an account is an event, and fills become positions and money here.

`emit` appends an event to the log and applies it to the state in the same step, so what the
engine knows is always a fold of what it has logged (invariant 3).

A fill is booked by the account's order management system:
- hedging (as MetaTrader 5 hedging accounts): an opening order has a position of its own (the
  order's id), a closing order reduces the position it names;
- netting: one position per symbol; a fill on its side adds (the entry becomes the volume-
  weighted average), a fill against it reduces, closes, or closes and opens the rest the other
  way (a reversal).
Partial closes work in both. Commission is charged on every fill; P&L is converted into the
account currency through the current quotes (USDJPY for a JPY-quoted pair, EURGBP through
GBPUSD), and through the rate stored on the position at entry only when no quote links the
currencies any more.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from mikrobot_tui.config import AccountSettings, PaperSettings
from mikrobot_tui.domain.events import Event, EventKind
from mikrobot_tui.domain.instruments import Instrument, conversion_rate, currency_pairs
from mikrobot_tui.domain.orders import Order, Position, Side
from mikrobot_tui.paper import costs
from mikrobot_tui.paper.execution import BatchQuotes
from mikrobot_tui.paper.margin import MarginFigures, figures
from mikrobot_tui.paper.portfolio import AccountState, EngineState, apply
from mikrobot_tui.paper.quotes import LastQuotes
from mikrobot_tui.store.events import EventLog
from mikrobot_tui.store.schema import COLUMNS
from mikrobot_tui.store.writer import Writer

EPS = 1e-9


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
        accounts: Mapping[str, AccountSettings] | None = None,
        paper: PaperSettings | None = None,
    ) -> None:
        self.state = state
        self.log = EventLog(writer, state.last_seq)
        self.writer = writer
        self._catalogue = catalogue
        self._quotes = quotes
        self.symbol_index = quotes.index  # sym of a batch's ticks, by symbol name
        self.instruments = [catalogue[s] for s in quotes.symbols]  # indexed by sym
        self.equivalents = equivalents
        self.pairs = currency_pairs(self.instruments, equivalents)
        self.paper = paper or PaperSettings()
        self.terms = dict(accounts or {})  # account name -> its settings (oms, leverage, costs)

    def instrument(self, symbol: str) -> Instrument:
        return self._catalogue[symbol]

    def account_terms(self, name: str) -> AccountSettings:
        terms = self.terms.get(name)
        if terms is None:  # an account of an earlier configuration: the defaults
            terms = self.terms[name] = AccountSettings(name=name)
        return terms

    def netting(self, name: str) -> bool:
        return self.account_terms(name).oms == "netting"

    def leverage(self, name: str, inst: Instrument) -> float:
        return costs.leverage_for(self.account_terms(name), self.paper, inst)

    # ---------------------------------------------------------------- events

    def emit(self, ts: int, kind: EventKind, account: str | None, payload: dict[str, Any]) -> Event:
        event = self.log.append(ts, kind, account, payload)
        apply(self.state, event)
        return event

    # ---------------------------------------------------------------- fills

    def book(
        self,
        order: Order,
        lots: float,
        price: float,
        ts: int,
        quotes: BatchQuotes | None,
        k: int,
        liquidity: str,
        slippage: float,
    ) -> str | None:
        """Book one fill of `order`: the fill event, then the positions it opens, adds to,
        reduces or reverses. Returns the id of the position it opened or added to."""
        acct = self.state.accounts[order.account]
        inst = self._catalogue[order.symbol]
        rate = self.rate(inst.quote, acct.currency, quotes, k)
        price = inst.round_price(price)
        lots = inst.round_lots(lots + EPS) if lots > 0 else lots
        commission = money(
            costs.commission(
                self.account_terms(acct.name), inst, lots, price, liquidity, rate or 1.0
            )
        )
        remaining = round(order.remaining - lots, 10)
        self.emit(
            ts,
            EventKind.ORDER_FILLED,
            acct.name,
            {
                "order_id": order.order_id,
                "price": price,
                "lots": lots,
                "commission": commission,
                "liquidity": liquidity,
                "slippage": inst.round_price(slippage),
                "remaining": max(remaining, 0.0),
            },
        )
        plan: list[tuple[Position | None, float]] = []  # (position reduced or None, lots)
        left = lots
        for pos in self._against(acct, order):
            if left <= EPS:
                break
            take = min(left, pos.lots)
            plan.append((pos, take))
            left = round(left - take, 10)
        if left > EPS and not order.reduces:
            plan.append((None, left))
        # the fill's commission is shared by lots; the last part takes the cents' remainder
        parts = [money(commission * part / lots) for _, part in plan[:-1]]
        if plan:
            parts.append(money(commission - sum(parts)))
        opened = None
        for (pos, part), fee in zip(plan, parts, strict=True):
            if pos is not None:
                self._reduce(acct, pos, part, price, ts, quotes, k, fee, order)
            else:
                opened = self._open_or_add(acct, order, inst, part, price, ts, quotes, k, fee, rate)
        return opened

    def _against(self, acct: AccountState, order: Order) -> list[Position]:
        """The positions a fill reduces first, oldest first."""
        if order.position_id is not None:
            pos = acct.positions.get(order.position_id)
            return [pos] if pos is not None and pos.side is not order.side else []
        if not (order.reduces or self.netting(acct.name)):
            return []
        return sorted(
            (
                p
                for p in acct.positions.values()
                if p.symbol == order.symbol and p.side is not order.side
            ),
            key=lambda p: (p.ts_opened, p.position_id),
        )

    def _open_or_add(
        self,
        acct: AccountState,
        order: Order,
        inst: Instrument,
        lots: float,
        price: float,
        ts: int,
        quotes: BatchQuotes | None,
        k: int,
        commission: float,
        rate: float | None,
    ) -> str:
        commission = money(commission)
        if self.netting(acct.name):
            same = next((p for p in acct.positions.values() if p.symbol == order.symbol), None)
        else:
            same = acct.positions.get(order.order_id)  # an earlier partial fill of this order
        risk = 0.0
        if order.stop_loss is not None:
            r = rate if rate is not None else 1.0
            risk = abs(price - order.stop_loss) * inst.value_per_price_unit(lots) * r
        if same is not None:
            total = same.lots + lots
            entry = (same.entry_price * same.lots + price * lots) / total
            self.emit(
                ts,
                EventKind.POSITION_CHANGED,
                acct.name,
                {
                    "position_id": same.position_id,
                    "order_id": order.order_id,
                    "lots": round(total, 10),
                    "entry_price": round(entry, 10),
                    "added_lots": lots,
                    "closed_lots": 0.0,
                    "commission": commission,
                    "risk_amount": money(same.risk_amount + risk),
                },
            )
            return same.position_id
        equity = self.equity(acct, quotes, k)
        self.emit(
            ts,
            EventKind.POSITION_OPENED,
            acct.name,
            {
                "position_id": order.order_id,
                "order_id": order.order_id,
                "symbol": order.symbol,
                "side": str(order.side),
                "lots": lots,
                "entry_price": price,
                "stop_loss": order.stop_loss,
                "take_profit": order.take_profit,
                "commission": commission,
                "risk_amount": money(risk),
                "equity_at_open": money(equity),
                "strategy": order.strategy,
                "rate": rate if rate is not None else 1.0,
            },
        )
        return order.order_id

    def _reduce(
        self,
        acct: AccountState,
        pos: Position,
        lots: float,
        price: float,
        ts: int,
        quotes: BatchQuotes | None,
        k: int,
        commission: float,
        order: Order | None,
    ) -> None:
        """Close `lots` of a position at `price`: the whole of it, or part (a partial close)."""
        inst = self._catalogue[pos.symbol]
        rate = self.rate(inst.quote, acct.currency, quotes, k)
        if rate is None:  # no quote links the currencies any more: the rate at entry
            rate = pos.rate_at_entry
        move = (price - pos.entry_price) * pos.side.sign
        pnl = money(move * inst.value_per_price_unit(lots) * rate)
        commission = money(commission)
        fraction = lots / pos.lots
        entry_commission = pos.entry_commission * fraction
        net = pnl - commission - entry_commission
        risk = pos.risk_amount * fraction
        reason = _exit_reason(order)
        common = {
            "position_id": pos.position_id,
            "exit_price": price,
            "reason": reason,
            "pnl": pnl,
            "commission": commission,
            "rate": rate,
            "return_pct": net / pos.equity_at_open * 100 if pos.equity_at_open else 0.0,
            "r_multiple": net / risk if risk > 0 else None,
        }
        if lots >= pos.lots - EPS:
            self.emit(ts, EventKind.POSITION_CLOSED, acct.name, common)
        else:
            self.emit(
                ts,
                EventKind.POSITION_CHANGED,
                acct.name,
                {
                    **common,
                    "order_id": order.order_id if order is not None else None,
                    "lots": round(pos.lots - lots, 10),
                    "entry_price": pos.entry_price,
                    "added_lots": 0.0,
                    "closed_lots": lots,
                },
            )
        trade = acct.trades[-1]  # ClosedTrade's fields are the table's columns
        row = tuple(getattr(trade, column) for column in COLUMNS["trades"])
        self.writer.upsert("trades", COLUMNS["trades"], [row])

    def charge_swap(
        self, acct: AccountState, pos: Position, amount: float, ts: int, m: int
    ) -> None:
        payload = {"position_id": pos.position_id, "amount": money(amount), "multiplier": m}
        self.emit(ts, EventKind.SWAP, acct.name, payload)

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
            src, dst, self.instruments, self._mid_fn(quotes, k), self.equivalents, self.pairs
        )

    def quote(self, symbol: str, quotes: BatchQuotes | None, k: int) -> tuple[float, float] | None:
        s = self._quotes.index.get(symbol)
        if s is None:  # a symbol this feed does not carry: no price
            return None
        return quotes.quote_at(s, k) if quotes is not None else self._quotes.quote(s)

    def mark(self, symbol: str, side: Side, quotes: BatchQuotes | None, k: int) -> float | None:
        """What closing a position would get: the bid for a long, the ask for a short."""
        q = self.quote(symbol, quotes, k)
        if q is None:
            return None
        return float(q[0] if side is Side.BUY else q[1])

    def open_pnl(
        self, acct: AccountState, pos: Position, quotes: BatchQuotes | None, k: int
    ) -> tuple[float | None, float]:
        """(mark, unrealized P&L in the account currency); 0 while no price is known."""
        inst = self._catalogue[pos.symbol]
        mark = self.mark(pos.symbol, pos.side, quotes, k)
        if mark is None:
            return mark, 0.0
        rate = self.rate(inst.quote, acct.currency, quotes, k)
        if rate is None:
            rate = pos.rate_at_entry
        move = (mark - pos.entry_price) * pos.side.sign
        return mark, move * inst.value_per_price_unit(pos.lots) * rate

    def equity(self, acct: AccountState, quotes: BatchQuotes | None, k: int) -> float:
        unrealized = sum(self.open_pnl(acct, p, quotes, k)[1] for p in acct.positions.values())
        return acct.balance + unrealized

    def position_margin(
        self, acct: AccountState, pos: Position, quotes: BatchQuotes | None, k: int
    ) -> float:
        """Notional at the mid over leverage, in the account currency."""
        inst = self._catalogue[pos.symbol]
        q = self.quote(pos.symbol, quotes, k)
        price = (q[0] + q[1]) / 2 if q is not None else pos.entry_price
        rate = self.rate(inst.quote, acct.currency, quotes, k)
        if rate is None:
            rate = pos.rate_at_entry
        notional = inst.value_per_price_unit(pos.lots) * price * rate
        return notional / self.leverage(acct.name, inst)

    def margin(
        self, acct: AccountState, quotes: BatchQuotes | None = None, k: int = 0
    ) -> MarginFigures:
        """Balance, equity, used and free margin and the margin level, at batch tick k or now."""
        used = sum(self.position_margin(acct, p, quotes, k) for p in acct.positions.values())
        return figures(acct.balance, self.equity(acct, quotes, k), used, acct.margin_call)

    def order_margin(
        self,
        acct: AccountState,
        order: Order,
        lots: float,
        price: float,
        k: int,
        quotes: BatchQuotes | None,
    ) -> float:
        """The margin an opening fill of `lots` at `price` would add, in the account currency."""
        inst = self._catalogue[order.symbol]
        rate = self.rate(inst.quote, acct.currency, quotes, k) or 1.0
        return inst.value_per_price_unit(lots) * price * rate / self.leverage(acct.name, inst)

    def exposure_after(self, acct: AccountState, order: Order, lots: float) -> float:
        """Lots of the fill that would open or add exposure (the rest reduces a position)."""
        against = sum(p.lots for p in self._against(acct, order))
        return max(0.0, lots - against)


def _exit_reason(order: Order | None) -> str:
    if order is None:
        return "close"
    if order.parent_id is not None:  # a bracket's child
        return "stop_loss" if order.order_id.endswith("-SL") else "take_profit"
    return "stop_out" if order.strategy == "stop_out" else "close"
