"""External signals in the engine: from the inbox to the orchestrator, like a strategy's.

The sources (data/signals: the EA's file, the webhook) put what they receive into a
thread-safe inbox. At the start of each batch (and on the runner's command cadence, so a quiet
feed does not hold them) the intake empties it:

- a rejection (malformed input) lands in `rejects` with its reason and counts a failure on
  the source's breaker (`signals:ea`, `signals:webhook`); while that breaker is open they are
  only counted, so a broken EA cannot flood the database;
- a signal whose key (its id, or for the EA's file a hash of its fields) was acted on before,
  in this run or an earlier one (`signal_ids`), is dropped: a signal is acted on once;
- a signal for an account that does not exist is a rejection; one for a symbol the feed does
  not carry is refused (an `order_refused` event) at once;
- the rest wait for their symbol's next clean tick, at most WAIT_FOR_QUOTE_S.

At that tick the signal is priced at what the order can get (the ask for a buy, the bid for a
sell), its stop and target become distances from that price, and it goes through the feed's
breaker, the source's breaker and the orchestrator's risk checks and sizing, as a strategy's
signal does. The `order_submitted` or `order_refused` event carries `source` (e.g.
"ea:signals.json", "webhook:127.0.0.1") and `signal_id`; the key goes to `signal_ids` in the
same transaction, so a restart never acts on it twice. Replays have no intake at all.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mikrobot_tui.clock import Clock
from mikrobot_tui.config import BreakerSettings, Settings
from mikrobot_tui.data.signals import ExternalSignal, Inbox, Rejection, SignalError
from mikrobot_tui.data.signals.sources import channels
from mikrobot_tui.domain.events import EventKind
from mikrobot_tui.domain.market import NS_PER_SECOND
from mikrobot_tui.domain.orders import Side, Signal
from mikrobot_tui.engine.decisions import Decisions, record_breaker
from mikrobot_tui.paper.execution import BatchQuotes
from mikrobot_tui.paper.ledger import Ledger
from mikrobot_tui.store.schema import COLUMNS
from mikrobot_tui.store.writer import Writer
from mikrobot_tui.trading.breakers import BreakerState, CircuitBreaker

WAIT_FOR_QUOTE_S = 60.0  # a signal waits this long (wall clock) for its symbol's next tick
MAX_PENDING = 1_000


@dataclass
class IntakeCounts:
    signals: int = 0  # well-formed signals received
    rejected: int = 0  # rejections stored
    suppressed: int = 0  # rejections only counted (breaker open)
    duplicates: int = 0  # signals acted on before
    submitted: int = 0
    refused: int = 0
    last_problem: str = ""


def build_intake(
    settings: Settings,
    mode: str,
    ledger: Ledger,
    decisions: Decisions,
    writer: Writer,
    wall: Clock,
    event_ts: Callable[[], int],
    conn: sqlite3.Connection,
) -> ExternalIntake | None:
    """The intake of the sources config.toml turns on; None for a replay or without any.
    `conn` gives the keys of the signals acted on before."""
    on = channels(settings.signals) if mode != "REPLAY" else []
    if not on:
        return None
    acted = {(c, k) for c, k in conn.execute("SELECT channel, key FROM signal_ids")}
    return ExternalIntake(
        on,
        settings.breakers,
        settings.signals.account,
        ledger,
        decisions,
        writer,
        wall,
        event_ts,
        acted,
    )


class ExternalIntake:
    def __init__(
        self,
        channels: list[str],
        breaker_settings: BreakerSettings,
        account: str,
        ledger: Ledger,
        decisions: Decisions,
        writer: Writer,
        wall: Clock,
        event_ts: Callable[[], int],
        acted: set[tuple[str, str]],
    ) -> None:
        self.inbox = Inbox()
        self.breakers = {
            ch: CircuitBreaker.from_settings(f"signals:{ch}", breaker_settings) for ch in channels
        }
        self.account = account
        self.pending: list[tuple[ExternalSignal, str]] = []  # (signal, account), oldest first
        self.counts = IntakeCounts()
        self._ledger = ledger
        self._decisions = decisions
        self._writer = writer
        self._wall = wall
        self._event_ts = event_ts
        self._claimed = set(acted)  # acted on, or waiting to be

    # ---------------------------------------------------------------- from the inbox

    def collect(self) -> None:
        """Take what the sources delivered (see the module docstring), then drop the signals
        that waited too long for a quote."""
        items = self.inbox.take()
        for item in items:
            if isinstance(item, Rejection):
                self._rejection(item)
            else:
                self._admit(item)
        if self.pending:
            self._expire()

    def _breaker(self, channel: str) -> CircuitBreaker | None:
        return self.breakers.get(channel)

    def _rejection(self, item: Rejection) -> None:
        breaker = self._breaker(item.channel)
        now = self._event_ts()
        if item.malformed and breaker is not None:
            record_breaker(self._ledger, breaker.poll(now))
            if breaker.state is BreakerState.OPEN:
                breaker.record_failure(now, item.reason)
                self.counts.suppressed += 1
                return
            record_breaker(self._ledger, breaker.record_failure(now, item.reason))
        self.counts.rejected += 1
        self.counts.last_problem = f"{item.source}: {item.reason}"
        self._writer.append(
            "rejects",
            ("ts", "ts_event", "source", "symbol", "reason", "raw"),
            [(item.received_ns, item.received_ns, item.source, item.symbol, item.reason, item.raw)],
        )

    def _admit(self, ext: ExternalSignal) -> None:
        account = ext.account or self.account
        if account not in self._ledger.state.accounts:
            known = ", ".join(self._ledger.state.accounts)
            reason = f"account {account!r} does not exist here; one of {known}"
            raw = f"{ext.side.lower()} {ext.symbol} id={ext.signal_id}"
            self._rejection(Rejection(ext.source, reason, raw, ext.received_ns, ext.symbol))
            return
        if ext.key is not None and (ext.channel, ext.key) in self._claimed:
            self.counts.duplicates += 1
            return
        self.counts.signals += 1
        breaker = self._breaker(ext.channel)
        if breaker is not None:
            now = self._event_ts()
            record_breaker(self._ledger, breaker.poll(now))
            record_breaker(self._ledger, breaker.record_success(now))
        if ext.key is not None:
            self._claimed.add((ext.channel, ext.key))
        if ext.symbol not in self._ledger.symbol_index:
            carried = ", ".join(self._ledger.symbol_index)
            reason = f"{ext.symbol} is not quoted by this engine's feed (it carries {carried})"
            self._refuse(ext, account, self._event_ts(), reason)
            return
        self.pending.append((ext, account))
        if len(self.pending) > MAX_PENDING:
            old, acct = self.pending.pop(0)
            self._refuse(old, acct, self._event_ts(), f"more than {MAX_PENDING} signals waiting")

    def _expire(self) -> None:
        limit = self._wall.now_ns() - round(WAIT_FOR_QUOTE_S * NS_PER_SECOND)
        keep = []
        for ext, account in self.pending:
            if ext.received_ns >= limit:
                keep.append((ext, account))
                continue
            why = f"no quote of {ext.symbol} within {WAIT_FOR_QUOTE_S:g} s of the signal"
            self._refuse(ext, account, self._event_ts(), why)
        self.pending = keep

    # ---------------------------------------------------------------- at a tick

    def due(self, quotes: BatchQuotes) -> list[tuple[int, ExternalSignal, str]]:
        """(batch index of the first tick of its symbol, signal, account) for the waiting
        signals whose symbol ticks in this batch, in tick order (arrival order at a tie)."""
        if not self.pending:
            return []
        index = self._ledger.symbol_index
        out, keep = [], []
        for ext, account in self.pending:
            at = quotes.indices(index[ext.symbol])
            if len(at):
                out.append((int(at[0]), ext, account))
            else:
                keep.append((ext, account))
        self.pending = keep
        out.sort(key=lambda item: item[0])
        return out

    def decide(self, ext: ExternalSignal, account: str, quotes: BatchQuotes, k: int) -> bool:
        """Price the signal at batch tick k and let the orchestrator decide; True when an
        order was submitted."""
        ledger = self._ledger
        now = int(quotes.ticks["ts_event"][k])
        sym = ledger.symbol_index[ext.symbol]
        quote = quotes.quote_at(sym, k)
        assert quote is not None  # tick k is one of this symbol's
        entry = quote[1] if ext.side is Side.BUY else quote[0]
        pip = ledger.instruments[sym].pip_size
        try:
            stop = ext.stop.distance(ext.side, entry, pip, "stop")
            target = math.nan
            if ext.take_profit is not None:
                target = ext.take_profit.distance(ext.side, entry, pip, "take-profit")
        except SignalError as exc:
            self._refuse(ext, account, now, str(exc))
            return False
        signal = Signal(
            strategy=ext.source,
            symbol=ext.symbol,
            side=ext.side,
            ts=now,
            price=entry,
            stop_distance=stop,
            take_profit_distance=target,
            reason=ext.comment or f"external signal from {ext.source}",
        )
        guard = self.breakers[ext.channel]
        ordered = self._decisions.decide_external(
            account, guard, signal, sym, quotes, k, now, self._extra(ext)
        )
        if ordered:
            self.counts.submitted += 1
        else:
            self.counts.refused += 1
            self.counts.last_problem = f"{ext.source}: refused ({ext.symbol})"
        self._acted(ext, now)
        return ordered

    # ---------------------------------------------------------------- on record

    @staticmethod
    def _extra(ext: ExternalSignal) -> dict[str, Any]:
        return {"source": ext.source, "signal_id": ext.signal_id}

    def _refuse(self, ext: ExternalSignal, account: str, ts: int, reason: str) -> None:
        payload = {
            "symbol": ext.symbol,
            "side": str(ext.side),
            "strategy": ext.source,
            "reason": reason,
            **self._extra(ext),
        }
        self._ledger.emit(ts, EventKind.ORDER_REFUSED, account, payload)
        self.counts.refused += 1
        self.counts.last_problem = f"{ext.source}: {reason}"
        self._acted(ext, ts)

    def _acted(self, ext: ExternalSignal, ts: int) -> None:
        if ext.key is not None:
            self._writer.upsert(
                "signal_ids", COLUMNS["signal_ids"], [(ext.channel, ext.key, ext.source, ts)]
            )
