"""The bandit at work: each experiment's risk budget, shared anew as its variants' trades close.

A watcher of the ledger: when an event leaves a variant of a bandit experiment with more closed
trades than before (a position closed, wholly or in part), the experiment's shares are drawn
again from every variant's trades (paper/bandit.py, seeded by the experiment's name and its
number of trades) and, when they differ from the current ones, an `allocation_changed` event
records them (experiment, variants, shares, trades per variant). The event log holds the
allocation, so a restart reads it back from the last such event (EngineState.allocations) and
a replay draws the same shares at the same trades.

The orchestrator multiplies a variant's risk per trade by `factor(account)`: its share x the
number of variants, so equal shares are 1x, with the score's multiplier, the product capped at
1 (engine/decisions.py): no trade risks more than the account's risk_per_trade, which its
limits would refuse. Every other limit is checked after that sizing too (the margin floor's
lots, max positions, heat, the daily and overall loss floors, correlation). An account in more
than one bandit experiment takes the factor of the first. Experiments with `bandit = false` have no
events and a factor of 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mikrobot_tui.config import ExperimentSettings
from mikrobot_tui.domain.events import Event, EventKind
from mikrobot_tui.paper.bandit import equal_shares, thompson_shares
from mikrobot_tui.paper.ledger import Ledger
from mikrobot_tui.paper.portfolio import ClosedTrade

__all__ = ["Allocator", "metric_trades", "metric_values"]


def metric_values(trades: Sequence[ClosedTrade], metric: str) -> list[float]:
    """Per-trade returns in the experiment's metric: R multiples (trades without a stop have
    none and are left out) or net P&L as a fraction of equity at entry."""
    return metric_trades(trades, metric)[0]


def metric_trades(trades: Sequence[ClosedTrade], metric: str) -> tuple[list[float], list[int]]:
    """The metric's values and the close time of each, in close order."""
    if metric == "r":
        kept = [t for t in trades if t.r_multiple is not None]
        return [float(t.r_multiple) for t in kept if t.r_multiple is not None], [
            t.ts_closed for t in kept
        ]
    return [t.return_pct for t in trades], [t.ts_closed for t in trades]


class Allocator:
    def __init__(self, ledger: Ledger, experiments: Sequence[ExperimentSettings]) -> None:
        self._ledger = ledger
        self.experiments = [e for e in experiments if e.bandit]
        self._of: dict[str, ExperimentSettings] = {}  # account -> its (first) bandit experiment
        self._by_account: dict[str, list[ExperimentSettings]] = {}
        for e in self.experiments:
            for v in e.variants:
                self._of.setdefault(v, e)
                self._by_account.setdefault(v, []).append(e)
        accounts = ledger.state.accounts
        self._seen = {v: len(accounts[v].trades) for v in self._by_account if v in accounts}
        if self.experiments:
            ledger.watchers.append(self.watch)

    def watch(self, event: Event) -> None:
        account = event.account
        if account is None or account not in self._by_account:
            return
        acct = self._ledger.state.accounts.get(account)
        if acct is None or len(acct.trades) == self._seen.get(account, 0):
            return
        self._seen[account] = len(acct.trades)
        for experiment in self._by_account[account]:
            self._reallocate(experiment, event.ts)

    def _reallocate(self, e: ExperimentSettings, ts: int) -> None:
        accounts = self._ledger.state.accounts
        samples = [
            metric_values(accounts[v].trades, e.metric) if v in accounts else [] for v in e.variants
        ]
        shares = list(thompson_shares(e.name, samples))
        if shares == self.shares(e):
            return
        payload: dict[str, Any] = {
            "experiment": e.name,
            "variants": list(e.variants),
            "shares": shares,
            "trades": [len(s) for s in samples],
        }
        self._ledger.emit(ts, EventKind.ALLOCATION_CHANGED, None, payload)

    def shares(self, e: ExperimentSettings) -> list[float]:
        """The experiment's current shares: its last event's, equal before any (or when the
        last one was of other variants: the configuration changed since)."""
        last = self._ledger.state.allocations.get(e.name)
        if last is None or last.get("variants") != list(e.variants):
            return list(equal_shares(len(e.variants)))
        return [float(s) for s in last["shares"]]

    def factor(self, account: str) -> float:
        """The account's risk multiplier: share x number of variants (1 outside a bandit)."""
        e = self._of.get(account)
        if e is None:
            return 1.0
        return self.shares(e)[e.variants.index(account)] * len(e.variants)

    def in_bandit(self, account: str) -> bool:
        return account in self._of
