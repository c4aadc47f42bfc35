"""The read side: the small tables the cockpit and `mikrobot status` read, refreshed together.

latest (last quote and sparkline per symbol), quality, breakers, accounts (with their margin
figures and their limits: trading state, daily loss, floors, heat), positions, working_orders,
ab, feeds (each connection's health), models (each model an account trades by: its batch score
beside the online model's, the entries it skipped, its drifted features), and the engine row
(who writes this file, in what mode, its heartbeat). `ab` holds a row per variant of each
experiment (paper/ab.py: Welch, the bootstrap intervals, the always-valid p-value and the
verdict; the bandit's share). Every figure comes from state the event log already holds (the
accounts are a fold of it) plus the last quotes; the rows go through the writer in the same
transaction as the events before them, so a reader never sees a position its events do not
explain.
"""

from __future__ import annotations

import json
import math
import os
import socket
import sqlite3
from collections import deque
from collections.abc import Callable
from typing import Any

from mikrobot_tui import __version__
from mikrobot_tui.clock import Clock
from mikrobot_tui.config import ExperimentSettings
from mikrobot_tui.data.feeds.health import FeedHealth
from mikrobot_tui.data.quality import QualityMonitor
from mikrobot_tui.domain.market import NS_PER_SECOND
from mikrobot_tui.domain.orders import Side
from mikrobot_tui.engine.allocation import Allocator, metric_trades
from mikrobot_tui.engine.limits import Limits
from mikrobot_tui.engine.models import ModelWatch
from mikrobot_tui.paper.ab import CONTROL, VariantResult, analyse
from mikrobot_tui.paper.ledger import Ledger, money
from mikrobot_tui.paper.portfolio import AccountState
from mikrobot_tui.paper.quotes import LastQuotes
from mikrobot_tui.store.schema import COLUMNS
from mikrobot_tui.store.writer import Writer
from mikrobot_tui.trading.breakers import CircuitBreaker
from mikrobot_tui.trading.strategies.params import param_text

SPARK_POINTS = 48
SPARK_STEP_NS = NS_PER_SECOND  # one sparkline point per second of market time: 48 s of trend


