"""Margin figures of an account: what the positions pane and `status --json` show.

Used margin is each position's notional at the mid over its leverage, in the account currency
through the current quotes; the margin level is equity over used margin in percent (none while
no margin is used), as MetaTrader 5 reports it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MarginFigures:
    balance: float
    equity: float
    used_margin: float
    free_margin: float
    margin_level: float | None  # percent; None while no margin is used
    margin_call: bool


def figures(balance: float, equity: float, used: float, margin_call: bool) -> MarginFigures:
    level = equity / used * 100 if used > 0 else None
    return MarginFigures(
        round(balance, 2),
        round(equity, 2),
        round(used, 2),
        round(equity - used, 2),
        None if level is None else round(level, 2),
        margin_call,
    )
