"""Virtual accounts as a fold over their events.

The live engine changes an account only by appending an event and applying it with `apply`;
a restart folds the stored events with the same function. So the state shown after a restart is
the state before it, by construction (invariant 3), and `fold(events) == live state` is tested.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from mikrobot_tui.domain.events import Event, EventKind
from mikrobot_tui.domain.orders import (
    Order,
    OrderIntent,
    OrderType,
    Position,
    Side,
    TimeInForce,
    TradingState,
)


@dataclass(frozen=True, slots=True)
class ClosedTrade:
    position_id: str
    account: str
    strategy: str
    symbol: str
    side: Side
    lots: float
    entry_price: float
    exit_price: float
    ts_opened: int
    ts_closed: int
    pnl: float  # gross, account currency
    commission: float  # entry + exit, account currency
    return_pct: float  # net P&L / equity when opened
    r_multiple: float | None  # net P&L / risk at the stop; None when no risk was set
    reason: str

    @property
    def net_pnl(self) -> float:
        return self.pnl - self.commission


@dataclass
class AccountState:
    name: str
    currency: str = "USD"
    strategy: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    initial_balance: float = 0.0
    balance: float = 0.0
    realized_pnl: float = 0.0
    commission_paid: float = 0.0
    swap_paid: float = 0.0  # net financing: positive was paid to the account
    orders_submitted: int = 0
    margin_call: bool = False  # margin level is below the margin call level
    # the account limits' state (trading/risk/limits.py): a restart starts from it
    trading_state: TradingState = TradingState.ACTIVE
    # positions opened before stops and targets were orders of their own: they still need them
    unprotected: set[str] = field(default_factory=set)
    positions: dict[str, Position] = field(default_factory=dict)
    working: dict[str, Order] = field(default_factory=dict)
    trades: list[ClosedTrade] = field(default_factory=list)

    def next_order_id(self) -> str:
        return f"{self.name}-{self.orders_submitted + 1:06d}"


@dataclass
class EngineState:
    """Everything the event log determines: accounts, trading state, last breaker changes."""

    accounts: dict[str, AccountState] = field(default_factory=dict)
    trading_state: TradingState = TradingState.ACTIVE
    breakers: dict[str, dict[str, Any]] = field(default_factory=dict)
    allocations: dict[str, dict[str, Any]] = field(default_factory=dict)  # experiment -> last
    last_seq: int = 0
    last_ts: int = 0


# order fields beyond the first ones that an event carries only when they differ from the default
_ORDER_EXTRAS = (
    "type",
    "price",
    "trigger",
    "tif",
    "expire_ts",
    "reduce_only",
    "post_only",
    "trail_distance",
    "trail_atr",
    "parent_id",
    "oco_id",
    "decision_price",
    "accepted",
)
_ORDER_DEFAULTS = {
    name: getattr(Order("", "", "", Side.BUY, 0, OrderIntent.OPEN, 0, 0), name)
    for name in _ORDER_EXTRAS
}
_ORDER_TYPES = {"type": OrderType, "tif": TimeInForce}


def order_from_payload(account: str, ts: int, p: dict[str, Any]) -> Order:
    extras = {
        name: _ORDER_TYPES[name](p[name]) if name in _ORDER_TYPES else p[name]
        for name in _ORDER_EXTRAS
        if name in p
    }
    return Order(
        order_id=p["order_id"],
        account=account,
        symbol=p["symbol"],
        side=Side(p["side"]),
        lots=p["lots"],
        intent=OrderIntent(p["intent"]),
        ts_submitted=ts,
        due_ts=p["due_ts"],
        stop_loss=p.get("stop_loss"),
        take_profit=p.get("take_profit"),
        position_id=p.get("position_id"),
        strategy=p.get("strategy", ""),
        **extras,
    )


def order_payload(order: Order) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "order_id": order.order_id,
        "symbol": order.symbol,
        "side": str(order.side),
        "lots": order.lots,
        "intent": str(order.intent),
        "due_ts": order.due_ts,
        "stop_loss": order.stop_loss,
        "take_profit": order.take_profit,
        "position_id": order.position_id,
        "strategy": order.strategy,
    }
    for name in _ORDER_EXTRAS:
        value = getattr(order, name)
        if value != _ORDER_DEFAULTS[name]:
            payload[name] = str(value) if name in _ORDER_TYPES else value
    return payload


MODIFIABLE = ("price", "trigger", "lots", "expire_ts")


def modified(order: Order, changes: dict[str, Any]) -> Order:
    """The order with an ORDER_MODIFIED event's changes; a new expiry makes it good till then."""
    fields = {k: v for k, v in changes.items() if k in MODIFIABLE}
    if "expire_ts" in fields:
        fields["tif"] = TimeInForce.GTD if fields["expire_ts"] is not None else TimeInForce.GTC
    return replace(order, **fields)


