"""Risk: how big a trade is (sizing) and whether the account may take it (limits).

`sizing` turns a stop distance into lots (fixed, percent of equity, fractional Kelly);
`limits` holds an account's loss limits as a prop firm (FTMO) measures them, its portfolio
limits and its trading state, and answers in `violations`' values; `days` says when a trading
day starts, `correlation` how alike two symbols move. Everything here is a pure
function or a small class that owns its figures: the engine feeds them and records what they say.
"""

from __future__ import annotations

from mikrobot_tui.trading.risk.correlation import correlation
from mikrobot_tui.trading.risk.days import day_start_ns, next_day_start_ns
from mikrobot_tui.trading.risk.limits import AccountLimits
from mikrobot_tui.trading.risk.sizing import (
    KellyEstimate,
    RiskDecision,
    Sizing,
    check_order,
    clamp_lots,
    kelly_estimate,
    pip_value_per_lot,
    position_size,
    risk_money,
    size_position,
)
from mikrobot_tui.trading.risk.violations import (
    Exposure,
    LimitKind,
    LimitStatus,
    LimitUpdate,
    LimitVerdict,
    Severity,
    Violation,
)

__all__ = [
    "AccountLimits",
    "Exposure",
    "KellyEstimate",
    "LimitKind",
    "LimitStatus",
    "LimitUpdate",
    "LimitVerdict",
    "RiskDecision",
    "Severity",
    "Sizing",
    "Violation",
    "check_order",
    "clamp_lots",
    "correlation",
    "day_start_ns",
    "kelly_estimate",
    "next_day_start_ns",
    "pip_value_per_lot",
    "position_size",
    "risk_money",
    "size_position",
]
