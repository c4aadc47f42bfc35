"""What drives the engine: the live loop and the replay loop.

Live, the feed runs as its own task: a live feed never waits for the engine, it fills a
conflating queue that keeps the newest quote per symbol when the engine falls behind (and
counts what it dropped); a replay must see every tick, so the engine pulls it directly. The
external signal sources (data/signals: the EA's file, the webhook) start and stop with a live
run, as tasks of their own that fill the engine's inbox (engine/external.py); a replay never
has them. Beside the feed, the loop flushes the writer every 50 ms, polls commands every
`engine.poll_ms`, refreshes the read side `engine.snapshot_hz` times a second and backs the
database up every `store.backup_every_h` hours (engine/backups.py). A replay from a file runs
without an event loop at all, flushing by size.

When the database cannot take the writer's rows (locked by another process, full), nothing is
dropped: the writer keeps them and retries, the runner takes no new ticks while the backlog is
large (a live feed's queue conflates meanwhile, and counts what it drops), a full database
halts trading (the event lands once there is room), and the problem is published where the
cockpit and `mikrobot status` see it. Only when it lasts past `engine.db_wait_s` does the run
end, with `DatabaseUnavailable` saying what to free.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mikrobot_tui.data.feeds import ConflatingQueue, feed_failures, feed_rejects
from mikrobot_tui.data.signals.sources import Source, build_sources
from mikrobot_tui.domain.events import Event, EventKind
from mikrobot_tui.domain.orders import TradingState
from mikrobot_tui.engine import Engine
from mikrobot_tui.engine.alert_webhook import AlertWebhook
from mikrobot_tui.engine.backups import BackupSchedule
from mikrobot_tui.engine.runlog import RunLog
from mikrobot_tui.store import liveness
from mikrobot_tui.store.writer import Writer

MIB = 1024 * 1024
SETTLE_S = 5.0  # how long a stop waits for a locked or full database to take its last rows


class DatabaseUnavailable(RuntimeError):
    """The database stayed locked or full for longer than `engine.db_wait_s`."""


@dataclass(frozen=True, slots=True)
class RunStats:
    ticks_in: int
    ticks_clean: int
    bars: int
    events: int
    rejects: int


class Runner:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.queue = ConflatingQueue()
        self.sources: list[Source] = []  # external signal sources while a live run runs
        self._published = False  # a liveness file says what is wrong with the database
        self.log: RunLog | None = None  # the run's JSON-lines log while a live run runs
        self.webhook: AlertWebhook | None = None  # alerts POSTed, in a live run when configured
        self._logged_problem: str | None = None
        self._logged_checkpoint: str | None = None

    def replay(self, batches: Iterator[np.ndarray]) -> RunStats:
        """Process batches as fast as they come, flushing by size. No event loop."""
        engine = self.engine
        seq0 = engine.ledger.log.last_seq
        if not engine.started:
            engine.start()
        engine.take_start_alerts()  # a replay has no log or webhook to tell them to
        for batch in batches:
            engine.take_commands()  # commands overtake the ticks waiting behind them
            engine.corridor.process(batch)
            engine.answer_commands()
            if engine.writer.pending_rows >= Writer.FLUSH_ROWS or engine.writer.problem:
                engine.writer.flush()
                self._wait_for_writer()
        engine.read_side.write()
        self._wait_for_writer()
        c = engine.corridor.counts
        return RunStats(
            c.ticks_in, c.ticks_clean, c.bars, engine.ledger.log.last_seq - seq0, c.rejects
        )

    async def run(self, stop: asyncio.Event, duration_s: float | None = None) -> None:
        """Live: consume the feed until `stop` is set (or the duration passes), with the
        external signal sources config.toml turns on running beside it."""
        engine = self.engine
        if not engine.started:
            engine.start()
        tasks: list[asyncio.Task[None]] = []
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        # every 50 ms the writer flushes; commands and snapshots come at their own periods
        due = {"commands": t0, "snapshot": t0}
        periods = {
            "commands": engine.settings.engine.poll_ms / 1000,
            "snapshot": 1.0 / engine.settings.engine.snapshot_hz,
        }
        feed_is_live = engine.feed.mode != "REPLAY"
        backups = BackupSchedule(engine.settings.store, engine.db_path, engine.writer, engine.wall)
        early = self._open_log()
        backups.on_failure = self._backup_failed
        try:
            if feed_is_live:  # a replay never POSTs its alerts
                tasks += self._start_webhook(stop)
            for event, history in early:  # raised while the engine started: told now
                self._on_event(event, history)
            tasks += await self._start_sources(stop)
            consumer = asyncio.create_task(self._consume(stop), name="engine-feed")
            tasks.insert(0, consumer)
            while not stop.is_set():
                now = loop.time()
                if duration_s is not None and now - t0 >= duration_s:
                    break
                if any(task.done() for task in tasks):
                    for task in tasks:
                        if task.done():
                            task.result()  # re-raise a feed's or a source's failure
                    break
                if feed_is_live:  # what a quiet or failing live feed reports comes in too
                    self._feed_side()
                if now >= due["commands"]:
                    engine.control.handle_commands()
                    if engine.intake is not None:  # signals wait for no tick to be seen
                        engine.intake.collect()
                backups.poll()  # a copy in a worker thread every store.backup_every_h
                if now >= due["snapshot"]:
                    engine.read_side.write()  # flushes too
                else:
                    engine.writer.flush()
                self.on_writer_problem()
                for what, at in due.items():
                    if now >= at:
                        due[what] = max(at + periods[what], now)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=Writer.FLUSH_SECONDS)
        except Exception as exc:
            if self.log is not None:
                self.log.exception("engine stopped on an error", error=f"{type(exc).__name__}")
            raise
        finally:
            stop.set()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self.sources = []
            await backups.close()
            engine.stop()
            await self._settle(SETTLE_S)
            self.on_writer_problem()
            self._close_log()

    # ---------------------------------------------------------------- the run's log, alerts

    def _open_log(self) -> list[tuple[Event, bool]]:
        """The run's JSON-lines log (engine/runlog.py) and the watcher that tells it (and the
        webhook) each new alert; returns the alerts raised before, while the engine started.
        A log that cannot be opened is said on stderr, not fatal."""
        engine = self.engine
        early = engine.take_start_alerts()
        engine.ledger.watchers.append(self._on_event)
        try:
            self.log = RunLog(engine.settings, engine.db_path, engine.wall.now_ns())
        except OSError as exc:
            print(f"warning: no engine log file ({exc}); the engine runs on", file=sys.stderr)
            return early
        self.log.info(
            "engine started",
            feed=engine.feed.name,
            mode=engine.feed.mode,
            db=str(engine.db_path),
            pid=os.getpid(),
            trading_state=str(engine.trading_state),
        )
        return early

    def _backup_failed(self, outcome: str) -> None:
        if self.log is not None:
            self.log.error("scheduled backup failed", outcome=outcome)

    def _close_log(self) -> None:
        engine = self.engine
        with contextlib.suppress(ValueError):
            engine.ledger.watchers.remove(self._on_event)
        webhook, self.webhook = self.webhook, None
        if self.log is not None:
            c = engine.corridor.counts
            extra = {}
            if webhook is not None:
                extra = {
                    "webhook_delivered": webhook.delivered,
                    "webhook_dropped": webhook.dropped,
                    "webhook_given_up": webhook.given_up,
                }
            self.log.info(
                "engine stopped",
                feed=engine.feed.name,
                mode=engine.feed.mode,
                db=str(engine.db_path),
                ticks_in=c.ticks_in,
                events=engine.ledger.log.last_seq,
                **extra,
            )
            self.log.close()
            self.log = None

    def _on_event(self, event: Event, history: bool = False) -> None:
        """A ledger watcher: each new alert to the log and the webhook's queue. An alert the
        warm-up's history raised (`history`: a breaker that tripped on the generated hour
        before the run) is logged, marked so, and not POSTed: nobody need act on it."""
        if event.kind is not EventKind.ALERT:
            return
        try:
            if self.log is not None:
                p = event.payload
                say = {"info": self.log.info, "warning": self.log.warning}.get(
                    str(p.get("severity")), self.log.error
                )
                fields = {**p, "cause_seq": p.get("seq"), "alert": p.get("kind")}
                fields |= {"seq": event.seq, "ts": event.ts, "account": event.account}
                if history:
                    fields["warmup"] = True
                del fields["kind"]
                say("alert", **fields)
            if self.webhook is not None and not history:
                self.webhook.offer(event)
        except Exception as exc:  # telling about an alert never stops the engine
            print(f"warning: an alert was not logged: {exc!r}", file=sys.stderr)

    def _start_webhook(self, stop: asyncio.Event) -> list[asyncio.Task[None]]:
        a = self.engine.settings.alerts
        if a.webhook_url is None:
            return []

        def say(msg: str, fields: dict) -> None:
            if self.log is not None:
                self.log.warning(msg, **fields)

        self.webhook = AlertWebhook(a, say)
        return [asyncio.create_task(self.webhook.run(stop), name="alerts-webhook")]

    async def _start_sources(self, stop: asyncio.Event) -> list[asyncio.Task[None]]:
        """The EA file's watcher and the webhook, when config.toml asks for them and the
        engine has an intake (never in a replay). ConfigError when one cannot start."""
        intake = self.engine.intake
        if intake is None:
            return []
        self.sources = build_sources(self.engine.settings.signals, intake.inbox, self.engine.wall)
        for source in self.sources:
            await source.start()
        return [
            asyncio.create_task(source.run(stop), name=f"signals-{source.name}")
            for source in self.sources
        ]

    async def _settle(self, grace_s: float) -> None:
        """At the stop, give a database in trouble a few seconds to take the last rows."""
        writer = self.engine.writer
        deadline = time.monotonic() + grace_s
        while writer.problem is not None and time.monotonic() < deadline:
            await asyncio.sleep(Writer.FLUSH_SECONDS)
            writer.flush()

    async def _consume(self, stop: asyncio.Event) -> None:
        feed, corridor = self.engine.feed, self.engine.corridor

        def process(batch: np.ndarray) -> None:
            self.engine.refresh_books()
            self.engine.take_commands()  # commands overtake the ticks waiting behind them
            corridor.process(batch)
            self.engine.answer_commands()
            self._feed_side()

        if feed.mode == "REPLAY":  # a replay must see every tick: it waits for us
            async for batch in feed.batches(stop):
                while self.engine.writer.backlogged and not stop.is_set():
                    await asyncio.sleep(Writer.FLUSH_SECONDS)
                process(batch)
                if stop.is_set():
                    break
            return
        # A live feed never waits for the engine: it fills a bounded queue that conflates to
        # the newest quote per symbol when we fall behind, and counts what it dropped.
        producer = asyncio.create_task(self._produce(stop), name="engine-feed-reader")
        try:
            while not stop.is_set() and not producer.done():
                getter = asyncio.create_task(self.queue.get())
                done, _ = await asyncio.wait(
                    {getter, producer}, return_when=asyncio.FIRST_COMPLETED
                )
                if getter in done:
                    process(getter.result())
                else:
                    getter.cancel()
                while self.engine.writer.backlogged and not stop.is_set():
                    await asyncio.sleep(Writer.FLUSH_SECONDS)  # the queue conflates meanwhile
            rest = self.queue.get_nowait()
            if rest is not None:
                process(rest)
            if producer.done():
                producer.result()  # a feed that failed says why
        finally:
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await producer

    def _feed_side(self) -> None:
        """What the feed reports beside its quotes: trades, rejected frames, failures."""
        feed, corridor = self.engine.feed, self.engine.corridor
        corridor.record_trades(feed.take_trades())
        corridor.record_feed_rejects(feed_rejects(feed))
        corridor.record_feed_failures(feed_failures(feed))

    async def _produce(self, stop: asyncio.Event) -> None:
        async for batch in self.engine.feed.batches(stop):
            self.queue.put_nowait(batch)

    # ---------------------------------------------------------------- a database in trouble

    def on_writer_problem(self) -> None:
        """React to the writer's state: halt when full, publish or clear the problem, and give
        up (DatabaseUnavailable) once it has lasted longer than `engine.db_wait_s`."""
        engine = self.engine
        writer = engine.writer
        self._log_problem()
        if writer.problem is None:
            if self._published:
                liveness.clear(engine.db_path)
                self._published = False
            return
        if writer.cannot_store and engine.trading_state is TradingState.ACTIVE:
            # no new positions while their events cannot be kept; logged once there is room
            engine.control.halt("database full" if writer.full else "database failing")
        self._published = liveness.publish(
            engine.db_path,
            {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "heartbeat_ts": engine.wall.now_ns(),
                "problem": self.describe_problem(),
                "mode": engine.feed.mode,
                "feed": engine.feed.name,
                "trading_state": str(engine.trading_state),
            },
        )
        waited = time.monotonic() - (writer.since or time.monotonic())
        if waited > engine.settings.engine.db_wait_s:
            raise DatabaseUnavailable(
                f"{self.describe_problem()}; gave up after {waited:.0f} s "
                f"(engine.db_wait_s); {writer.pending_rows:,} row(s) were not written, the "
                "database holds everything before them"
            )

    def _log_problem(self) -> None:
        """A database problem in the run's log when it starts, changes and ends; the WAL
        copy's trouble too (the writer's thread: the engine writes on, the WAL grows up to
        its bound meanwhile)."""
        if self.log is None:
            return
        checkpoint = self.engine.writer.checkpoint_problem
        if checkpoint != self._logged_checkpoint:
            if checkpoint is None:
                self.log.info("WAL copy working again", was=self._logged_checkpoint)
            else:
                self.log.warning("WAL copy failing", problem=checkpoint)
            self._logged_checkpoint = checkpoint
        problem = self.engine.writer.problem  # the described text counts rows: it moves
        if problem == self._logged_problem:
            return
        if problem is None:
            self.log.info("database problem cleared", was=self._logged_problem)
        else:
            self.log.error("database problem", problem=self.describe_problem())
        self._logged_problem = problem

    def describe_problem(self) -> str | None:
        """The writer's problem in a line an operator can act on, None when there is none."""
        writer, db = self.engine.writer, Path(self.engine.db_path)
        if writer.problem is None:
            return None
        waiting = f"{writer.pending_rows:,} row(s) waiting"
        if writer.cannot_store:
            free = _free_bytes(db.parent)
            need = max(writer.pending_bytes * 3, 4 * MIB)  # rows, their WAL copy, some room
            free_text = "unknown" if free is None else f"{free / MIB:.1f} MiB"
            what = "database or disk full" if writer.full else writer.problem
            return (
                f"{db}: {what} ({free_text} free on {db.parent}); free at least "
                f"{need / MIB:.0f} MiB or fix the disk; trading halted, {waiting}"
            )
        return f"{db}: {writer.problem}; retrying, {waiting}"

    def _wait_for_writer(self) -> None:
        """A replay has no live market to keep up with: it waits until its rows are down."""
        writer = self.engine.writer
        while writer.problem is not None:
            self.on_writer_problem()
            time.sleep(Writer.FLUSH_SECONDS)
            writer.flush()
        self.on_writer_problem()


def _free_bytes(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None
