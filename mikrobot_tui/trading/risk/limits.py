"""An account's limits, measured as FTMO measures them, and the trading state they set.

The engine feeds `AccountLimits` the account's balance and equity as time passes (`update`),
each entry it opens (`record_entry`), and asks before an order whether it may go (`check`).
Every limit that bites comes back as a `Violation` (kind, figures, message) to record as an
event. The rules, with the initial capital C:

- Daily loss (FTMO's Maximum Daily Loss): equity, floating P&L, commissions and swaps
  included, may not fall below the day's starting balance minus `daily_loss_pct` of C. The day
  starts at midnight in `day_timezone` (Europe/Prague: 23:00 UTC in winter, 22:00 in summer);
  the day's starting balance is the balance at that midnight (closed trades only, whatever the
  open positions float), C on the first day. The limit can rise or fall from day to day.
- Overall loss (FTMO's Maximum Loss): equity may not fall below C minus `overall_loss_pct` of
  C. With `trailing_overall` (FTMO's 1-Step): the floor is, from each midnight on, the highest
  balance at any earlier midnight (C if higher) minus `overall_loss_pct` of C; it only rises
  and intraday equity never moves it.
- A limit is breached when equity goes below its floor: the account is HALTED (until the
  operator resumes it) and, with `flatten_on_breach`, asks to be flattened. When `reducing_at`
  (0.8) of a loss limit's allowance is used, the account is REDUCING: only orders that reduce
  exposure go. Orders that reduce exposure are never refused, in any state.
- Per order: the risk to the stop at most `risk_per_trade` of equity; equity minus the open
  risk at every stop minus the new one stays above both loss floors (a worst case the stops
  allow must not breach); open risk at the stops, the new order's included, at most
  `max_heat_pct` of equity; fewer than `max_positions` open; fewer than `max_trades_per_day`
  entries today; the candidate's returns correlate at most `max_correlation` with each symbol
  held (sign-adjusted: a long against a short held counts the correlation negated).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from zoneinfo import ZoneInfo

import numpy as np

from mikrobot_tui.config import RiskSettings
from mikrobot_tui.domain.orders import TradingState
from mikrobot_tui.trading.risk.correlation import correlation
from mikrobot_tui.trading.risk.days import day_start_ns, next_day_start_ns
from mikrobot_tui.trading.risk.violations import (
    Exposure,
    LimitKind,
    LimitStatus,
    LimitUpdate,
    LimitVerdict,
    Severity,
    Violation,
)


class AccountLimits:
    """One account's loss limits, portfolio limits and trading state (rules in the module doc).

    `balance` is the account's balance now (C when None); for a restart, `day_start_balance`,
    `best_eod_balance` and `trades_today` restore the day in progress.
    """

    def __init__(
        self,
        settings: RiskSettings,
        *,
        initial_capital: float,
        ts_ns: int,
        balance: float | None = None,
        day_start_balance: float | None = None,
        best_eod_balance: float | None = None,
        trades_today: int = 0,
    ) -> None:
        if not (math.isfinite(initial_capital) and initial_capital > 0):
            raise ValueError(f"initial_capital must be finite and > 0, got {initial_capital!r}")
        self.settings = settings
        self.initial = initial_capital
        self.zone = ZoneInfo(settings.day_timezone)
        self.balance = initial_capital if balance is None else balance
        self.equity = self.balance
        self.open_risk = 0.0
        self.day_start = day_start_ns(ts_ns, self.zone)
        self.day_end = next_day_start_ns(ts_ns, self.zone)
        self.day_start_balance = self.balance if day_start_balance is None else day_start_balance
        self.best_eod_balance = best_eod_balance if best_eod_balance is not None else -math.inf
        self.trades_today = trades_today
        self.state = TradingState.ACTIVE

    # -- the figures -------------------------------------------------------------------------

    @property
    def daily_loss_limit(self) -> float:
        return self.settings.daily_loss_pct / 100 * self.initial

    @property
    def daily_floor(self) -> float:
        return self.day_start_balance - self.daily_loss_limit

    @property
    def overall_loss_limit(self) -> float:
        return self.settings.overall_loss_pct / 100 * self.initial

    @property
    def overall_floor(self) -> float:
        base = self.initial
        if self.settings.trailing_overall:
            base = max(base, self.best_eod_balance)
        return base - self.overall_loss_limit

    def status(self) -> LimitStatus:
        return LimitStatus(
            trading_state=self.state,
            day_start_ns=self.day_start,
            day_start_balance=self.day_start_balance,
            daily_loss_limit=self.daily_loss_limit,
            daily_loss_used=max(0.0, self.day_start_balance - self.equity),
            daily_floor=self.daily_floor,
            overall_floor=self.overall_floor,
            heat=self._heat_pct(self.open_risk, self.equity),
            trades_today=self.trades_today,
        )

    # -- what the engine feeds ---------------------------------------------------------------

    def _roll(self, ts_ns: int) -> None:
        """Start a new day when `ts_ns` passed midnight: its balance is the last one fed."""
        if ts_ns < self.day_end:
            return
        self.day_start_balance = self.balance
        self.best_eod_balance = max(self.best_eod_balance, self.balance)
        self.day_start = day_start_ns(ts_ns, self.zone)
        self.day_end = next_day_start_ns(ts_ns, self.zone)
        self.trades_today = 0

    def update(
        self, ts_ns: int, *, balance: float, equity: float, open_risk: float = 0.0
    ) -> LimitUpdate:
        """Feed the balance and equity at `ts_ns` (every change of balance, and ticks).

        The balance fed last before a midnight is that midnight's balance. Returns the state
        and, when it changes, what changed it.
        """
        self._roll(ts_ns)
        self.balance, self.equity, self.open_risk = balance, equity, max(0.0, open_risk)
        if self.state is TradingState.HALTED:
            return LimitUpdate(self.state, (), False)
        breaches, near = [], []
        for kind, floor, allowance in (
            (LimitKind.DAILY_LOSS, self.daily_floor, self.daily_loss_limit),
            (LimitKind.OVERALL_LOSS, self.overall_floor, self.overall_loss_limit),
        ):
            used = (floor + allowance - equity) / allowance
            name = kind.value.replace("_", " ")
            if equity < floor:
                breaches.append(
                    Violation(
                        kind,
                        Severity.BREACH,
                        equity,
                        floor,
                        f"{name} breached: equity {equity:.2f} is below {floor:.2f}",
                    )
                )
            elif used >= self.settings.reducing_at:
                near.append(
                    Violation(
                        kind,
                        Severity.WARNING,
                        used,
                        self.settings.reducing_at,
                        f"{name} {used:.0%} used (equity {equity:.2f}, floor {floor:.2f}): "
                        "only orders that reduce exposure",
                    )
                )
        if breaches:
            self.state = TradingState.HALTED
            return LimitUpdate(self.state, tuple(breaches), self.settings.flatten_on_breach)
        before, self.state = (
            self.state,
            TradingState.REDUCING if near else TradingState.ACTIVE,
        )
        changed = self.state is TradingState.REDUCING and before is not TradingState.REDUCING
        return LimitUpdate(self.state, tuple(near) if changed else (), False)

    def record_entry(self, ts_ns: int) -> None:
        """An entry was opened at `ts_ns`: it counts towards max_trades_per_day."""
        self._roll(ts_ns)
        self.trades_today += 1

    def resume(self) -> TradingState:
        """The operator lifts a halt; the next `update` judges the figures afresh."""
        self.state = TradingState.ACTIVE
        return self.state

    # -- the question before an order --------------------------------------------------------

    @staticmethod
    def _heat_pct(risk: float, equity: float) -> float:
        return risk / equity * 100 if equity > 0 else math.inf

    def check(
        self,
        ts_ns: int,
        order: Exposure,
        held: Sequence[Exposure],
        *,
        equity: float,
        reduces: bool = False,
        returns: Mapping[str, np.ndarray] | None = None,
    ) -> LimitVerdict:
        """May `order` go, with `held` open and `equity` now? Every limit it breaks is listed.

        `returns` maps symbols to return series aligned in time (the integrator's choice of
        bars); a symbol without one is not judged for correlation.
        """
        self._roll(ts_ns)
        s, sym = self.settings, order.symbol
        if reduces:
            return LimitVerdict(True, self.state, ())
        out: list[Violation] = []

        def refuse(kind: LimitKind, value: float, limit: float, message: str) -> None:
            out.append(Violation(kind, Severity.REFUSED, value, limit, message, sym))

        if self.state is TradingState.HALTED:
            refuse(LimitKind.HALTED, 1, 0, "trading halted: only closing orders until resumed")
            return LimitVerdict(False, self.state, tuple(out))
        if self.state is TradingState.REDUCING:
            refuse(
                LimitKind.REDUCING,
                1,
                0,
                "REDUCING: a loss limit is near, only orders that reduce exposure",
            )
        risk = max(0.0, order.risk_amount)
        open_risk = sum(max(0.0, h.risk_amount) for h in held)
        allowed = s.risk_per_trade * equity
        if risk > allowed * (1 + 1e-9):
            refuse(
                LimitKind.RISK_PER_TRADE,
                risk,
                allowed,
                f"risk {risk:.2f} to the stop is "
                f"above risk_per_trade {s.risk_per_trade:.2%} of equity ({allowed:.2f})",
            )
        worst = equity - open_risk - risk
        for kind, floor in (
            (LimitKind.DAILY_LOSS, self.daily_floor),
            (LimitKind.OVERALL_LOSS, self.overall_floor),
        ):
            if worst < floor:
                refuse(
                    kind,
                    worst,
                    floor,
                    f"every stop hit would leave equity {worst:.2f}, "
                    f"below the {kind.value.replace('_', ' ')} floor {floor:.2f}",
                )
        heat = self._heat_pct(open_risk + risk, equity)
        if heat > s.max_heat_pct * (1 + 1e-9):
            refuse(
                LimitKind.HEAT,
                heat,
                s.max_heat_pct,
                f"heat {heat:.2f}% of equity at the "
                f"stops with this order, above max_heat_pct {s.max_heat_pct:g}%",
            )
        if len(held) >= s.max_positions:
            refuse(
                LimitKind.MAX_POSITIONS,
                len(held),
                s.max_positions,
                f"at max positions ({len(held)}/{s.max_positions})",
            )
        if self.trades_today >= s.max_trades_per_day:
            refuse(
                LimitKind.TRADES_PER_DAY,
                self.trades_today,
                s.max_trades_per_day,
                f"{self.trades_today} entries today, max_trades_per_day {s.max_trades_per_day}",
            )
        if returns is not None and sym in returns:
            for h in held:
                if h.symbol == sym or h.symbol not in returns:
                    continue
                rho = correlation(returns[sym], returns[h.symbol], s.correlation_window)
                if rho is None:
                    continue
                same_way = rho * order.side.sign * h.side.sign
                if same_way > s.max_correlation:
                    refuse(
                        LimitKind.CORRELATION,
                        same_way,
                        s.max_correlation,
                        f"{sym} {order.side} moves with {h.symbol} {h.side} held: "
                        f"correlation {same_way:.2f} above {s.max_correlation:g}",
                    )
        return LimitVerdict(not out, self.state, tuple(out))
