"""An account's margin figures: what its positions tie up and how far equity covers it.

STAND-IN (issue 7, presentation branch): the core's booking replaces this module's rules with
per-asset-class leverage and its own margin-call state; the read side only relies on the
`MarginFigures` fields below and on `Ledger.margin(acct)` returning them.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_LEVERAGE = 30.0
DEFAULT_MARGIN_CALL_LEVEL = 100.0  # percent margin level


@dataclass(frozen=True, slots=True)
class MarginFigures:
    """Money in the account currency; `margin_level` in percent, None while nothing is used."""

    balance: float
    equity: float
    used_margin: float
    free_margin: float
    margin_level: float | None
    margin_call: bool


def margin_level(equity: float, used_margin: float) -> float | None:
    """Equity as a percentage of the margin in use; None when no margin is used."""
    return equity / used_margin * 100 if used_margin > 0 else None
