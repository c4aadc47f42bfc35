"""The operator's hand on the engine: halt, resume, flatten, and the `commands` table.

Any process sends a command by inserting a row (the cockpit's keys, `mikrobot halt`); the
engine claims pending rows (store/commands.py says which it refuses and why), carries each
out as events and answers it in the same transaction as those events and the refreshed read
side, so a sender that sees "done" also sees its effect.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from mikrobot_tui.clock import Clock
from mikrobot_tui.domain.events import EventKind
from mikrobot_tui.domain.orders import TradingState
from mikrobot_tui.paper.ledger import Ledger
from mikrobot_tui.paper.portfolio import order_payload
from mikrobot_tui.paper.quotes import LastQuotes
from mikrobot_tui.store import commands as cmd
from mikrobot_tui.store.writer import Writer
from mikrobot_tui.trading.orchestrator import close_order


class Control:
    def __init__(
        self,
        conn: sqlite3.Connection,
        ledger: Ledger,
        quotes: LastQuotes,
        now: Callable[[], int],
        wall: Clock,
        latency: Callable[[str], int],
        refresh: Callable[[], None],
        writer: Writer,
    ) -> None:
        self.started_ts = 0  # commands sent before this (wall clock) are never carried out
        self._writer = writer
        self._conn = conn
        self._ledger = ledger
        self._quotes = quotes
        self._now = now  # event time: market time, or the clock before any tick
        self._wall = wall  # commands are answered in wall-clock time, never logged
        self._latency = latency
        self._refresh = refresh  # writes the read side, so an answer comes after its effect

    def halt(self, source: str = "operator") -> str:
        state = self._ledger.state
        if state.trading_state is TradingState.HALTED:
            return "already halted"
        ts = self._now()
        self._ledger.emit(ts, EventKind.HALTED, None, {"source": source})
        cancelled = self._cancel_working(ts, "halted")
        return f"halted: no new orders; {cancelled} working order(s) cancelled"

    def resume(self, source: str = "operator") -> str:
        if self._ledger.state.trading_state is TradingState.ACTIVE:
            return "already active"
        self._ledger.emit(self._now(), EventKind.RESUMED, None, {"source": source})
        return "resumed: trading is active"

    def flatten(self, source: str = "operator") -> str:
        ledger = self._ledger
        ts = self._now()
        positions = [p for a in ledger.state.accounts.values() for p in a.positions.values()]
        ledger.emit(ts, EventKind.FLATTEN, None, {"source": source, "positions": len(positions)})
        cancelled = self._cancel_working(ts, "flatten")
        for pos in positions:
            acct = ledger.state.accounts[pos.account]
            s = self._quotes.index.get(pos.symbol)
            # due after the symbol's own last tick: market time may have restarted lower
            last_ts = int(self._quotes.ts[s][0]) if s is not None else 0
            last = last_ts or ts
            last = max(last, pos.ts_opened)  # a position is never closed before it opened
            order_id = acct.next_order_id()
            order = close_order(
                order_id=order_id,
                account=acct.name,
                position_id=pos.position_id,
                symbol=pos.symbol,
                side=pos.side,
                lots=pos.lots,
                ts=last,
                latency_ns=self._latency(order_id),
                reason="flatten",
            )
            ledger.emit(ts, EventKind.ORDER_SUBMITTED, acct.name, order_payload(order))
        return (
            f"flatten: closing {len(positions)} position(s) at market; "
            f"{cancelled} working order(s) cancelled"
        )

    def _cancel_working(self, ts: int, reason: str) -> int:
        """Cancel every working order that opens a position; orders that close one stay."""
        n = 0
        for acct in self._ledger.state.accounts.values():
            for order in list(acct.working.values()):
                if order.position_id is not None:  # keep orders that close positions
                    continue
                payload = {"order_id": order.order_id, "reason": reason}
                self._ledger.emit(ts, EventKind.ORDER_CANCELLED, acct.name, payload)
                n += 1
        return n

    def handle_commands(self) -> int:
        """Carry out pending commands; the answers land with the events they caused.

        Commands sent before this engine started are expired, malformed ones failed with the
        reason; while the database cannot be written, commands wait in their table.
        """
        now = self._wall.now_ns()
        try:
            claimed = cmd.claim(self._conn, self.started_ts, now)
        except sqlite3.OperationalError:  # locked or full: the writer reports it; try later
            return 0
        if not claimed:
            return 0
        answers = []
        for c in claimed:
            if c.problem is not None or c.command is None:
                answers.append(("failed", c.problem, now, c.id))
                continue
            action = {
                cmd.Command.HALT: self.halt,
                cmd.Command.RESUME: self.resume,
                cmd.Command.FLATTEN: self.flatten,
            }[c.command]
            answers.append(("done", action(str(c.args.get("source", "operator"))), now, c.id))
        self._writer.update("commands", ("status", "result", "done_ts"), ("id",), answers)
        self._refresh()  # the read side and the answers, in one transaction with the events
        return len(claimed)
