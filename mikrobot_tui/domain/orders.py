"""Orders, fills, positions and signals: frozen values, behaviour lives elsewhere."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class TradingState(StrEnum):
    """As NautilusTrader: under HALTED no new orders are accepted."""

    ACTIVE = "ACTIVE"
    HALTED = "HALTED"


class OrderIntent(StrEnum):
    OPEN = "open"  # opens a new position
    CLOSE = "close"  # closes an existing position (flatten, exit signal)


@dataclass(frozen=True, slots=True)
class Signal:
    """A strategy's wish to enter. The orchestrator decides whether and how much."""

    strategy: str
    symbol: str
    side: Side
    ts: int  # decision time, ns
    price: float  # reference price at decision time (the bar close)
    stop_distance: float  # price distance to the stop-loss, > 0
    take_profit_distance: float  # price distance to the take-profit, > 0
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Order:
    """A market order waiting for the first tick at or after `due_ts` (decision + latency)."""

    order_id: str
    account: str
    symbol: str
    side: Side
    lots: float
    intent: OrderIntent
    ts_submitted: int
    due_ts: int
    stop_loss: float | None = None
    take_profit: float | None = None
    position_id: str | None = None  # the position a CLOSE order closes
    strategy: str = ""


@dataclass(frozen=True, slots=True)
class Fill:
    """An order executed: at what price, for how much, and what it cost."""

    order_id: str
    account: str
    symbol: str
    side: Side
    lots: float
    price: float
    commission: float  # account currency
    ts: int

    def payload(self) -> dict[str, float | str]:
        """The `order_filled` event's payload (the account and time are the event's own)."""
        return {
            "order_id": self.order_id,
            "price": self.price,
            "lots": self.lots,
            "commission": self.commission,
        }


@dataclass(frozen=True, slots=True)
class Position:
    position_id: str
    account: str
    symbol: str
    side: Side
    lots: float
    entry_price: float
    ts_opened: int
    stop_loss: float | None
    take_profit: float | None
    entry_commission: float  # account currency, already taken from the balance
    risk_amount: float  # account currency at risk to the stop when opened (for R multiples)
    equity_at_open: float
    strategy: str = ""
