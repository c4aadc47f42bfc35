"""The books: every change to an account is an event, and what the accounts are worth.

`emit` appends an event to the log and applies it to the state in the same step, so what the
engine knows is always a fold of what it has logged (invariant 3). Marks, conversion rates,
equity and margin come from the quotes as of a tick of the batch being matched, or from the
last quotes between batches; a rate is never a constant (USDJPY for a JPY-quoted pair,
EURGBP through GBPUSD), and a position falls back to its rate at entry, never to 1.0.
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
        # rooms that follow what happens as it happens (the account limits count entries)
        self.watchers: list[Callable[[Event], None]] = []
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
        for watcher in self.watchers:
            watcher(event)
        return event

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