class ReadSide:
    def __init__(
        self,
        writer: Writer,
        quotes: LastQuotes,
        quality: QualityMonitor,
        breakers: Callable[[], list[CircuitBreaker]],
        ledger: Ledger,
        experiments: list[ExperimentSettings],
        clock: Clock,
        wall: Clock,
        feed: tuple[str, str],
        health: Callable[[], list[FeedHealth]] = list,
        limits: Limits | None = None,
        allocator: Allocator | None = None,
        models: ModelWatch | None = None,
    ) -> None:
        self._models = models  # the models accounts trade by (None: none)
        self._limits = limits  # each account's limit state and figures (engine/limits.py)
        self._writer = writer
        self._quotes = quotes
        self._quality = quality
        self._breakers = breakers
        self._ledger = ledger
        self._experiments = experiments
        self._allocator = allocator  # the bandits' shares (None: equal shares)
        # experiment -> (trades per variant, its statistics): worked out when a trade closes
        self._ab_cache: dict[str, tuple[tuple[int, ...], list[VariantResult]]] = {}
        self._clock = clock
        self._wall = wall  # the heartbeat is wall-clock by nature, also during a replay
        self._mode, self._feed = feed
        self._health = health
        self.running = False  # the engine row's `running`, set by the engine's lifecycle
        self.started_ts: int | None = None
        self._spark: list[deque[float]] = [deque(maxlen=SPARK_POINTS) for _ in quotes.symbols]
        self._spark_at = 0  # the market second of the last sparkline point
        # each sparkline's JSON, made when a point is added (once a second), not every write
        self._spark_json: list[str] = ["[]" for _ in quotes.symbols]

    def restore(self, conn: sqlite3.Connection) -> None:
        """Take the last quotes of an earlier session, so positions have a mark at once."""
        for symbol, bid, ask, open_mid in conn.execute(
            "SELECT symbol, bid, ask, open_mid FROM latest"
        ):
            self._quotes.restore(symbol, bid, ask, open_mid)

    def write(self) -> None:
        """Refresh every read-side table and flush.

        Stamped with market time: a simulated market running faster than the wall clock
        keeps its quality windows in its own time.
        """
        now = self._quotes.market_now or self._clock.now_ns()
        w = self._writer
        w.snapshot("latest", COLUMNS["latest"], self._latest_rows(now))
        w.snapshot("quality", COLUMNS["quality"], self._quality_rows(now))
        w.replace_all(
            "breakers",
            COLUMNS["breakers"],
            [
                (b.name, str(b.state), b.failures, b.successes, b.opened_ts, b.retry_ts, now)
                for b in self._breakers()
            ],
        )
        accounts, positions = self._account_rows(now)
        w.replace_all("accounts", COLUMNS["accounts"], accounts)
        w.replace_all("positions", COLUMNS["positions"], positions)
        w.replace_all("working_orders", COLUMNS["working_orders"], self._working_rows())
        w.replace_all("ab", COLUMNS["ab"], self._ab_rows(now))
        w.replace_all("feeds", COLUMNS["feeds"], self._feed_rows())
        w.replace_all("models", COLUMNS["models"], self._model_rows(now))
        w.snapshot("engine", COLUMNS["engine"], [self.engine_row()])
        w.flush()

    def _feed_rows(self) -> list[tuple[Any, ...]]:
        now = self._wall.now_ns()
        return [
            (
                h.name,
                h.venue,
                h.state,
                h.reconnects,
                h.last_message_ts,
                round(h.msgs_per_s, 3),
                h.latency_ms_p50,
                h.latency_ms_p99,
                h.conflated,
                h.detail,
                now,
            )
            for h in self._health()
        ]

    def _model_rows(self, now: int) -> list[tuple[Any, ...]]:
        if self._models is None:
            return []
        return [
            (
                account,
                m["model"],
                m["version"],
                m["kind"],
                m["label"],
                _finite(m["batch"]["auc"]),
                _finite(m["batch"]["log_loss"]),
                m["online"]["updates"],
                _finite(m["online"]["auc"]),
                _finite(m["online"]["log_loss"]),
                m["skipped"],
                json.dumps(m["drifted"]),
                now,
            )
            for account, m in self._models.scores().items()
        ]

    def _latest_rows(self, now: int) -> list[tuple[Any, ...]]:
        q = self._quotes
        sample = now // SPARK_STEP_NS > self._spark_at
        if sample:
            self._spark_at = now // SPARK_STEP_NS
        rows = []
        for s, symbol in enumerate(q.symbols):
            if math.isnan(q.bid[s]):
                continue
            mid = float((q.bid[s] + q.ask[s]) / 2)
            if sample or not self._spark[s]:
                self._spark[s].append(mid)
                self._spark_json[s] = json.dumps([round(x, 8) for x in self._spark[s]])
            last = None if math.isnan(q.last[s]) else float(q.last[s])
            rows.append(
                (
                    symbol,
                    int(q.ts[s][0]),
                    int(q.ts[s][1]),
                    float(q.bid[s]),
                    float(q.ask[s]),
                    last,
                    float(q.open_mid[s]),
                    self._spark_json[s],
                )
            )
        return rows

    def _quality_rows(self, now: int) -> list[tuple[Any, ...]]:
        names = self._quotes.symbols
        return [
            (
                names[q.sym] if 0 <= q.sym < len(names) else f"#{q.sym}",
                now,
                q.score,
                q.ticks,
                q.rejects,
                q.spikes,
                q.gaps,
                q.latency_ms,
                q.last_problem,
                q.last_problem_ts,
                q.validity,
                q.spikes_part,
                q.gaps_part,
                q.latency_part,
                q.completeness,
                q.expected_ticks,
                q.window_ticks,
                q.latency_cp,
                q.latency_cpk,
                q.bar_completeness,
                q.expected_bars,
                q.window_bars,
            )
            for q in self._quality.scores(now)
        ]

    def _account_rows(self, now: int) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        accounts, positions = [], []
        for acct in self._ledger.state.accounts.values():
            m = self._ledger.margin(acct)
            level = None if m.margin_level is None else round(m.margin_level, 2)
            terms = self._ledger.account_terms(acct.name)
            unrealized = 0.0
            for pos in acct.positions.values():
                mark, upnl = self._ledger.open_pnl(acct, pos, None, 0)
                unrealized += upnl
                positions.append(
                    (
                        pos.position_id,
                        acct.name,
                        pos.symbol,
                        "LONG" if pos.side is Side.BUY else "SHORT",
                        pos.lots,
                        pos.entry_price,
                        mark,
                        money(upnl),
                        pos.stop_loss,
                        pos.take_profit,
                        pos.ts_opened,
                    )
                )
            accounts.append(
                (
                    acct.name,
                    acct.currency,
                    acct.strategy,
                    json.dumps(acct.params, sort_keys=True),
                    money(acct.balance),
                    money(acct.balance + unrealized),
                    money(acct.realized_pnl),
                    money(unrealized),
                    len(acct.positions),
                    len(acct.trades),
                    now,
                    money(m.used_margin),
                    money(m.free_margin),
                    level,
                    int(m.margin_call),
                    float(terms.margin_call_level),
                    terms.leverage,  # None: per asset class ([paper.leverage])
                    terms.oms,
                    *self._limit_figures(acct, m.equity),
                )
            )
        return accounts, positions

    def _limit_figures(self, acct: AccountState, equity: float) -> tuple[Any, ...]:
        if self._limits is None:
            return (str(acct.trading_state), None, None, None, None, None, None)
        f = self._limits.status(acct, equity)
        return (
            str(f.trading_state),
            money(f.daily_loss_limit),
            money(f.daily_loss_used),
            money(f.daily_floor),
            money(f.overall_floor),
            round(f.heat, 4) if math.isfinite(f.heat) else None,
            f.trades_today,
        )

    def _working_rows(self) -> list[tuple[Any, ...]]:
        return [
            (
                acct.name,
                o.order_id,
                o.symbol,
                str(o.side),
                str(o.type),
                o.lots,
                o.filled_lots,
                o.price,
                o.trigger,
                str(o.tif),
                o.expire_ts,
                int(o.reduce_only),
                o.parent_id,
                o.oco_id,
                o.ts_submitted,
            )
            for acct in self._ledger.state.accounts.values()
            for o in acct.working.values()
        ]

    def _ab_rows(self, now: int) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = []
        for e in self._experiments:
            rows.extend(self._experiment_rows(e, now))
        return rows

    def _experiment_rows(self, e: ExperimentSettings, now: int) -> list[tuple[Any, ...]]:
        """One row per variant; the statistics are worked out again only when a variant's
        trades changed (a bootstrap of 2,000 resamples is not for every snapshot)."""
        state = self._ledger.state
        accounts = [state.accounts.get(v) for v in e.variants]
        if any(a is None for a in accounts):
            return []
        key = tuple(len(a.trades) for a in accounts if a is not None)
        cached = self._ab_cache.get(e.name)
        if cached is None or cached[0] != key:
            picked = [metric_trades(a.trades, e.metric) for a in accounts if a is not None]
            results = analyse(
                list(e.variants),
                [values for values, _ in picked],
                [closed for _, closed in picked],
                min_trades=e.min_trades,
                alpha=e.alpha,
                seed=e.seed,
            )
            cached = self._ab_cache[e.name] = (key, results)
        results = cached[1]
        allocator = self._allocator
        shares = (
            allocator.shares(e)
            if allocator is not None and e.bandit
            else [1 / len(e.variants)] * len(e.variants)
        )
        rows = []
        for i, (acct, r, share) in enumerate(zip(accounts, results, shares, strict=True)):
            assert acct is not None
            c, ci = r.comparison, r.mean_ci
            diff_ci = c.diff_ci if c is not None else None
            any_ci = diff_ci or ci
            rows.append(
                (
                    e.name,
                    _variant_label(i),
                    acct.name,
                    " ".join(f"{k}={param_text(v)}" for k, v in acct.params.items())
                    or acct.strategy,
                    e.metric,
                    r.stats.trades,
                    r.stats.wins,
                    r.stats.win_rate,
                    r.stats.mean_return,
                    r.stats.std_return,
                    None if ci is None else ci.low,
                    None if ci is None else ci.high,
                    None if c is None else c.diff,
                    None if diff_ci is None else diff_ci.low,
                    None if diff_ci is None else diff_ci.high,
                    None if any_ci is None else any_ci.method,
                    None if any_ci is None else any_ci.level,
                    None if any_ci is None else any_ci.seed,
                    None if any_ci is None else any_ci.resamples,
                    r.t_stat,
                    None if c is None else c.welch_p,
                    r.test,
                    None if c is None else c.always_valid_p,
                    e.alpha / (len(e.variants) - 1),
                    share,
                    int(e.bandit),
                    CONTROL if c is None else c.verdict,
                    "the control the others are compared with" if c is None else c.reason,
                    now,
                )
            )
        return rows

    def engine_row(self) -> tuple[Any, ...]:
        return (
            1,
            os.getpid(),
            socket.gethostname(),
            self._mode,
            self._feed,
            str(self._ledger.state.trading_state),
            int(self.running),
            self.started_ts,
            self._wall.now_ns(),
            __version__,
        )


def _finite(x: float | None) -> float | None:
    """NULL for a figure that cannot be told yet (an AUC before both outcomes were seen)."""
    return None if x is None or not math.isfinite(x) else float(x)


def _variant_label(i: int) -> str:
    """A for the control, then B, C ... (AA after Z, for the rare 27th variant)."""
    label = ""
    i += 1
    while i:
        i, rest = divmod(i - 1, 26)
        label = chr(ord("A") + rest) + label
    return label
