"""The account limits enforced: one `AccountLimits` per paper account, fed and asked.

- Fed (paper/watch.py calls `band`, `judge`, `settle`): each account's balance and equity at
  every equity point, after every step that changed its balance (fills, swaps, commissions),
  and at the first tick its equity leaves the band its state holds in, found by array. So a
  loss limit bites at the tick it is crossed, whatever the batching (invariant 2).
- Asked (engine/decisions.py): before an entry goes, `refusal` checks it against the limits
  with the positions held. Every entry submitted counts towards the day's trades as its event
  is emitted (the ledger's watchers), so a running engine counts what a restart reads from
  the log, whatever path the entry took. Orders that reduce exposure never come here.
- Every violation is a `limit_violation` event, every change of an account's state an
  `account_state` event; the fold keeps the state (paper/portfolio.py), so the venue refuses
  an entry decided before the change, at its arrival or at its fill (paper/checks.py), and a
  restart starts from it. A breach halts the account; with `risk.flatten_on_breach` its
  working entries are cancelled and its positions closed at market, as the operator's flatten
  does (engine/control.py).

The engine halts itself (source "limits", as `mikrobot halt`) when 5 violations fall within 5
minutes of market time. Violations of kind `halted`, `reducing`, `max_positions` and
`max_trades_per_day` do not count: the first two are the consequence of a state already on
record, the last two are caps a strategy meets in routine, signalling while its slots or its
day's entries are used up. The count starts again after a halt.

Risk a position carries, for heat and the floors' worst case: what its stop loses from the
current price, in the account currency (0 for a stop in profit). A position without a stop
counts the risk recorded when it opened, or `risk_per_trade` of its equity at opening when
none was: the budget a sized entry spends, since its true worst case is unbounded.

Correlation: the candidate's M1 log returns against each other symbol held, over the last
`risk.correlation_window` minutes both have bars for, from the bar history the corridor keeps
(`history`, engine/decisions.py). A symbol with too few bars yet is not judged.

A restart restores the day in progress from the event log (`DayLog`, fed in the same pass as
the fold): the balance at the day's midnight, the best balance at an earlier midnight (the
trailing floor), the entries today, and each account's state.
"""

from __future__ import annotations

import functools
import math
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from mikrobot_tui.config import RiskSettings
from mikrobot_tui.domain.events import Event, EventKind
from mikrobot_tui.domain.market import NS_PER_SECOND
from mikrobot_tui.domain.orders import Order, OrderIntent, Position, TradingState
from mikrobot_tui.paper.execution import BatchQuotes
from mikrobot_tui.paper.ledger import Ledger
from mikrobot_tui.paper.portfolio import AccountState, EngineState
from mikrobot_tui.trading.risk.days import next_day_start_ns
from mikrobot_tui.trading.risk.limits import AccountLimits
from mikrobot_tui.trading.risk.violations import Exposure, LimitKind, LimitStatus, Violation
from mikrobot_tui.trading.timeframes import BarHistory

STORM_COUNT = 5
STORM_MINUTES = 5
STORM_WINDOW_NS = STORM_MINUTES * 60 * NS_PER_SECOND
UNCOUNTED = frozenset(
    {LimitKind.HALTED, LimitKind.REDUCING, LimitKind.MAX_POSITIONS, LimitKind.TRADES_PER_DAY}
)

HaltEngine = Callable[[int, str], None]  # ts, reason
FlattenAccount = Callable[[str, int], None]  # account, ts


@dataclass
class DayFigures:
    """One account's day in progress, as the event log tells it."""

    balance: float
    day_end: int
    day_start_balance: float
    best_eod_balance: float = -math.inf
    trades_today: int = 0


def m1_returns(history: BarHistory, symbols: list[str], window: int) -> dict[str, np.ndarray]:
    """Each symbol's M1 log returns on the minutes every one of them has a bar for."""
    bars = {s: history.last(s, "M1", history.capacity) for s in symbols}
    common = functools.reduce(_shared, (b[0] for b in bars.values()))[-(window + 1) :]
    out = {}
    for s, (ts, _o, _h, _l, close, _v) in bars.items():
        closes = close[np.searchsorted(ts, common)]
        out[s] = np.diff(np.log(closes)) if len(closes) > 1 else np.zeros(0)
    return out


