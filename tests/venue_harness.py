"""A paper venue on a real SQLite file, fed hand-built ticks: the known answers' test bench."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from mikrobot_tui.clock import LiveClock
from mikrobot_tui.config import AccountSettings, PaperSettings, RiskSettings
from mikrobot_tui.domain.events import Event, EventKind
from mikrobot_tui.domain.instruments import _fx, default_instruments
from mikrobot_tui.domain.market import BAR_DTYPE, NS_PER_MS, TICK_DTYPE
from mikrobot_tui.domain.orders import Order, OrderIntent, Side
from mikrobot_tui.engine.control import Control
from mikrobot_tui.engine.limits import Limits
from mikrobot_tui.paper.execution import BatchQuotes
from mikrobot_tui.paper.ledger import Ledger
from mikrobot_tui.paper.portfolio import EngineState, fold, order_payload
from mikrobot_tui.paper.quotes import LastQuotes
from mikrobot_tui.paper.venue import Venue
from mikrobot_tui.store.events import read_events
from mikrobot_tui.store.schema import open_db
from mikrobot_tui.store.writer import Writer

T0 = 1_700_000_000_000_000_000  # Tuesday 2023-11-14 22:13:20 UTC: forex is open
SYMBOLS = ["EURUSD", "GBPUSD", "USDJPY", "EURGBP", "XAUUSD", "BTCUSDT"]
NO_COSTS = {
    "latency_model": "fixed",
    "latency_ms": 0,
    "slippage_spread": 0.0,
    "slippage_volatility": 0.0,
    "impact_k": 0.0,
}


class Bench:
    def __init__(
        self,
        tmp_path: Path,
        accounts: dict[str, dict[str, Any]] | None = None,
        paper: dict[str, Any] | None = None,
        symbols: list[str] = SYMBOLS,
    ) -> None:
        tmp_path.mkdir(parents=True, exist_ok=True)
        conn = open_db(tmp_path / "venue.db").conn
        self.conn = conn
        self.writer = Writer(conn)
        catalogue = {**default_instruments(), "EURGBP": _fx("EURGBP")}
        self.quotes = LastQuotes(symbols)
        terms = {
            name: AccountSettings(name=name, **cfg) for name, cfg in (accounts or {"A": {}}).items()
        }
        self.ledger = Ledger(
            EngineState(),
            self.writer,
            catalogue,
            self.quotes,
            {"USDT": "USD"},
            terms,
            PaperSettings(**{**NO_COSTS, **(paper or {})}),
        )
        for name, t in terms.items():
            payload = {"currency": t.currency, "balance": t.balance, "strategy": "", "params": {}}
            self.ledger.emit(T0, EventKind.ACCOUNT_OPENED, name, payload)
        self.venue = Venue(self.ledger)
        self._made = (catalogue, terms)
        self.ms = 0
        self.clean_stream = 0

    def restart(self) -> None:
        """A new venue on the same file, its accounts folded from the log, as at a restart."""
        self.writer.flush()
        catalogue, terms = self._made
        state = fold(read_events(self.conn))
        self.writer = Writer(self.conn)
        self.ledger = Ledger(
            state, self.writer, catalogue, self.quotes, {"USDT": "USD"}, terms, self.ledger.paper
        )
        self.venue = Venue(self.ledger)
        self.venue.watch.last_ts = state.last_ts  # as the engine does

    def with_limits(self, **risk: Any) -> Limits:
        """The account limits on this venue, with the operator's control to halt and flatten
        through, as the engine wires them."""
        limits = Limits(self.ledger, RiskSettings(**risk))
        control = Control(
            self.conn,
            self.ledger,
            self.quotes,
            lambda: self.quotes.market_now,
            LiveClock(),
            lambda order_id: 0,
            lambda: None,
            self.writer,
        )
        control.limits = limits
        limits.halt_engine = lambda ts, why: control.halt("limits", ts=ts, reason=why)
        limits.flatten_account = control.flatten_account
        self.venue.watch.limits = limits
        self.control = control
        return limits

    def submit(self, symbol: str, side: Side, lots: float, account: str = "A", **kw: Any) -> str:
        acct = self.ledger.state.accounts[account]
        order_id = kw.pop("order_id", acct.next_order_id())
        latency_ms = kw.pop("latency_ms", 0)  # not an Order field: due that much later
        ts = T0 + self.ms * NS_PER_MS
        names = {f.name for f in fields(Order)}
        extra = {k: v for k, v in kw.items() if k in names}
        order = Order(
            order_id=order_id,
            account=account,
            symbol=symbol,
            side=side,
            lots=lots,
            intent=extra.pop("intent", OrderIntent.OPEN),
            ts_submitted=ts,
            due_ts=ts + latency_ms * NS_PER_MS,
            **extra,
        )
        self.ledger.emit(ts, EventKind.ORDER_SUBMITTED, account, order_payload(order))
        return order_id

    def tick(self, *rows: tuple[str, float, float] | tuple[str, float, float, float]) -> None:
        """One batch: each row (symbol, bid, ask[, last]) one millisecond after the last."""
        out = np.zeros(len(rows), dtype=TICK_DTYPE)
        for i, row in enumerate(rows):
            self.ms += 1
            ts = T0 + self.ms * NS_PER_MS
            last = row[3] if len(row) > 3 else np.nan
            out[i] = (ts, ts, self.quotes.index[row[0]], row[1], row[2], last, np.nan)
        self.run(out)

    def run(self, ticks: np.ndarray, batch: int | None = None) -> None:
        step = batch or len(ticks)
        for a in range(0, len(ticks), step):
            part = ticks[a : a + step]
            quotes = BatchQuotes(part, self.quotes.bid, self.quotes.ask)
            # market time only grows, across batches too (as the corridor keeps it)
            stream = np.maximum.accumulate(part["ts_event"])
            np.maximum(stream, self.clean_stream, out=stream)
            self.clean_stream = int(stream[-1])
            self.venue.begin(quotes, stream, np.zeros(0, BAR_DTYPE), np.zeros(0, np.int64))
            self.venue.advance(len(part))
            self.quotes.update(part)

    def ms_ts(self, ms: int) -> int:
        return T0 + ms * NS_PER_MS

    @property
    def account(self):
        return self.ledger.state.accounts["A"]

    def events(self, *kinds: EventKind) -> list[Event]:
        self.writer.flush()
        got = read_events(self.conn)
        return [e for e in got if not kinds or e.kind in kinds]

    def kinds(self) -> list[str]:
        return [str(e.kind) for e in self.events() if e.kind is not EventKind.ACCOUNT_OPENED]

    def refold(self) -> EngineState:
        return fold(self.events())
