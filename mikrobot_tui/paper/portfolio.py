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
    orders_submitted: int = 0
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
    "parent_id",
    "oco_id",
    "decision_price",
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
        fields["tif"] = TimeInForce.GTD
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
    if kind is EventKind.BREAKER_CHANGED:
        state.breakers[p["name"]] = dict(p)
        return
    if kind is EventKind.FLATTEN or event.account is None:
        return
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
    if kind is EventKind.ORDER_SUBMITTED:
        acct.orders_submitted += 1
        acct.working[p["order_id"]] = order_from_payload(acct.name, event.ts, p)
    elif kind in (EventKind.ORDER_CANCELLED, EventKind.ORDER_FILLED):
        acct.working.pop(p["order_id"], None)
    elif kind is EventKind.ORDER_MODIFIED:
        order = acct.working.get(p["order_id"])
        if order is not None:
            acct.working[order.order_id] = modified(order, p["changes"])
    elif kind is EventKind.POSITION_OPENED:
        acct.positions[p["position_id"]] = Position(
            position_id=p["position_id"],
            account=acct.name,
            symbol=p["symbol"],
            side=Side(p["side"]),
            lots=p["lots"],
            entry_price=p["entry_price"],
            ts_opened=event.ts,
            stop_loss=p.get("stop_loss"),
            take_profit=p.get("take_profit"),
            entry_commission=p["commission"],
            risk_amount=p.get("risk_amount", 0.0),
            equity_at_open=p["equity_at_open"],
            strategy=p.get("strategy", ""),
        )
        acct.balance -= p["commission"]
        acct.commission_paid += p["commission"]
    elif kind is EventKind.POSITION_CLOSED:
        pos = acct.positions.pop(p["position_id"])
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
                lots=pos.lots,
                entry_price=pos.entry_price,
                exit_price=p["exit_price"],
                ts_opened=pos.ts_opened,
                ts_closed=event.ts,
                pnl=p["pnl"],
                commission=pos.entry_commission + p["commission"],
                return_pct=p["return_pct"],
                r_multiple=p.get("r_multiple"),
                reason=p["reason"],
            )
        )
    # ORDER_REFUSED changes nothing: it is on record for the operator and the statistics.


def fold(events: Iterable[Event]) -> EngineState:
    state = EngineState()
    for event in events:
        apply(state, event)
    return state