def apply(state: EngineState, event: Event) -> None:
    """Apply one event to the state in place. The only way state changes."""
    state.last_seq = max(state.last_seq, event.seq)
    state.last_ts = max(state.last_ts, event.ts)
    p = event.payload
    kind = event.kind
    if kind is EventKind.HALTED:
        state.trading_state = TradingState.HALTED
        return
    if kind is EventKind.RESUMED:
        state.trading_state = TradingState.ACTIVE
        return
    if kind is EventKind.REDUCING:
        state.trading_state = TradingState.REDUCING
        return
    if kind is EventKind.BREAKER_CHANGED:
        state.breakers[p["name"]] = dict(p)
        return
    if kind is EventKind.ALLOCATION_CHANGED:
        state.allocations[p["experiment"]] = dict(p)
        return
    if kind in (EventKind.FLATTEN, EventKind.ALERT) or event.account is None:
        return  # an alert changes nothing: it tells the operator what other events did
    if kind is EventKind.ACCOUNT_OPENED:
        state.accounts[event.account] = AccountState(
            name=event.account,
            currency=p["currency"],
            strategy=p.get("strategy", ""),
            params=dict(p.get("params", {})),
            initial_balance=p["balance"],
            balance=p["balance"],
        )
        return
    acct = state.accounts[event.account]
    handler = _ACCOUNT_EVENTS.get(kind)
    if handler is not None:
        handler(acct, event.ts, p)
    # ORDER_REFUSED and LIMIT_VIOLATION change nothing: they are on record for the operator.


def _order_submitted(acct: AccountState, ts: int, p: dict[str, Any]) -> None:
    acct.unprotected.discard(p.get("parent_id"))
    acct.orders_submitted += 1
    acct.working[p["order_id"]] = order_from_payload(acct.name, ts, p)


def _order_done(acct: AccountState, ts: int, p: dict[str, Any]) -> None:
    acct.working.pop(p["order_id"], None)


def _order_filled(acct: AccountState, ts: int, p: dict[str, Any]) -> None:
    order = acct.working.get(p["order_id"])
    if order is None:
        return
    if p.get("remaining", 0.0) > 1e-9:  # a partial fill: the rest keeps working
        filled = round(order.filled_lots + p["lots"], 10)
        acct.working[order.order_id] = replace(order, filled_lots=filled)
    else:
        del acct.working[order.order_id]


def _order_accepted(acct: AccountState, ts: int, p: dict[str, Any]) -> None:
    order = acct.working.get(p["order_id"])
    if order is not None:
        trigger = p.get("trigger", order.trigger)
        trail = p.get("trail_distance", order.trail_distance)
        acct.working[order.order_id] = replace(
            order, accepted=True, trigger=trigger, trail_distance=trail
        )


def _order_triggered(acct: AccountState, ts: int, p: dict[str, Any]) -> None:
    order = acct.working.get(p["order_id"])
    if order is not None:
        acct.working[order.order_id] = replace(order, triggered=True)


def _order_modified(acct: AccountState, ts: int, p: dict[str, Any]) -> None:
    order = acct.working.get(p["order_id"])
    if order is None:
        return
    acct.working[order.order_id] = modified(order, p["changes"])


def _position_opened(acct: AccountState, ts: int, p: dict[str, Any]) -> None:
    acct.positions[p["position_id"]] = Position(
        position_id=p["position_id"],
        account=acct.name,
        symbol=p["symbol"],
        side=Side(p["side"]),
        lots=p["lots"],
        entry_price=p["entry_price"],
        ts_opened=ts,
        stop_loss=p.get("stop_loss"),
        take_profit=p.get("take_profit"),
        entry_commission=p["commission"],
        risk_amount=p.get("risk_amount", 0.0),
        equity_at_open=p["equity_at_open"],
        strategy=p.get("strategy", ""),
        rate_at_entry=p.get("rate", 1.0),
    )
    acct.balance -= p["commission"]
    acct.commission_paid += p["commission"]
    if "rate" not in p and (p.get("stop_loss") is not None or p.get("take_profit") is not None):
        acct.unprotected.add(p["position_id"])


