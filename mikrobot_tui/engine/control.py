"""The operator's hand on the engine: halt, reduce, resume, flatten, cancel and modify an
order, and the `commands` table.

Resume also lifts the accounts' own halts and REDUCING states (engine/limits.py); the limits
halt the engine and flatten a breached account through `halt` and `flatten_account` here, the
operator's own path.

Any process sends a command by inserting a row (the cockpit's keys, `mikrobot halt`); the
engine claims pending rows (store/commands.py says which it refuses and why), carries each
out as events and answers it in the same transaction as those events and the refreshed read
side, so a sender that sees "done" also sees its effect. A command that cannot be carried out
(an order that is no longer working, a field its type does not have) is answered `failed`
with the reason, and logs nothing.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable
from typing import Any

from mikrobot_tui.clock import Clock
from mikrobot_tui.domain.events import EventKind
from mikrobot_tui.domain.orders import Order, OrderType, Position, TimeInForce, TradingState
from mikrobot_tui.engine.closing import submit_close
from mikrobot_tui.engine.limits import Limits
from mikrobot_tui.paper.ledger import Ledger
from mikrobot_tui.paper.portfolio import MODIFIABLE, AccountState
from mikrobot_tui.paper.quotes import LastQuotes
from mikrobot_tui.store import commands as cmd
from mikrobot_tui.store.writer import Writer

Answer = tuple[str, str]  # (status: done or failed, what the sender reads)

_HAS_PRICE = (OrderType.LIMIT, OrderType.STOP_LIMIT)
_HAS_TRIGGER = (OrderType.STOP, OrderType.STOP_LIMIT)


def _done(text: str) -> Answer:
    return "done", text


def _failed(text: str) -> Answer:
    return "failed", text


def describe(order: Order) -> str:
    """`limit BUY 0.10 EURUSD @ 1.05000`: what an answer says about an order."""
    at = []
    if order.trigger is not None:
        at.append(f"trigger {order.trigger:g}")
    if order.price is not None:
        at.append(f"@ {order.price:g}")
    return " ".join([str(order.type), str(order.side), f"{order.lots:g}", order.symbol, *at])


class CommandPulse:
    """Whether someone may have sent a command since the engine last looked, cheaply enough
    to ask before every decision.

    Senders (the cockpit, `mikrobot halt`) insert into `commands` on their own connections,
    and SQLite's `PRAGMA data_version` on the engine's connection changes whenever another
    connection commits; the engine's own writes never move it. Asking costs about 4 us, a
    SELECT on the table several times that, so the corridor asks at each decision point (not
    per tick) and claims commands only when the answer is yes: a halt committed before the
    corridor reaches a tick is carried out before any order is decided at that tick, however
    many ticks wait in the batch.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._seen = self._version()

    def _version(self) -> int | None:
        try:
            return int(self._conn.execute("PRAGMA data_version").fetchone()[0])
        except sqlite3.Error:
            return None

    def changed(self) -> bool:
        """True once after another connection committed (maybe a command)."""
        version = self._version()
        if version is None or version == self._seen:
            return False
        self._seen = version
        return True


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
        self.limits: Limits | None = None  # the account limits, resumed with the engine

    def halt(self, source: str = "operator", *, ts: int | None = None, reason: str = "") -> str:
        state = self._ledger.state
        if state.trading_state is TradingState.HALTED:
            return "already halted"
        ts = self._now() if ts is None else ts
        payload = {"source": source, **({"reason": reason} if reason else {})}
        self._ledger.emit(ts, EventKind.HALTED, None, payload)
        cancelled = self._cancel_working(ts, "halted")
        return f"halted: no new orders; {cancelled} working order(s) cancelled"

    def reduce(self, source: str = "operator") -> str:
        """Engine-wide REDUCING: only orders that reduce exposure go until resumed."""
        state = self._ledger.state.trading_state
        if state is TradingState.REDUCING:
            return "already reducing"
        if state is TradingState.HALTED:
            return "halted: resume first, then reduce"
        self._ledger.emit(self._now(), EventKind.REDUCING, None, {"source": source})
        return "reducing: only orders that reduce exposure; working orders stay"

    def resume(self, source: str = "operator") -> str:
        ts = self._now()
        accounts = self.limits.resume(ts, source) if self.limits is not None else 0
        lifted = f"; {accounts} account(s) resumed from their limits" if accounts else ""
        if self._ledger.state.trading_state is TradingState.ACTIVE:
            return f"already active{lifted}"
        self._ledger.emit(ts, EventKind.RESUMED, None, {"source": source})
        return f"resumed: trading is active{lifted}"

    def flatten(self, source: str = "operator") -> str:
        ledger = self._ledger
        ts = self._now()
        positions = [p for a in ledger.state.accounts.values() for p in a.positions.values()]
        ledger.emit(ts, EventKind.FLATTEN, None, {"source": source, "positions": len(positions)})
        cancelled = self._cancel_working(ts, "flatten")
        for pos in positions:
            s = self._quotes.index.get(pos.symbol)
            # due after the symbol's own last tick: market time may have restarted lower
            last_ts = int(self._quotes.ts[s][0]) if s is not None else 0
            self._close(pos, last_ts or ts, "flatten", ts)
        return (
            f"flatten: closing {len(positions)} position(s) at market; "
            f"{cancelled} working order(s) cancelled"
        )

    def flatten_account(self, account: str, ts: int) -> None:
        """A breached account (engine/limits.py) at market tick `ts`: its working entries
        cancelled, its positions closed at market as `flatten` closes them."""
        acct = self._ledger.state.accounts[account]
        positions = list(acct.positions.values())
        payload = {"source": "limits", "positions": len(positions)}
        self._ledger.emit(ts, EventKind.FLATTEN, account, payload)
        self._cancel_working(ts, "account limit breached", only=account)
        for pos in positions:
            self._close(pos, ts, "flatten", ts)

    def _close(self, pos: Position, last: int, reason: str, ts: int) -> None:
        last = max(last, pos.ts_opened)  # a position is never closed before it opened
        submit_close(self._ledger, pos, ts=last, latency=self._latency, reason=reason, event_ts=ts)

    def _find(self, order_id: Any) -> tuple[AccountState, Order] | None:
        if not isinstance(order_id, str):
            return None
        for acct in self._ledger.state.accounts.values():
            order = acct.working.get(order_id)
            if order is not None:
                return acct, order
        return None

    def cancel(self, order_id: Any) -> Answer:
        """Cancel one working order; accepted while halted too (as NautilusTrader's risk
        engine: under HALTED every command but cancel is refused)."""
        found = self._find(order_id)
        if found is None:
            return _failed(f"no working order {order_id!r} (unknown, filled or cancelled)")
        acct, order = found
        payload = {"order_id": order.order_id, "reason": "operator"}
        self._ledger.emit(self._now(), EventKind.ORDER_CANCELLED, acct.name, payload)
        return _done(f"cancelled {order.order_id} ({describe(order)})")

    def modify(self, order_id: Any, changes: Any) -> Answer:
        """Change a working order's limit price, trigger, size or expiry, rounded to the
        instrument's tick and lot step; every field is checked before anything is logged."""
        if not isinstance(changes, dict) or not changes:
            return _failed("nothing to modify: give a price, trigger, lots or expiry")
        unknown = sorted(set(changes) - set(MODIFIABLE))
        if unknown:
            return _failed(f"cannot modify {', '.join(unknown)}; only {', '.join(MODIFIABLE)}")
        if self._ledger.state.trading_state is TradingState.HALTED:
            return _failed("trading is halted: orders can be cancelled, not modified")
        found = self._find(order_id)
        if found is None:
            return _failed(f"no working order {order_id!r} (unknown, filled or cancelled)")
        acct, order = found
        inst = self._ledger.instrument(order.symbol)
        new: dict[str, Any] = {}
        for name, value in changes.items():
            if not isinstance(value, int | float) or isinstance(value, bool):
                return _failed(f"{name} must be a number, got {value!r}")
            if not math.isfinite(value) or value <= 0:
                return _failed(f"{name} must be a positive number, got {value!r}")
            if name == "price":
                if order.type not in _HAS_PRICE:
                    return _failed(f"{order.order_id} is a {order.type} order: no limit price")
                new[name] = inst.round_price(value)
            elif name == "trigger":
                if order.type not in _HAS_TRIGGER:
                    return _failed(f"{order.order_id} is a {order.type} order: no trigger")
                new[name] = inst.round_price(value)
            elif name == "lots":
                if order.position_id is not None:
                    closes = f"{order.order_id} closes {order.position_id}"
                    return _failed(f"{closes}: its size is the position's")
                lots = inst.round_lots(value)
                if lots < inst.min_lot:
                    return _failed(
                        f"lots {value:g} rounds to {lots:g}, below the minimum {inst.min_lot:g}"
                    )
                if lots <= order.filled_lots:
                    return _failed(
                        f"lots {lots:g} must exceed the {order.filled_lots:g} already filled "
                        "(cancel the order to stop the rest)"
                    )
                new[name] = lots
            else:  # expire_ts
                if order.type is OrderType.MARKET:
                    return _failed(f"{order.order_id} is a market order: no expiry")
                if int(value) <= self._now():
                    return _failed("the expiry is not in the future")
                new[name] = int(value)
        changed = {
            k: v
            for k, v in new.items()
            if getattr(order, k) != v or (k == "expire_ts" and order.tif is not TimeInForce.GTD)
        }
        if not changed:
            return _done(f"{order.order_id} unchanged: it already has those values")
        payload = {"order_id": order.order_id, "changes": changed, "reason": "operator"}
        self._ledger.emit(self._now(), EventKind.ORDER_MODIFIED, acct.name, payload)
        now = acct.working[order.order_id]
        return _done(f"modified {order.order_id}: {describe(now)}" + _expiry(now))

    def _cancel_working(self, ts: int, reason: str, only: str | None = None) -> int:
        """Cancel every working order that opens a position (of account `only`, or all);
        orders that close one stay."""
        n = 0
        for acct in self._ledger.state.accounts.values():
            if only is not None and acct.name != only:
                continue
            for order in list(acct.working.values()):
                if order.position_id is not None:  # keep orders that close positions
                    continue
                payload = {"order_id": order.order_id, "reason": reason}
                self._ledger.emit(ts, EventKind.ORDER_CANCELLED, acct.name, payload)
                n += 1
        return n

    def handle_commands(self, *, refresh: bool = True) -> int:
        """Carry out pending commands; the answers land with the events they caused.

        Commands sent before this engine started are expired, malformed ones failed with the
        reason; while the database cannot be written, commands wait in their table. Without
        `refresh` (in the middle of a batch) the answers wait in the writer with the events
        until the caller refreshes the read side after the batch.
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
            status, text = self._carry_out(c.command, c.args)
            answers.append((status, text, now, c.id))
        self._writer.update("commands", ("status", "result", "done_ts"), ("id",), answers)
        if refresh:
            self._refresh()  # the read side and the answers, in one transaction with the events
        return len(claimed)

    def _carry_out(self, command: cmd.Command, args: dict[str, Any]) -> Answer:
        if command is cmd.Command.CANCEL:
            return self.cancel(args.get("order_id"))
        if command is cmd.Command.MODIFY:
            return self.modify(args.get("order_id"), args.get("changes"))
        action = {
            cmd.Command.HALT: self.halt,
            cmd.Command.REDUCE: self.reduce,
            cmd.Command.RESUME: self.resume,
            cmd.Command.FLATTEN: self.flatten,
        }[command]
        return _done(action(str(args.get("source", "operator"))))


def _expiry(order: Order) -> str:
    if order.expire_ts is None:
        return f" {order.tif}"
    from datetime import UTC, datetime

    when = datetime.fromtimestamp(order.expire_ts / 1e9, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
    return f" {order.tif} until {when} UTC"
