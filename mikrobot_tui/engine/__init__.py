"""The engine: builds its rooms from Settings, starts and stops. Nothing else lives here.

A tick walks one corridor (engine/corridor.py): quality, candles, strategies and decisions
(engine/decisions.py), external signals (engine/external.py), matching, and the books
(paper/ledger.py), which turn every change into an event. The operator's commands go
through engine/control.py, the tables the faces read are written by engine/snapshot.py, and
engine/runner.py drives it all, live or as a replay.

The engine is the only writer of trading state: the cockpit and the CLI read SQLite and send
commands through the `commands` table. Nothing trading-related lives in the TUI or the CLI.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

from mikrobot_tui.clock import Clock, LiveClock
from mikrobot_tui.config import ConfigError, Settings
from mikrobot_tui.data.feeds import Feed, ReplayFeed
from mikrobot_tui.domain.events import Event, EventKind
from mikrobot_tui.domain.instruments import default_instruments
from mikrobot_tui.domain.market import NS_PER_SECOND
from mikrobot_tui.domain.orders import TradingState
from mikrobot_tui.engine import checkpoint
from mikrobot_tui.engine.alerts import Alerts
from mikrobot_tui.engine.allocation import Allocator
from mikrobot_tui.engine.control import CommandPulse, Control
from mikrobot_tui.engine.corridor import Corridor
from mikrobot_tui.engine.decisions import Decisions
from mikrobot_tui.engine.external import build_intake
from mikrobot_tui.engine.limits import DayLog, Limits
from mikrobot_tui.engine.models import ModelWatch
from mikrobot_tui.engine.preflight import changed_account, check_runnable, clock_for
from mikrobot_tui.engine.snapshot import ReadSide
from mikrobot_tui.engine.warmup import warm_from_history, warm_from_store
from mikrobot_tui.paper.brackets import protect_unprotected
from mikrobot_tui.paper.fillmodel import LatencyModel
from mikrobot_tui.paper.ledger import Ledger
from mikrobot_tui.paper.portfolio import EngineState, apply
from mikrobot_tui.paper.quotes import LastQuotes
from mikrobot_tui.store import commands as cmd
from mikrobot_tui.store.events import read_events
from mikrobot_tui.store.queries import engine_status
from mikrobot_tui.store.schema import COLUMNS, open_db
from mikrobot_tui.store.writer import Writer
from mikrobot_tui.trading.breakers import BreakerChange, CircuitBreaker
from mikrobot_tui.trading.judges import QualityJudge
from mikrobot_tui.trading.scoring import SignalScorer
from mikrobot_tui.trading.strategies import Strategy, build_strategy

__all__ = ["Engine", "EngineBusy", "build_engine", "check_runnable"]


WRITER_BUSY_MS = 100
CLAIM_BUSY_MS = 5_000  # start-up may wait for another process's short write


class EngineBusy(RuntimeError):
    """Another engine holds this database (or did while this one was starting)."""

    def __init__(self, message: str, *, running_elsewhere: bool = False) -> None:
        super().__init__(message)
        self.running_elsewhere = running_elsewhere  # a live engine runs on it now


class Engine:
    def __init__(
        self,
        settings: Settings,
        *,
        feed: Feed,
        clock: Clock | None = None,
        db_path: Path | None = None,
    ) -> None:
        self.settings = settings
        self.feed = feed
        self.clock: Clock = clock or LiveClock()
        # Liveness (heartbeat, command answers) is wall-clock by nature, also during a replay;
        # it never enters the event log, so replays stay deterministic.
        self.wall: Clock = LiveClock()
        self.db_path = Path(db_path or settings.engine.db)
        self.conn = open_db(self.db_path, handed_over=True).conn  # the cockpit's start thread
        # one attempt waits briefly for another writer: the writer retries rather than
        # stall the loop that also draws the cockpit
        self.writer = Writer(self.conn, busy_timeout_ms=WRITER_BUSY_MS)

        catalogue = {**default_instruments(), **feed.instruments()}  # the venue's own win
        self.symbols: list[str] = list(feed.symbols)
        state = EngineState()
        days = DayLog(ZoneInfo(settings.risk.day_timezone))  # the day in progress, same pass
        self.alerts = Alerts()  # where each alert's storm window stands, same pass
        for event in read_events(self.conn):
            days.before(event)
            apply(state, event)
            days.after(event, state)
            self.alerts.learn(event)
        self.quotes = LastQuotes(self.symbols, market_now=state.last_ts)
        equivalents = settings.engine.currency_equivalents
        accounts = {a.name: a for a in settings.accounts}
        self.ledger = Ledger(
            state, self.writer, catalogue, self.quotes, equivalents, accounts, settings.paper
        )

        b = settings.breakers
        feed_breaker = CircuitBreaker.from_settings(f"feed:{feed.name}", b)
        strategies = {a.name: build_strategy(a.strategy, dict(a.params)) for a in settings.accounts}
        for strategy in strategies.values():  # pip sizes and asset classes of this venue
            bind = getattr(strategy, "bind", None)
            if bind is not None:
                bind(catalogue)
        strategy_breakers = {
            name: CircuitBreaker.from_settings(f"strategy:{name}", b) for name in strategies
        }
        self._refuse_changed_accounts(strategies)
        latency = LatencyModel(settings.paper).sample_ns  # per order id: a replay repeats it
        quality_judge = QualityJudge(
            self.symbols, b, round(settings.quality.window_s * NS_PER_SECOND)
        )
        orders_breaker = CircuitBreaker.from_settings("orders", b)
        self.limits = Limits(self.ledger, settings.risk, days)
        self.alerts.attach(self.ledger)  # after the limits: it sees what they made of an event
        # alerts raised before a run's log and webhook listen (while starting, warming up),
        # each with whether the warm-up's history raised it: kept until the runner takes
        # them (take_start_alerts), so none goes untold
        self._start_alerts: list[tuple[Event, bool]] = []
        self.ledger.watchers.append(self._keep_start_alert)
        # the bandits watch trades close (a watcher after the limits' and the alerts')
        self.allocator = Allocator(self.ledger, settings.effective_experiments())
        # the models accounts trade by (engine/models.py): loaded and bound before any bar
        self.models = ModelWatch(self.ledger)
        self.models.serve(settings, strategies)
        decisions = Decisions(
            strategies,
            strategy_breakers,
            feed_breaker,
            self.ledger,
            settings.risk,
            latency,
            quality_judge,
            orders_breaker,
            SignalScorer(settings.orchestrator),
            self.limits,
            self.allocator,
            self.models,
        )
        self.scorer = decisions.scorer
        # external signals (the EA's file, the webhook) for a live run; a replay has none
        self.intake = build_intake(
            settings,
            feed.mode,
            self.ledger,
            decisions,
            self.writer,
            self.wall,
            self.event_ts,
            self.conn,
        )
        external_breakers = list(self.intake.breakers.values()) if self.intake else []
        self.breakers = [
            feed_breaker,
            *strategy_breakers.values(),
            *external_breakers,
            orders_breaker,
            *(quality_judge.breakers if quality_judge.enabled else ()),
        ]
        for breaker in self.breakers:
            saved = state.breakers.get(breaker.name)
            if saved is not None:
                breaker.restore(BreakerChange.from_payload(saved))

        self.corridor = Corridor(
            settings,
            self.quotes,
            self.ledger,
            decisions,
            self.writer,
            self.clock,
            feed_breaker.name,
            self.intake,
        )
        self.read_side = ReadSide(
            self.writer,
            self.quotes,
            self.corridor.quality,
            lambda: self.breakers,
            self.ledger,
            settings.effective_experiments(),
            self.clock,
            self.wall,
            (feed.mode, feed.name),
            feed.health,
            self.limits,
            self.allocator,
            self.models,
        )
        self.read_side.restore(self.conn)
        self.control = Control(
            self.conn,
            self.ledger,
            self.quotes,
            self.event_ts,
            self.wall,
            latency,
            self.read_side.write,
            self.writer,
        )
        self.control.limits = self.limits
        self.limits.halt_engine = lambda ts, why: self.control.halt("limits", ts=ts, reason=why)
        self.limits.flatten_account = self.control.flatten_account
        self.limits.history = decisions.history
        self.corridor.venue.watch.limits = self.limits
        self.pulse = CommandPulse(self.conn)
        self._answered_midway = False  # commands carried out inside a batch, read side due
        self.corridor.overtake = self._overtake
        self.strategies = strategies
        protect_unprotected(self.ledger, state.last_ts)
        # a rollover between the last session and this one is charged when the market passes it
        self.corridor.venue.watch.last_ts = state.last_ts
        self._started = False
        self.resumed_at: int | None = None  # ticks of the replay file an earlier run did
        if isinstance(feed, ReplayFeed):
            self._resume_replay(feed, decisions)

    # ---------------------------------------------------------------- commands first

    def take_commands(self) -> None:
        """Between batches: carry out the commands sent since the engine last looked."""
        if self.pulse.changed():
            self.control.handle_commands()

    def _overtake(self) -> None:
        """At a decision point inside a batch: the same, answered after the batch."""
        if self.pulse.changed() and self.control.handle_commands(refresh=False):
            self._answered_midway = True

    def answer_commands(self) -> None:
        """After a batch: commands carried out inside it are answered with the read side."""
        if self._answered_midway:
            self._answered_midway = False
            self.read_side.write()

    def refresh_books(self) -> None:
        """The feed's latest order books (Binance depth), for market orders to walk."""
        depths = self.feed.books()
        if depths:
            self.corridor.venue.books.refresh(depths)

    def _resume_replay(self, feed: ReplayFeed, decisions: Decisions) -> None:
        """A replay of a file this database has a checkpoint of goes on from it; every flush
        stores a new checkpoint with the rows (engine/checkpoint.py)."""
        if checkpoint.stored_fingerprint(self.conn) == feed.fingerprint():
            memory = checkpoint.load(self.conn, feed.fingerprint(), self.settings)
            if memory is not None:
                checkpoint.restore(memory, self.corridor, decisions, self.clock)
                self.resumed_at = min(memory.counts.ticks_in, len(feed))
                feed.resume_at(self.resumed_at)
        checkpoint.Checkpoints(
            self.writer,
            feed.fingerprint,
            str(feed.path),
            lambda: checkpoint.Memory.of(self.corridor, decisions, self.clock),
            self.wall,
        )

    def _refuse_changed_accounts(self, strategies: dict[str, Strategy]) -> None:
        recorded = {n: (a.strategy, a.params) for n, a in self.ledger.state.accounts.items()}
        problem = changed_account(self.settings, strategies, recorded, self.db_path)
        if problem is not None:
            self.conn.close()
            raise ConfigError(problem)

    @property
    def state(self) -> EngineState:
        """Everything the event log determines: the fold of it."""
        return self.ledger.state

    @property
    def trading_state(self) -> TradingState:
        return self.ledger.state.trading_state

    def event_ts(self) -> int:
        """The time an operator's event carries: market time, or the clock before any tick."""
        return max(self.quotes.market_now, self.corridor.point_ts) or self.clock.now_ns()

    # ---------------------------------------------------------------- lifecycle

    def _keep_start_alert(self, event: Event) -> None:
        if event.kind is EventKind.ALERT:
            self._start_alerts.append((event, self.corridor.warming))

    def take_start_alerts(self) -> list[tuple[Event, bool]]:
        """The alerts raised since the engine was built, once, each with whether it came from
        the warm-up's history; from now on the caller's own watcher hears them."""
        with contextlib.suppress(ValueError):
            self.ledger.watchers.remove(self._keep_start_alert)
        taken, self._start_alerts = self._start_alerts, []
        return taken

    def start(self, should_stop: Callable[[], bool] | None = None) -> None:
        """Claim the database, open new accounts, cancel orders left from a previous run.

        `should_stop` is asked between warm-up batches: when it says yes the warm-up ends
        early (the strategies are colder, nothing else differs), so a signal during start-up
        stops the program in moments; the caller then stops the engine instead of running it.
        """
        now = self.wall.now_ns()
        self._claim(now)
        ledger = self.ledger
        ts = self.event_ts()
        for acct in self.settings.accounts:
            if acct.name not in ledger.state.accounts:
                ledger.emit(
                    ts,
                    EventKind.ACCOUNT_OPENED,
                    acct.name,
                    {
                        "balance": acct.balance,
                        "currency": acct.currency,
                        "strategy": self.strategies[acct.name].name,
                        "params": dict(acct.params),
                    },
                )
        for acct in ledger.state.accounts.values() if self.resumed_at is None else ():
            for order in list(acct.working.values()):
                if order.position_id is not None:
                    continue  # a flatten still to fill: it fills at the first tick now
                payload = {"order_id": order.order_id, "reason": "engine restarted"}
                ledger.emit(ts, EventKind.ORDER_CANCELLED, acct.name, payload)
        self.writer.upsert(
            "instruments",
            COLUMNS["instruments"],
            [
                (
                    i.symbol,
                    str(i.asset_class),
                    i.base,
                    i.quote,
                    i.pip_size,
                    i.tick_size,
                    i.contract_size,
                    i.lot_step,
                    i.min_lot,
                    i.min_notional,
                )
                for i in ledger.instruments
            ],
        )
        self._started = True
        self.control.started_ts = now
        self._warm_up(should_stop or (lambda: False))
        self.read_side.write()

    def _claim(self, now: int) -> None:
        """Make this engine the database's one writer, in one transaction: refused when
        another live engine holds it, or when events arrived since this engine read them."""
        conn = self.conn
        conn.execute(f"PRAGMA busy_timeout={CLAIM_BUSY_MS}")
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            conn.execute(f"PRAGMA busy_timeout={WRITER_BUSY_MS}")
            raise EngineBusy(f"{self.db_path} cannot be claimed: {exc}") from None
        try:
            status = engine_status(conn, now)
            if status.running and status.pid != os.getpid():
                raise EngineBusy(
                    f"another engine (pid {status.pid}) is running on {self.db_path}; "
                    "attach to it with `mikrobot --attach`, or stop it first",
                    running_elsewhere=True,
                )
            (last_seq,) = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
            if last_seq != self.ledger.state.last_seq:
                raise EngineBusy(
                    f"another engine wrote to {self.db_path} while this one was starting; "
                    "start again"
                )
            self.read_side.running, self.read_side.started_ts = True, now
            conn.execute(
                f"INSERT OR REPLACE INTO engine ({', '.join(COLUMNS['engine'])}) "
                f"VALUES ({', '.join('?' * len(COLUMNS['engine']))})",
                self.read_side.engine_row(),
            )
            cmd.abandon_running(conn, now)
            conn.execute("COMMIT")
        except BaseException:
            self.read_side.running = False
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            conn.execute(f"PRAGMA busy_timeout={WRITER_BUSY_MS}")

    def _warm_up(self, should_stop: Callable[[], bool]) -> None:
        """The past the strategies learn from: the database's, else the feed's history. A
        resumed replay has its memory back already. `should_stop` can end it early."""
        if self.resumed_at is not None:
            return
        # the orchestrator's scorer learns its trend and ATR from the stored bars too
        scorer = self.scorer
        learners = [*self.strategies.values(), *([scorer] if scorer is not None else [])]
        warm_from_store(self.conn, self.corridor, learners)
        warm_from_history(self.corridor, self.feed.history(), self.writer, should_stop)
        self.corridor.start_session()

    @property
    def started(self) -> bool:
        return self._started

    def stop(self) -> None:
        if self._started:
            self._started = False
            self.read_side.running = False
            self.read_side.write()

    def close(self) -> None:
        self.stop()
        self.writer.close()
        self.conn.close()


def build_engine(settings: Settings, clock: Clock | None = None) -> Engine:
    """The engine on the feed config.toml names, with the clock that feed needs.

    What `check_runnable` refuses is a configuration error.
    """
    if clock is None:
        clock = clock_for(settings)
    feed = check_runnable(settings, clock)
    return Engine(settings, feed=feed, clock=clock)