def _close(acct: AccountState, pos: Position, ts: int, p: dict[str, Any], lots: float) -> float:
    """Book a whole or partial close; returns the share of the entry commission it took."""
    fraction = lots / pos.lots if pos.lots else 1.0
    entry_commission = pos.entry_commission * fraction
    acct.balance += p["pnl"] - p["commission"]
    acct.realized_pnl += p["pnl"]
    acct.commission_paid += p["commission"]
    acct.trades.append(
        ClosedTrade(
            position_id=pos.position_id,
            account=acct.name,
            strategy=pos.strategy,
            symbol=pos.symbol,
            side=pos.side,
            lots=lots,
            entry_price=pos.entry_price,
            exit_price=p["exit_price"],
            ts_opened=pos.ts_opened,
            ts_closed=ts,
            pnl=p["pnl"],
            commission=entry_commission + p["commission"],
            return_pct=p["return_pct"],
            r_multiple=p.get("r_multiple"),
            reason=p["reason"],
        )
    )
    return entry_commission


def _position_closed(acct: AccountState, ts: int, p: dict[str, Any]) -> None:
    pos = acct.positions.pop(p["position_id"])
    acct.unprotected.discard(pos.position_id)
    _close(acct, pos, ts, p, pos.lots)


def _position_changed(acct: AccountState, ts: int, p: dict[str, Any]) -> None:
    pos = acct.positions[p["position_id"]]
    closed = p.get("closed_lots", 0.0)
    if closed > 0:  # a partial close
        taken = _close(acct, pos, ts, p, closed)
        keep = 1 - closed / pos.lots
        acct.positions[pos.position_id] = replace(
            pos,
            lots=p["lots"],
            entry_commission=pos.entry_commission - taken,
            risk_amount=pos.risk_amount * keep,
        )
        return
    acct.balance -= p["commission"]  # an add: netting, or another fill of the same order
    acct.commission_paid += p["commission"]
    acct.positions[pos.position_id] = replace(
        pos,
        lots=p["lots"],
        entry_price=p["entry_price"],
        entry_commission=pos.entry_commission + p["commission"],
        risk_amount=p.get("risk_amount", pos.risk_amount),
    )


def _swap(acct: AccountState, ts: int, p: dict[str, Any]) -> None:
    acct.balance += p["amount"]
    acct.swap_paid += p["amount"]
    pos = acct.positions.get(p["position_id"])
    if pos is not None:
        acct.positions[pos.position_id] = replace(pos, swap_paid=pos.swap_paid + p["amount"])


def _account_state(acct: AccountState, ts: int, p: dict[str, Any]) -> None:
    acct.trading_state = TradingState(p["to"])


def _margin_call(acct: AccountState, ts: int, p: dict[str, Any]) -> None:
    acct.margin_call = True


def _margin_recovered(acct: AccountState, ts: int, p: dict[str, Any]) -> None:
    acct.margin_call = False


_ACCOUNT_EVENTS = {
    EventKind.ORDER_SUBMITTED: _order_submitted,
    EventKind.ORDER_CANCELLED: _order_done,
    EventKind.ORDER_REJECTED: _order_done,
    EventKind.ORDER_FILLED: _order_filled,
    EventKind.ORDER_ACCEPTED: _order_accepted,
    EventKind.ORDER_TRIGGERED: _order_triggered,
    EventKind.ORDER_MODIFIED: _order_modified,
    EventKind.POSITION_OPENED: _position_opened,
    EventKind.POSITION_CLOSED: _position_closed,
    EventKind.POSITION_CHANGED: _position_changed,
    EventKind.SWAP: _swap,
    EventKind.MARGIN_CALL: _margin_call,
    EventKind.MARGIN_RECOVERED: _margin_recovered,
    EventKind.ACCOUNT_STATE: _account_state,
}


def fold(events: Iterable[Event]) -> EngineState:
    state = EngineState()
    for event in events:
        apply(state, event)
    return state
