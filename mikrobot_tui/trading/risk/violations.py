"""What the account limits say, as values: a violation, a verdict on an order, a state."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from mikrobot_tui.domain.orders import Side, TradingState


class LimitKind(StrEnum):
    HALTED = "halted"  # an order refused because the account is halted
    REDUCING = "reducing"  # an order refused because only reducing orders go
    RISK_PER_TRADE = "risk_per_trade"
    DAILY_LOSS = "daily_loss"
    OVERALL_LOSS = "overall_loss"
    HEAT = "heat"
    MAX_POSITIONS = "max_positions"
    TRADES_PER_DAY = "max_trades_per_day"
    CORRELATION = "correlation"


class Severity(StrEnum):
    REFUSED = "refused"  # one order refused; the account's state is unchanged
    WARNING = "warning"  # a loss limit is near: the account is REDUCING
    BREACH = "breach"  # a loss limit is breached: the account is HALTED


@dataclass(frozen=True, slots=True)
class Violation:
    kind: LimitKind
    severity: Severity
    value: float  # what was measured (equity, percent, count, correlation)
    limit: float  # what is allowed, in the same unit
    message: str
    symbol: str | None = None

    def to_payload(self) -> dict[str, Any]:
        # by hand: dataclasses.asdict deep-copies, and a refused order's violation is written
        # at every signal of a REDUCING account
        return {
            "kind": str(self.kind),
            "severity": str(self.severity),
            "value": self.value,
            "limit": self.limit,
            "message": self.message,
            "symbol": self.symbol,
        }


@dataclass(frozen=True, slots=True)
class Exposure:
    """A position held, or an order asked for, as the limits see it."""

    symbol: str
    side: Side
    # account currency lost if the stop is hit from the current price (<= 0, a stop in profit,
    # counts 0); the integrator decides what a position without a stop risks
    risk_amount: float


@dataclass(frozen=True, slots=True)
class LimitVerdict:
    allowed: bool
    state: TradingState
    violations: tuple[Violation, ...]

    @property
    def reason(self) -> str:
        return "; ".join(v.message for v in self.violations)


@dataclass(frozen=True, slots=True)
class LimitUpdate:
    state: TradingState
    violations: tuple[Violation, ...]  # only when the state changes: entering REDUCING, HALTED
    flatten: bool  # a breach asks to close every position (flatten_on_breach)


@dataclass(frozen=True, slots=True)
class LimitStatus:
    trading_state: TradingState
    day_start_ns: int
    day_start_balance: float
    daily_loss_limit: float  # account currency a day may lose: daily_loss_pct of C
    daily_loss_used: float  # day's starting balance minus equity, 0 when equity is above it
    daily_floor: float  # equity below this breaches the daily loss
    overall_floor: float  # equity below this breaches the overall loss
    heat: float  # open risk at the stops, percent of equity
    trades_today: int

    def to_payload(self) -> dict[str, Any]:
        out = asdict(self)
        out["trading_state"] = str(self.trading_state)
        return out
