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
    """As NautilusTrader: under REDUCING only orders that reduce exposure are accepted, under
    HALTED no new orders (closing and flattening still work)."""

    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


class OrderIntent(StrEnum):
    OPEN = "open"  # opens or adds to a position (or, netting, reduces and reverses one)
    CLOSE = "close"  # closes an existing position (flatten, stop-out, a bracket's child)


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"  # at `price` or better, never better than `price` once resting
    STOP = "stop"  # a market order once the market reaches `trigger`
    STOP_LIMIT = "stop_limit"  # a limit at `price` once the market reaches `trigger`


class TimeInForce(StrEnum):
    GTC = "GTC"  # good till cancelled
    IOC = "IOC"  # what fills on arrival fills, the rest is cancelled
    FOK = "FOK"  # all on arrival or nothing
    GTD = "GTD"  # good till `expire_ts`


class EntryType(StrEnum):
    MARKET = "market"  # at whatever the market gives after the latency
    LIMIT = "limit"  # at `limit_price` or better, resting until then (or `expire_ts`)


@dataclass(frozen=True, slots=True)
class Signal:
    """A strategy's wish to enter. The orchestrator decides whether and how much.

    Stop and take-profit distances are measured from the entry: the price the order can get
    for a market entry, the limit price for a limit entry. `confidence` (0..1) is the
    strategy's own; the orchestrator scores the signal and may scale the risk by it.

    A signal may carry its own size, `units` of the base (lots = units / the instrument's
    contract size, rounded down to its lot step); then the stop is optional (a stop distance
    of 0 or inf: no stop) and the account's sizing method is not used. `reverse` asks for the
    account's positions of the symbol on the other side to be closed first: two orders, the
    close then the entry, each filled on its own (a stop-and-reverse strategy).
    """

    strategy: str
    symbol: str
    side: Side
    ts: int  # decision time, ns
    price: float  # reference price at decision time (the bar close)
    stop_distance: float  # price distance to the stop-loss, > 0 (0 or inf: none, with units)
    take_profit_distance: float  # price distance to the take-profit, > 0
    reason: str = ""
    entry: EntryType = EntryType.MARKET
    limit_price: float | None = None  # a LIMIT entry's price
    expire_ts: int | None = None  # a LIMIT entry not filled by then is cancelled
    confidence: float = 1.0
    units: float | None = None  # the size the strategy asks for; None: sized from the stop
    reverse: bool = False  # close the symbol's opposite positions first

    @property
    def has_stop(self) -> bool:
        return 0 < self.stop_distance < float("inf")


@dataclass(frozen=True, slots=True)
class Order:
    """An order at the paper venue. It reaches the venue at `due_ts` (decision + latency) and
    is matched only against ticks at or after that.

    A bracket is an entry with `stop_loss` and `take_profit`: when the entry fills, the venue
    places a reduce-only stop and a reduce-only limit for the filled size, each the other's
    `oco_id` and both with the entry as `parent_id`; one filling cancels the other. A trailing
    stop is a STOP whose `trigger` follows the market at `trail_distance`.
    """

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
    type: OrderType = OrderType.MARKET
    price: float | None = None  # limit price (LIMIT, STOP_LIMIT)
    trigger: float | None = None  # stop price (STOP, STOP_LIMIT)
    tif: TimeInForce = TimeInForce.GTC
    expire_ts: int | None = None  # GTD
    reduce_only: bool = False
    post_only: bool = False  # a limit that would take liquidity on arrival is rejected
    trail_distance: float | None = None  # a trailing STOP: trigger = best price -/+ this
    trail_atr: float | None = None  # or this many ATR(14) of M1, fixed when it reaches the venue
    parent_id: str | None = None  # a bracket child: waits for its entry
    oco_id: str | None = None  # one cancels the other
    filled_lots: float = 0.0
    accepted: bool = False  # reached the venue and rests there (limits, stops, bracket children)
    triggered: bool = False  # a STOP_LIMIT whose trigger was reached: now a limit
    decision_price: float | None = None  # the price when decided: slippage is measured from it

    @property
    def remaining(self) -> float:
        return round(self.lots - self.filled_lots, 10)

    @property
    def reduces(self) -> bool:
        return self.reduce_only or self.intent is OrderIntent.CLOSE


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

    liquidity: str = "taker"  # "maker" (a resting limit) or "taker"
    slippage: float = 0.0  # price units against the decision price; > 0 is worse
    remaining: float = 0.0  # lots of the order still working after this fill

    def payload(self) -> dict[str, float | str]:
        """The `order_filled` event's payload (the account and time are the event's own)."""
        return {
            "order_id": self.order_id,
            "price": self.price,
            "lots": self.lots,
            "commission": self.commission,
            "liquidity": self.liquidity,
            "slippage": self.slippage,
            "remaining": self.remaining,
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
    rate_at_entry: float = 1.0  # quote -> account currency at entry: the fallback rate
    swap_paid: float = 0.0  # account currency, already taken from the balance