def _shared(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The values of two ascending, duplicate-free arrays that are in both (np.intersect1d
    sorts afresh, and its first call imports numpy.ma: 30 ms at a decision)."""
    if len(a) == 0 or len(b) == 0:
        return a[:0]
    at = np.minimum(np.searchsorted(b, a), len(b) - 1)
    return a[b[at] == a]


def is_entry(p: dict) -> bool:
    """An order_submitted payload that opens exposure on a decision (not a bracket's child)."""
    return (
        p.get("intent") == str(OrderIntent.OPEN)
        and p.get("parent_id") is None
        and not p.get("reduce_only", False)
    )


class DayLog:
    """The day figures and recent violations, read in the same pass that folds the log."""

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        self.days: dict[str, DayFigures] = {}
        self.violations: deque[int] = deque(maxlen=STORM_COUNT)

    def before(self, event: Event) -> None:
        """Midnights the event's time passes: each account's balance then starts a day."""
        for day in self.days.values():
            if event.ts >= day.day_end:
                day.day_start_balance = day.balance
                day.best_eod_balance = max(day.best_eod_balance, day.balance)
                day.day_end = next_day_start_ns(event.ts, self.zone)
                day.trades_today = 0

    def after(self, event: Event, state: EngineState) -> None:
        p = event.payload
        if event.kind is EventKind.HALTED:
            self.violations.clear()
        elif event.kind is EventKind.LIMIT_VIOLATION and p.get("kind") not in UNCOUNTED:
            self.violations.append(event.ts)
        acct = state.accounts.get(event.account) if event.account else None
        if acct is None:
            return
        day = self.days.get(acct.name)
        if day is None:
            start = acct.initial_balance
            day = DayFigures(start, next_day_start_ns(event.ts, self.zone), start)
            self.days[acct.name] = day
        day.balance = acct.balance
        if event.kind is EventKind.ORDER_SUBMITTED and is_entry(p):
            day.trades_today += 1


class Limits:
    def __init__(self, ledger: Ledger, risk: RiskSettings, restored: DayLog | None = None) -> None:
        self._ledger = ledger
        self._risk = risk
        self._restored = restored or DayLog(ZoneInfo(risk.day_timezone))
        self.books: dict[str, AccountLimits] = {}
        self._fed: dict[str, float] = {}  # account -> the balance it was last judged with
        self._recent: deque[int] = deque(self._restored.violations, maxlen=STORM_COUNT)
        self.halt_engine: HaltEngine = lambda ts, reason: None  # wired by the engine
        self.flatten_account: FlattenAccount = lambda name, ts: None
        self.history: BarHistory | None = None  # the corridor's bars, for correlation
        # account -> (what its band is made of, the band): the watch asks at every step
        self._bands: dict[str, tuple[tuple[Any, ...], tuple[float, float] | None]] = {}
        ledger.watchers.append(self.watch)

    def book(self, acct: AccountState, ts: int) -> AccountLimits:
        """The account's limits, built on first use from its starting balance and its day."""
        book = self.books.get(acct.name)
        if book is None:
            day = self._restored.days.get(acct.name)
            # built in the log's last day: the first update after its midnight starts the next
            # one from the balance the log ended with
            book = AccountLimits(
                self._risk,
                initial_capital=acct.initial_balance,
                ts_ns=day.day_end - 1 if day else ts,
                balance=acct.balance,
                day_start_balance=day.day_start_balance if day else None,
                best_eod_balance=day.best_eod_balance if day else None,
                trades_today=day.trades_today if day else 0,
            )
            book.state = acct.trading_state
            self.books[acct.name] = book
            self._fed[acct.name] = acct.balance
        return book

    # ---------------------------------------------------------------- what the watch asks

    def band(self, account: str) -> tuple[float, float] | None:
        book = self.books.get(account)
        if book is None:
            acct = self._ledger.state.accounts.get(account)
            if acct is None:
                return None
            book = self.book(acct, self._ledger.state.last_ts)
        # the band moves only with the book's state, its day's start and its best day's end
        made_of = (book, book.state, book.day_start_balance, book.best_eod_balance)
        cached = self._bands.get(account)
        if cached is not None and cached[0] == made_of:
            return cached[1]
        band = self._band(book)
        self._bands[account] = (made_of, band)
        return band

    def _band(self, book: AccountLimits) -> tuple[float, float] | None:
        if book.state is TradingState.HALTED:
            return None
        floor = max(book.daily_floor, book.overall_floor)
        share = 1 - self._risk.reducing_at
        reducing = max(
            book.daily_floor + share * book.daily_loss_limit,
            book.overall_floor + share * book.overall_loss_limit,
        )
        if book.state is TradingState.REDUCING:
            return floor, reducing
        return math.nextafter(reducing, math.inf), math.inf  # at the threshold: REDUCING

    def settle(self, quotes: BatchQuotes | None, k: int, ts: int) -> None:
        for acct in list(self._ledger.state.accounts.values()):
            if self._fed.get(acct.name) != acct.balance:
                self.judge(acct, quotes, k, ts)

    def judge(self, acct: AccountState, quotes: BatchQuotes | None, k: int, ts: int) -> None:
        led = self._ledger
        book = self.book(acct, ts)
        self._fed[acct.name] = acct.balance
        equity = led.equity(acct, quotes, k)
        risk = sum(self.position_risk(acct, p, quotes, k) for p in acct.positions.values())
        before = book.state
        update = book.update(ts, balance=acct.balance, equity=equity, open_risk=risk)
        self._record(acct.name, ts, update.violations)
        if update.state is before:
            return
        reason = "; ".join(v.message for v in update.violations) or (
            f"loss limits below {self._risk.reducing_at:.0%} used"
        )
        self._state_event(acct.name, ts, before, update.state, reason)
        if update.flatten:
            self.flatten_account(acct.name, ts)

    # ---------------------------------------------------------------- what decisions ask

    def refusal(
        self,
        order: Order,
        risk_amount: float,
        quotes: BatchQuotes | None,
        k: int,
        now: int,
        closing: Collection[str] = (),
    ) -> str | None:
        """Why this entry may not go, with every limit it breaks on record; None: it goes.

        `closing` names the positions a reversing signal closes before this entry: they are
        not held for the limits."""
        led = self._ledger
        if led.state.trading_state is TradingState.REDUCING:
            return "trading reducing: only orders that reduce exposure"
        acct = led.state.accounts[order.account]
        book = self.book(acct, now)
        held = [
            Exposure(p.symbol, p.side, self.position_risk(acct, p, quotes, k))
            for p in acct.positions.values()
            if p.position_id not in closing
        ]
        verdict = book.check(
            now,
            Exposure(order.symbol, order.side, risk_amount),
            held,
            equity=led.equity(acct, quotes, k),
            returns=self._returns(order.symbol, {h.symbol for h in held}),
        )
        self._record(acct.name, now, verdict.violations)
        return None if verdict.allowed else f"account limits: {verdict.reason}"

    def _returns(self, symbol: str, held: set[str]) -> dict[str, np.ndarray] | None:
        """M1 log returns of the candidate and the other symbols held, on the minutes they
        all have a bar for (the last correlation_window of them)."""
        others = held - {symbol}
        if self.history is None or not others:
            return None
        return m1_returns(self.history, [symbol, *sorted(others)], self._risk.correlation_window)

    def watch(self, event: Event) -> None:
        """The ledger's watcher: an entry submitted counts towards its account's day."""
        if event.kind is EventKind.ORDER_SUBMITTED and event.account and is_entry(event.payload):
            acct = self._ledger.state.accounts.get(event.account)
            if acct is not None:
                self.book(acct, event.ts).record_entry(event.ts)

    def position_risk(
        self, acct: AccountState, pos: Position, quotes: BatchQuotes | None, k: int
    ) -> float:
        """What the position loses if its stop is hit from the current price (module doc)."""
        led = self._ledger
        if pos.stop_loss is None:
            if pos.risk_amount > 0:
                return pos.risk_amount
            return self._risk.risk_per_trade * pos.equity_at_open
        mark = led.mark(pos.symbol, pos.side, quotes, k)
        if mark is None:
            return max(0.0, pos.risk_amount)
        inst = led.instrument(pos.symbol)
        rate = led.rate(inst.quote, acct.currency, quotes, k) or pos.rate_at_entry
        move = (mark - pos.stop_loss) * pos.side.sign
        return max(0.0, move * inst.value_per_price_unit(pos.lots) * rate)

    # ---------------------------------------------------------------- the operator

    def resume(self, ts: int, source: str) -> int:
        """Lift every account's halt or REDUCING; the next judgement starts afresh."""
        n = 0
        for acct in list(self._ledger.state.accounts.values()):
            if acct.trading_state is TradingState.ACTIVE:
                continue
            book = self.books.get(acct.name)
            if book is not None:
                book.resume()
            self._state_event(acct.name, ts, acct.trading_state, TradingState.ACTIVE, source)
            self._fed.pop(acct.name, None)  # judged again at the next step
            n += 1
        return n

    # ---------------------------------------------------------------- events

    def _state_event(
        self, account: str, ts: int, before: TradingState, after: TradingState, reason: str
    ) -> None:
        payload = {"account": account, "from": str(before), "to": str(after), "reason": reason}
        self._ledger.emit(ts, EventKind.ACCOUNT_STATE, account, payload)

    def _record(self, account: str, ts: int, violations: tuple[Violation, ...]) -> None:
        led = self._ledger
        counted = None
        for v in violations:
            led.emit(ts, EventKind.LIMIT_VIOLATION, account, {**v.to_payload(), "account": account})
            if v.kind not in UNCOUNTED:
                self._recent.append(ts)
                counted = v
        if (
            counted is not None
            and len(self._recent) == STORM_COUNT
            and ts - self._recent[0] <= STORM_WINDOW_NS
            and led.state.trading_state is not TradingState.HALTED
        ):
            self._recent.clear()
            self.halt_engine(
                ts,
                f"{STORM_COUNT} limit violations within {STORM_MINUTES} minutes of "
                f"market time, the last: {counted.message}",
            )

    def status(self, acct: AccountState, equity: float) -> LimitStatus:
        """The account's limit figures at `equity` now (the read side's, `status --json`)."""
        book = self.book(acct, self._ledger.state.last_ts)
        risk = sum(self.position_risk(acct, p, None, 0) for p in acct.positions.values())
        return replace(
            book.status(),
            trading_state=acct.trading_state,
            daily_loss_used=max(0.0, book.day_start_balance - equity),
            heat=risk / equity * 100 if equity > 0 else math.inf,
        )
