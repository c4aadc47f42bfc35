"""The engine: wiring and lifecycle. One corridor for a tick, one writer, one state.

feed -> quality -> candles -> strategies -> orchestrator -> paper execution -> events -> SQLite.

The cockpit, the headless runner and replays all drive this class; nothing trading-related
lives in the TUI or the CLI. The engine is the only writer of trading state: other processes
read SQLite and send commands through the `commands` table, which the engine polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import socket
import zipfile
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mikrobot_tui import __version__
from mikrobot_tui.clock import Clock, LiveClock, ReplayClock
from mikrobot_tui.config import ConfigError, Settings
from mikrobot_tui.data.candles import CandleSet
from mikrobot_tui.data.feeds import ConflatingQueue
from mikrobot_tui.data.quality import QualityMonitor, QualityResult
from mikrobot_tui.domain.events import EventKind
from mikrobot_tui.domain.instruments import Instrument, conversion_rate, default_instruments
from mikrobot_tui.domain.market import (
    M1,
    M5,
    NS_PER_MS,
    NS_PER_SECOND,
    TIMEFRAMES,
    Bar,
    timeframe_name,
)
from mikrobot_tui.domain.orders import Fill, Position, Side, TradingState
from mikrobot_tui.paper.ab import compare
from mikrobot_tui.paper.execution import BatchQuotes, Execution, Exit, OrderFill, match
from mikrobot_tui.paper.portfolio import AccountState, EngineState, apply, fold, order_payload
from mikrobot_tui.store import commands as cmd
from mikrobot_tui.store.events import EventLog, read_events
from mikrobot_tui.store.queries import engine_status
from mikrobot_tui.store.schema import COLUMNS, open_db
from mikrobot_tui.store.writer import Writer
from mikrobot_tui.trading.breakers import BreakerChange, CircuitBreaker, FeedJudge
from mikrobot_tui.trading.orchestrator import close_order, decide
from mikrobot_tui.trading.strategies import Strategy, build_strategy

SPARK_POINTS = 48
SPARK_STEP_NS = NS_PER_SECOND  # one sparkline point per second of market time: 48 s of trend
COMMAND_TTL_NS = 10 * NS_PER_SECOND  # senders give up after a few seconds; so do we


class Feed(Protocol):
    """What every venue's feed offers the engine (see data/feeds.py)."""

    mode: str  # SIMULATED, REPLAY or LIVE
    name: str
    symbols: list[str]

    def batches(self, stop: asyncio.Event) -> AsyncIterator[np.ndarray]: ...

    def history(self) -> Iterator[np.ndarray]: ...


class EngineBusy(RuntimeError):
    """Another live engine already writes to this database."""


@dataclass(frozen=True, slots=True)
class RunStats:
    ticks_in: int
    ticks_clean: int
    bars: int
    events: int
    rejects: int


def _money(x: float) -> float:
    return round(x, 2)


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
        self.conn = open_db(self.db_path).conn
        self.writer = Writer(self.conn)

        self.catalogue = default_instruments()
        self.symbols: list[str] = list(feed.symbols)
        self.instruments: list[Instrument] = [self.catalogue[s] for s in self.symbols]
        self.sym_index = {s: i for i, s in enumerate(self.symbols)}
        n = len(self.symbols)
        self.quality = QualityMonitor(n, settings.quality)
        self.candles = CandleSet(n, [M1, M5])
        self.latency_ns = int(settings.paper.latency_ms * NS_PER_MS)

        self.state: EngineState = fold(read_events(self.conn))
        self.log = EventLog(self.writer, self.state.last_seq)
        self.market_now = self.state.last_ts

        b = settings.breakers
        self.feed_breaker = CircuitBreaker.from_settings(f"feed:{feed.name}", b)
        self.strategies: dict[str, Strategy] = {}
        self.strategy_breakers: dict[str, CircuitBreaker] = {}
        for acct in settings.accounts:
            self.strategies[acct.name] = build_strategy(acct.strategy, dict(acct.params))
            self.strategy_breakers[acct.name] = CircuitBreaker.from_settings(
                f"strategy:{acct.name}", b
            )
        self._refuse_changed_accounts(settings)
        for breaker in self.breakers:
            saved = self.state.breakers.get(breaker.name)
            if saved is not None:
                breaker.restore(BreakerChange.from_payload(saved))

        self.carry_bid = np.full(n, np.nan)
        self.carry_ask = np.full(n, np.nan)
        self.carry_last = np.full(n, np.nan)
        self.carry_ts = np.zeros((n, 2), dtype=np.int64)
        self.open_mid = np.full(n, np.nan)
        self.spark: list[deque[float]] = [deque(maxlen=SPARK_POINTS) for _ in range(n)]
        self._spark_at = 0  # the market second of the last sparkline point
        self._restore_latest()

        self.feed_judge = FeedJudge(self.feed_breaker)
        self._clean_stream = 0  # running maximum of tradeable tick times
        self._stream = np.zeros(0, dtype=np.int64)  # per tradeable tick of the current batch
        self.ticks_in = 0
        self.ticks_clean = 0
        self.bars_closed = 0
        self.rejects = 0
        self.queue = ConflatingQueue()
        self._started_ts: int | None = None
        self._started = False
        self._warming = False

    def _refuse_changed_accounts(self, settings: Settings) -> None:
        """An account's strategy and parameters are part of its record: an A/B comparison of
        trades made under different parameters would be wrong, so a change needs a new name."""
        for i, acct in enumerate(settings.accounts):
            known = self.state.accounts.get(acct.name)
            if known is None:
                continue
            wanted = (self.strategies[acct.name].name, dict(acct.params))
            if (known.strategy, known.params) != wanted:
                self.conn.close()
                raise ConfigError(
                    f"accounts[{i}] ({acct.name}): {self.db_path} holds this account with "
                    f"{known.strategy} {known.params}, the configuration asks for "
                    f"{wanted[0]} {wanted[1]}; give the account a new name or use a new --db"
                )

    # ---------------------------------------------------------------- lifecycle

    @property
    def breakers(self) -> list[CircuitBreaker]:
        return [self.feed_breaker, *self.strategy_breakers.values()]

    @property
    def trading_state(self) -> TradingState:
        return self.state.trading_state

    def start(self) -> None:
        """Claim the database, open new accounts, cancel orders left from a previous run."""
        now = self.wall.now_ns()
        status = engine_status(self.conn, now)
        if status.running and status.pid != os.getpid():
            raise EngineBusy(
                f"another engine (pid {status.pid}) is running on {self.db_path}; "
                "attach to it with `mikrobot --attach`, or stop it first"
            )
        ts = self._event_ts()
        for acct in self.settings.accounts:
            if acct.name not in self.state.accounts:
                self._emit(
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
        for acct in self.state.accounts.values():
            for order in list(acct.working.values()):
                if order.position_id is not None:
                    continue  # a flatten still to fill: it fills at the first tick now
                self._emit(
                    ts,
                    EventKind.ORDER_CANCELLED,
                    acct.name,
                    {"order_id": order.order_id, "reason": "engine restarted"},
                )
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
                )
                for i in self.instruments
            ],
        )
        self._started, self._started_ts = True, now
        self._warm_up()
        self.write_snapshot()

    def _warm_up(self) -> None:
        """Run the feed's history through quality, candles and strategies without trading."""
        self._warming = True
        try:
            for batch in self.feed.history():
                self.process_batch(batch)
                if self.writer.pending_rows >= Writer.FLUSH_ROWS:
                    self.writer.flush()
        finally:
            self._warming = False

    def stop(self) -> None:
        if self._started:
            self._started = False
            self.write_snapshot()

    def close(self) -> None:
        self.stop()
        self.conn.close()

    # ---------------------------------------------------------------- the corridor

    def process_batch(self, ticks: np.ndarray) -> None:
        """Push one batch of ticks (TICK_DTYPE, any symbols) through the whole pipeline."""
        if len(ticks) == 0:
            return
        self.ticks_in += len(ticks)
        result = self.quality.check(ticks)
        self._store_rejects(result)
        self.feed_judge.note(ticks["ts_event"], result.problem_ts)
        clean = result.clean
        if len(clean) == 0:
            return
        self.ticks_clean += len(clean)
        if self.settings.engine.store_ticks and not self._warming:
            self.writer.append_ticks(clean, self.symbols)
        if result.spikes is not None:
            clean = clean[~result.spikes]  # stored and flagged, but never traded on
            if len(clean) == 0:
                return
        stream = np.maximum.accumulate(clean["ts_event"])
        np.maximum(stream, self._clean_stream, out=stream)
        self._clean_stream, self._stream = int(stream[-1]), stream
        self._judge_feed_until(int(stream[0]))
        quotes = BatchQuotes(clean, self.carry_bid, self.carry_ask)
        bars, closes = self._close_bars(clean)
        # Fills and exits are planned for the rest of the batch and applied up to each bar
        # close; the plan is redone only when a decision adds an order. Positions and orders
        # match independently of each other, so this equals matching segment by segment.
        # While warming up on history nothing is matched: open positions from an earlier
        # session must not be stopped out by a past they were not alive in.
        plan: list[Execution] | None = [] if self._warming else None
        start = 0
        wanted = {s.timeframe for s in self.strategies.values()}
        for k, closed in self._bars_by_close(bars, closes, wanted):
            if plan is None:
                plan = self._plan(quotes, start, len(clean))
            plan = self._apply(plan, quotes, k)
            self._judge_feed_until(int(stream[k]))
            ordered = False
            for bar in closed:
                ordered |= self._on_bar(bar, quotes, k)
            if ordered:
                plan, start = None, k
        if plan is None:
            plan = self._plan(quotes, start, len(clean))
        self._apply(plan, quotes, len(clean))
        self._carry(clean)
        if isinstance(self.clock, ReplayClock):
            self.clock.advance_to(int(clean["ts_event"][-1]))

    def _close_bars(self, clean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Closed bars of every timeframe, ordered by the tick that closed them, M1 before M5."""
        closed = self.candles.update(clean).values()
        bars = np.concatenate([b for b, _ in closed])
        closes = np.concatenate([c for _, c in closed]).astype(np.int64)
        if len(bars) == 0:
            return bars, closes
        order = np.lexsort((bars["sym"], bars["period_ns"], closes))
        bars, closes = bars[order], closes[order]
        self.bars_closed += len(bars)
        names = np.asarray(self.symbols, dtype=object)[bars["sym"]]
        frames = [timeframe_name(p) for p in bars["period_ns"].tolist()]
        self.writer.upsert(
            "bars",
            COLUMNS["bars"],
            zip(
                names.tolist(),
                frames,
                *(bars[c].tolist() for c in COLUMNS["bars"][2:]),
                strict=True,
            ),
        )
        return bars, closes

    def _carry(self, clean: np.ndarray) -> None:
        syms = clean["sym"]
        # index of each symbol's last tick in the batch
        rev = len(syms) - 1 - np.unique(syms[::-1], return_index=True)[1]
        for k in rev.tolist():
            row = clean[k]
            s = int(row["sym"])
            self.carry_bid[s], self.carry_ask[s] = row["bid"], row["ask"]
            self.carry_last[s] = row["last"]
            self.carry_ts[s] = (row["ts_event"], row["ts_recv"])
            if math.isnan(self.open_mid[s]):
                first = int(np.flatnonzero(syms == s)[0])
                self.open_mid[s] = (clean["bid"][first] + clean["ask"][first]) / 2
        self.market_now = max(self.market_now, int(clean["ts_event"].max()))

    # ---------------------------------------------------------------- quality and the feed

    def _store_rejects(self, result: QualityResult) -> None:
        if not result.rejects:
            return
        self.rejects += len(result.rejects)
        self.writer.append(
            "rejects",
            ("ts", "ts_event", "source", "symbol", "reason", "raw"),
            [  # ts: when it arrived, which a replay reproduces exactly
                (
                    r.ts_recv,
                    r.ts_event,
                    self.feed_breaker.name,
                    self._sym_name(r.sym),
                    r.reason,
                    r.raw,
                )
                for r in result.rejects
            ],
        )

    def _sym_name(self, sym: int) -> str:
        return self.symbols[sym] if 0 <= sym < len(self.symbols) else f"#{sym}"

    def _judge_feed_until(self, ts: int) -> None:
        for change in self.feed_judge.until(ts):
            self._breaker_changed(change)

    def _breaker_changed(self, change: BreakerChange | None) -> None:
        if change is None:
            return
        self._emit(change.ts, EventKind.BREAKER_CHANGED, None, change.to_payload())

    # ---------------------------------------------------------------- strategies and orders

    def _bars_by_close(
        self, bars: np.ndarray, closes: np.ndarray, timeframes: set[str]
    ) -> Iterator[tuple[int, list[Bar]]]:
        """(closing tick index, the bars it closed) in tick order, for the timeframes wanted."""
        keep = np.isin(bars["period_ns"], [TIMEFRAMES[t] for t in timeframes if t in TIMEFRAMES])
        bars, closes = bars[keep], closes[keep]
        if len(bars) == 0:
            return
        cuts = np.flatnonzero(np.diff(closes)) + 1
        # BAR_DTYPE is (sym, period_ns, ts_open, open, high, low, close, ticks, volume) and Bar
        # is (symbol, timeframe, ts_open, ...): tuples are far cheaper than numpy records
        rows = bars.tolist()
        names = self.symbols
        for a, b in zip(np.r_[0, cuts].tolist(), np.r_[cuts, len(rows)].tolist(), strict=True):
            closed = [Bar(names[r[0]], timeframe_name(r[1]), *r[2:]) for r in rows[a:b]]
            yield int(closes[a]), closed

    def _on_bar(self, bar: Bar, quotes: BatchQuotes, k: int) -> bool:
        """Let each strategy see the bar; True when an order was submitted."""
        ordered = False
        sym = self.sym_index[bar.symbol]
        now = int(quotes.ticks["ts_event"][k])
        for name, strategy in self.strategies.items():
            if strategy.timeframe != bar.timeframe:
                continue
            breaker = self.strategy_breakers[name]
            self._breaker_changed(breaker.poll(now))  # an OPEN breaker's timeout may be up
            try:
                signal = strategy.on_bar(bar)
            except Exception as exc:  # a strategy's bug must not stop the engine
                self._breaker_changed(breaker.record_failure(now, f"{type(exc).__name__}: {exc}"))
                continue
            self._breaker_changed(breaker.record_success(now))
            if signal is None or self._warming:
                continue
            # stops and targets are placed from the price the order can get (the ask for a
            # buy, the bid for a sell), not from the bar's mid, so a stop-out costs about 1 R
            quote = quotes.quote_at(sym, k)
            if quote is not None:
                entry = quote[1] if signal.side is Side.BUY else quote[0]
                signal = replace(signal, ts=now, price=entry)
            else:
                signal = replace(signal, ts=now)
            acct = self.state.accounts[name]
            blocked = None
            for guard in (self.feed_breaker, breaker):
                allowed, change = guard.allow(now)
                self._breaker_changed(change)
                if not allowed and blocked is None:
                    blocked = guard.name
            inst = self.instruments[sym]
            decision = decide(
                signal,
                account=name,
                order_id=acct.next_order_id(),
                instrument=inst,
                quote_to_account=self._rate(inst.quote, acct.currency, quotes, k),
                equity=self._equity(acct, quotes, k),
                open_positions=len(acct.positions) + len(acct.working),
                risk=self.settings.risk,
                halted=self.state.trading_state is TradingState.HALTED,
                blocked_by=blocked,
                decision_ts=now,
                latency_ns=self.latency_ns,
            )
            if decision.order is None:
                self._emit(
                    now,
                    EventKind.ORDER_REFUSED,
                    name,
                    {
                        "symbol": signal.symbol,
                        "side": str(signal.side),
                        "strategy": signal.strategy,
                        "reason": decision.refusal,
                    },
                )
            else:
                payload = order_payload(decision.order)
                payload["reason"] = signal.reason
                self._emit(now, EventKind.ORDER_SUBMITTED, name, payload)
                ordered = True
        return ordered

    def _plan(self, quotes: BatchQuotes, start: int, stop: int) -> list[Execution]:
        accounts = self.state.accounts.values()
        # orders and positions on symbols this feed does not carry wait for one that does
        known = self.sym_index
        working = [o for a in accounts for o in a.working.values() if o.symbol in known]
        positions = [p for a in accounts for p in a.positions.values() if p.symbol in known]
        if not working and not positions:
            return []
        return match(quotes, start, stop, working, positions, self.sym_index)

    def _apply(self, plan: list[Execution], quotes: BatchQuotes, stop: int) -> list[Execution]:
        """Turn the planned executions before tick `stop` into events; return the rest."""
        done = 0
        for ex in plan:
            if ex.idx >= stop:
                break
            done += 1
            self._judge_feed_until(int(self._stream[ex.idx]))
            if isinstance(ex, OrderFill):
                self._on_fill(ex, quotes)
            elif isinstance(ex, Exit):
                self._on_exit(ex, quotes)
            else:
                payload = {"order_id": ex.order.order_id, "reason": ex.reason}
                ts = int(quotes.ticks["ts_event"][ex.idx])
                self._emit(ts, EventKind.ORDER_CANCELLED, ex.order.account, payload)
        return plan[done:]

    def _on_fill(self, fill: OrderFill, quotes: BatchQuotes) -> None:
        order = fill.order
        acct = self.state.accounts[order.account]
        inst = self.catalogue[order.symbol]
        rate = self._rate(inst.quote, acct.currency, quotes, fill.idx)
        if rate is None:
            payload = {"order_id": order.order_id, "reason": "no conversion rate at fill"}
            self._emit(fill.ts, EventKind.ORDER_CANCELLED, acct.name, payload)
            return
        price = inst.round_price(fill.price)
        commission = _money(inst.commission(order.lots, price, rate))
        equity = self._equity(acct, quotes, fill.idx)
        risk = 0.0
        if order.stop_loss is not None:
            risk = abs(price - order.stop_loss) * inst.value_per_price_unit(order.lots) * rate
        done = Fill(
            order.order_id,
            acct.name,
            order.symbol,
            order.side,
            order.lots,
            price,
            commission,
            fill.ts,
        )
        self._emit(fill.ts, EventKind.ORDER_FILLED, acct.name, done.payload())
        self._emit(
            fill.ts,
            EventKind.POSITION_OPENED,
            acct.name,
            {
                "position_id": order.order_id,
                "order_id": order.order_id,
                "symbol": order.symbol,
                "side": str(order.side),
                "lots": order.lots,
                "entry_price": price,
                "stop_loss": order.stop_loss,
                "take_profit": order.take_profit,
                "commission": commission,
                "risk_amount": _money(risk),
                "equity_at_open": _money(equity),
                "strategy": order.strategy,
            },
        )

    def _on_exit(self, ex: Exit, quotes: BatchQuotes) -> None:
        acct = next(a for a in self.state.accounts.values() if ex.position_id in a.positions)
        pos = acct.positions[ex.position_id]
        inst = self.catalogue[pos.symbol]
        rate = self._rate(inst.quote, acct.currency, quotes, ex.idx)
        if rate is None:  # cannot happen once the position's own symbol has quoted
            rate = 1.0
        price = inst.round_price(ex.price)
        move = (price - pos.entry_price) * pos.side.sign
        pnl = _money(move * inst.value_per_price_unit(pos.lots) * rate)
        commission = _money(inst.commission(pos.lots, price, rate))
        net = pnl - commission - pos.entry_commission
        if ex.order is not None:
            o = ex.order
            done = Fill(o.order_id, acct.name, o.symbol, o.side, pos.lots, price, commission, ex.ts)
            self._emit(ex.ts, EventKind.ORDER_FILLED, acct.name, done.payload())
        payload = {
            "position_id": pos.position_id,
            "exit_price": price,
            "reason": ex.reason,
            "pnl": pnl,
            "commission": commission,
            "rate": rate,
            "return_pct": net / pos.equity_at_open * 100 if pos.equity_at_open else 0.0,
            "r_multiple": net / pos.risk_amount if pos.risk_amount > 0 else None,
        }
        self._emit(ex.ts, EventKind.POSITION_CLOSED, acct.name, payload)
        trade = acct.trades[-1]  # ClosedTrade's fields are the table's columns
        row = tuple(getattr(trade, column) for column in COLUMNS["trades"])
        self.writer.upsert("trades", COLUMNS["trades"], [row])

    # ---------------------------------------------------------------- money

    def _mid_fn(self, quotes: BatchQuotes | None, k: int) -> Callable[[str], float | None]:
        def mid_of(symbol: str) -> float | None:
            s = self.sym_index.get(symbol)
            if s is None:
                return None
            if quotes is not None:
                return quotes.mid_at(s, k)
            bid, ask = self.carry_bid[s], self.carry_ask[s]
            return None if math.isnan(bid) else float((bid + ask) / 2)

        return mid_of

    def _rate(self, src: str, dst: str, quotes: BatchQuotes | None, k: int = 0) -> float | None:
        equivalents = self.settings.engine.currency_equivalents
        return conversion_rate(src, dst, self.instruments, self._mid_fn(quotes, k), equivalents)

    def _mark(self, symbol: str, side: Side, quotes: BatchQuotes | None, k: int) -> float | None:
        s = self.sym_index.get(symbol)
        if s is None:  # a position on a symbol this feed does not carry: no mark
            return None
        if quotes is not None:
            q = quotes.quote_at(s, k)
        else:
            q = None if math.isnan(self.carry_bid[s]) else (self.carry_bid[s], self.carry_ask[s])
        if q is None:
            return None
        return float(q[0] if side is Side.BUY else q[1])  # what closing would get

    def _open_pnl(
        self, acct: AccountState, pos: Position, quotes: BatchQuotes | None, k: int
    ) -> tuple[float | None, float]:
        """(mark, unrealized P&L in the account currency); 0 while no price or rate is known."""
        inst = self.catalogue[pos.symbol]
        mark = self._mark(pos.symbol, pos.side, quotes, k)
        rate = self._rate(inst.quote, acct.currency, quotes, k)
        if mark is None or rate is None:
            return mark, 0.0
        move = (mark - pos.entry_price) * pos.side.sign
        return mark, move * inst.value_per_price_unit(pos.lots) * rate

    def _unrealized(self, acct: AccountState, quotes: BatchQuotes | None, k: int) -> float:
        return sum(self._open_pnl(acct, p, quotes, k)[1] for p in acct.positions.values())

    def _equity(self, acct: AccountState, quotes: BatchQuotes | None, k: int) -> float:
        return acct.balance + self._unrealized(acct, quotes, k)

    # ---------------------------------------------------------------- events

    def _event_ts(self) -> int:
        return self.market_now or self.clock.now_ns()

    def _emit(self, ts: int, kind: EventKind, account: str | None, payload: dict[str, Any]):
        event = self.log.append(ts, kind, account, payload)
        apply(self.state, event)
        return event

    # ---------------------------------------------------------------- operator commands

    def halt(self, source: str = "operator") -> str:
        if self.state.trading_state is TradingState.HALTED:
            return "already halted"
        ts = self._event_ts()
        self._emit(ts, EventKind.HALTED, None, {"source": source})
        cancelled = self._cancel_working(ts, "halted")
        return f"halted: no new orders; {cancelled} working order(s) cancelled"

    def resume(self, source: str = "operator") -> str:
        if self.state.trading_state is TradingState.ACTIVE:
            return "already active"
        self._emit(self._event_ts(), EventKind.RESUMED, None, {"source": source})
        return "resumed: trading is active"

    def flatten(self, source: str = "operator") -> str:
        ts = self._event_ts()
        positions = [p for a in self.state.accounts.values() for p in a.positions.values()]
        self._emit(ts, EventKind.FLATTEN, None, {"source": source, "positions": len(positions)})
        cancelled = self._cancel_working(ts, "flatten")
        for pos in positions:
            acct = self.state.accounts[pos.account]
            s = self.sym_index.get(pos.symbol)
            # due after the symbol's own last tick: market time may have restarted lower
            last = int(self.carry_ts[s][0]) if s is not None and self.carry_ts[s][0] else ts
            last = max(last, pos.ts_opened)  # a position is never closed before it opened
            order = close_order(
                order_id=acct.next_order_id(),
                account=acct.name,
                position_id=pos.position_id,
                symbol=pos.symbol,
                side=pos.side,
                lots=pos.lots,
                ts=last,
                latency_ns=self.latency_ns,
                reason="flatten",
            )
            self._emit(ts, EventKind.ORDER_SUBMITTED, acct.name, order_payload(order))
        return (
            f"flatten: closing {len(positions)} position(s) at market; "
            f"{cancelled} working order(s) cancelled"
        )

    def _cancel_working(self, ts: int, reason: str) -> int:
        n = 0
        for acct in self.state.accounts.values():
            for order in list(acct.working.values()):
                if order.position_id is not None:  # keep orders that close positions
                    continue
                payload = {"order_id": order.order_id, "reason": reason}
                self._emit(ts, EventKind.ORDER_CANCELLED, acct.name, payload)
                n += 1
        return n

    def handle_commands(self) -> int:
        """Carry out pending commands; their events are stored before the sender is answered."""
        pending = cmd.pending(self.conn)
        if not pending:
            return 0
        now = self.wall.now_ns()
        if any(row.ts < now - COMMAND_TTL_NS for row in pending):
            cmd.expire_older_than(self.conn, now - COMMAND_TTL_NS, now)
            pending = cmd.pending(self.conn)
        results = []
        for row in pending:
            source = str(row.args.get("source", "operator"))
            try:
                action = {
                    cmd.Command.HALT: self.halt,
                    cmd.Command.RESUME: self.resume,
                    cmd.Command.FLATTEN: self.flatten,
                }[cmd.Command(row.command)]
                results.append((row.id, "done", action(source)))
            except (KeyError, ValueError):
                results.append((row.id, "failed", f"unknown command {row.command!r}"))
        self.write_snapshot()
        now = self.wall.now_ns()
        for command_id, status, text in results:
            self.conn.execute(
                "UPDATE commands SET status = ?, result = ?, done_ts = ? WHERE id = ?",
                [status, text, now, command_id],
            )
        return len(results)

    # ---------------------------------------------------------------- what the faces read

    def write_snapshot(self) -> None:
        """Refresh the read-side tables (latest, quality, breakers, accounts, positions, ab).

        Stamped with market time: a simulated market running faster than the wall clock
        keeps its quality windows in its own time.
        """
        now = self.market_now or self.clock.now_ns()
        sample = now // SPARK_STEP_NS > self._spark_at
        if sample:
            self._spark_at = now // SPARK_STEP_NS
        latest = []
        for s, symbol in enumerate(self.symbols):
            if math.isnan(self.carry_bid[s]):
                continue
            mid = float((self.carry_bid[s] + self.carry_ask[s]) / 2)
            if sample or not self.spark[s]:
                self.spark[s].append(mid)
            last = None if math.isnan(self.carry_last[s]) else float(self.carry_last[s])
            latest.append(
                (
                    symbol,
                    int(self.carry_ts[s][0]),
                    int(self.carry_ts[s][1]),
                    float(self.carry_bid[s]),
                    float(self.carry_ask[s]),
                    last,
                    float(self.open_mid[s]),
                    json.dumps([round(x, 8) for x in self.spark[s]]),
                )
            )
        self.writer.upsert("latest", COLUMNS["latest"], latest)
        self.writer.upsert(
            "quality",
            COLUMNS["quality"],
            [
                (
                    self._sym_name(q.sym),
                    now,
                    q.score,
                    q.ticks,
                    q.rejects,
                    q.spikes,
                    q.gaps,
                    q.latency_ms,
                    q.last_problem,
                    q.last_problem_ts,
                )
                for q in self.quality.scores(now)
            ],
        )
        self.writer.replace_all(
            "breakers",
            COLUMNS["breakers"],
            [
                (
                    b.name,
                    str(b.state),
                    b.failures,
                    b.successes,
                    b.opened_ts,
                    b.retry_ts,
                    now,
                )
                for b in self.breakers
            ],
        )
        accounts, positions = [], []
        for acct in self.state.accounts.values():
            unrealized = 0.0
            for pos in acct.positions.values():
                mark, upnl = self._open_pnl(acct, pos, None, 0)
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
                        _money(upnl),
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
                    _money(acct.balance),
                    _money(acct.balance + unrealized),
                    _money(acct.realized_pnl),
                    _money(unrealized),
                    len(acct.positions),
                    len(acct.trades),
                    now,
                )
            )
        self.writer.replace_all(
            "accounts",
            COLUMNS["accounts"],
            accounts,
        )
        self.writer.replace_all(
            "positions",
            COLUMNS["positions"],
            positions,
        )
        self.writer.replace_all("ab", COLUMNS["ab"], self._ab_rows(now))
        self._write_engine_row()
        self.writer.flush()

    def _ab_rows(self, now: int) -> list[tuple[Any, ...]]:
        a_name, b_name = self.settings.ab.a, self.settings.ab.b
        if a_name not in self.state.accounts or b_name not in self.state.accounts:
            return []
        a, b = self.state.accounts[a_name], self.state.accounts[b_name]
        result = compare([t.return_pct for t in a.trades], [t.return_pct for t in b.trades])
        rows = []
        for variant, acct, stats in (("A", a, result.a), ("B", b, result.b)):
            rows.append(
                (
                    variant,
                    acct.name,
                    " ".join(f"{k}={v:g}" for k, v in acct.params.items()) or acct.strategy,
                    stats.trades,
                    stats.wins,
                    stats.win_rate,
                    stats.mean_return,
                    stats.std_return,
                    result.t_stat,
                    result.p_value,
                    result.test if result.p_value is not None else f"n/a: {result.reason}",
                    now,
                )
            )
        return rows

    def _write_engine_row(self) -> None:
        now = self.wall.now_ns()
        self.writer.upsert(
            "engine",
            COLUMNS["engine"],
            [
                (
                    1,
                    os.getpid(),
                    socket.gethostname(),
                    self.feed.mode,
                    self.feed.name,
                    str(self.state.trading_state),
                    int(self._started),
                    self._started_ts,
                    now,
                    __version__,
                )
            ],
        )

    def _restore_latest(self) -> None:
        for symbol, bid, ask, open_mid in self.conn.execute(
            "SELECT symbol, bid, ask, open_mid FROM latest"
        ):
            s = self.sym_index.get(symbol)
            if s is not None:
                self.carry_bid[s], self.carry_ask[s], self.open_mid[s] = bid, ask, open_mid

    # ---------------------------------------------------------------- running

    def run_batches(self, batches: Iterator[np.ndarray]) -> RunStats:
        """Replay: process batches as fast as they come, flushing by size. No event loop."""
        seq0 = self.log.last_seq
        if not self._started:
            self.start()
        for batch in batches:
            self.process_batch(batch)
            if self.writer.pending_rows >= Writer.FLUSH_ROWS:
                self.writer.flush()
        self.write_snapshot()
        return RunStats(
            self.ticks_in,
            self.ticks_clean,
            self.bars_closed,
            self.log.last_seq - seq0,
            self.rejects,
        )

    async def run(self, stop: asyncio.Event, duration_s: float | None = None) -> None:
        """Live: consume the feed until `stop` is set (or the duration passes)."""
        if not self._started:
            self.start()
        consumer = asyncio.create_task(self._consume(stop), name="engine-feed")
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        # every 50 ms the writer flushes; commands and snapshots come at their own periods
        due = {"commands": t0, "snapshot": t0}
        periods = {
            "commands": self.settings.engine.poll_ms / 1000,
            "snapshot": 1.0 / self.settings.engine.snapshot_hz,
        }
        try:
            while not stop.is_set():
                now = loop.time()
                if duration_s is not None and now - t0 >= duration_s:
                    break
                if consumer.done():
                    consumer.result()  # re-raise a feed failure
                    break
                if now >= due["commands"]:
                    self.handle_commands()
                if now >= due["snapshot"]:
                    self.write_snapshot()  # flushes too
                else:
                    self.writer.flush()
                for what, at in due.items():
                    if now >= at:
                        due[what] = max(at + periods[what], now)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=Writer.FLUSH_SECONDS)
        finally:
            stop.set()
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer
            self.stop()

    async def _consume(self, stop: asyncio.Event) -> None:
        if self.feed.mode == "REPLAY":  # a replay must see every tick: it waits for us
            async for batch in self.feed.batches(stop):
                self.process_batch(batch)
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
                    self.process_batch(getter.result())
                else:
                    getter.cancel()
            rest = self.queue.get_nowait()
            if rest is not None:
                self.process_batch(rest)
            if producer.done():
                producer.result()  # a feed that failed says why
        finally:
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await producer

    async def _produce(self, stop: asyncio.Event) -> None:
        async for batch in self.feed.batches(stop):
            self.queue.put_nowait(batch)


def build_engine(settings: Settings, clock: Clock | None = None) -> Engine:
    """The engine on the feed config.toml names, with the clock that feed needs.

    A simulated market restarted on an existing database continues from its last prices.
    Strategy parameters that do not fit the strategy are a configuration error.
    """
    from mikrobot_tui.data.feeds import ReplayFeed, SimFeed
    from mikrobot_tui.data.sim import SimMarket

    for i, acct in enumerate(settings.accounts):
        try:
            build_strategy(acct.strategy, dict(acct.params))
        except ValueError as exc:
            raise ConfigError(f"accounts[{i}] ({acct.name}).params: {exc}") from None
    if settings.engine.feed == "replay":
        assert settings.replay.file is not None  # Settings refuses a replay feed without one
        if not settings.replay.file.exists():
            raise ConfigError(f"replay.file: {settings.replay.file} does not exist")
        try:
            feed: Feed = ReplayFeed(
                settings.replay.file, settings.engine.batch_max, speed=settings.replay.speed
            )
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise ConfigError(
                f"replay.file: {settings.replay.file} cannot be read: {exc}"
            ) from None
        first = feed.first_ts()
        last = _last_event_ts(Path(settings.engine.db))
        if first is not None and first < last:
            raise ConfigError(
                f"replay.file: its first tick ({_iso(first)}) is before the last event in "
                f"{settings.engine.db} ({_iso(last)}); replay into a new database with --db"
            )
        return Engine(settings, feed=feed, clock=clock or ReplayClock())
    clock = clock or LiveClock()
    catalogue = default_instruments()
    instruments = [catalogue[s] for s in settings.sim.symbols]
    start_mids = _last_mids(Path(settings.engine.db), settings.sim.symbols)
    history_ns = int(settings.sim.warmup_minutes * 60 * NS_PER_SECOND)
    # a sim that ran faster than the wall clock continues from its own time, never before it
    now = max(clock.now_ns(), _last_event_ts(Path(settings.engine.db)))
    market = SimMarket(instruments, settings.sim, now - history_ns, start_mids=start_mids)
    feed = SimFeed(market, settings.sim.speed, history_ns=history_ns)
    return Engine(settings, feed=feed, clock=clock)


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts / NS_PER_SECOND, tz=UTC).isoformat(timespec="seconds")


def _last_event_ts(db_path: Path) -> int:
    if not db_path.exists():
        return 0
    conn = open_db(db_path).conn
    try:
        return conn.execute("SELECT COALESCE(MAX(ts), 0) FROM events").fetchone()[0]
    finally:
        conn.close()


def _last_mids(db_path: Path, symbols: list[str]) -> dict[str, float]:
    if not db_path.exists():
        return {}
    conn = open_db(db_path).conn
    try:
        rows = conn.execute("SELECT symbol, (bid + ask) / 2 FROM latest").fetchall()
    finally:
        conn.close()
    return {s: m for s, m in rows if s in symbols and m is not None and m > 0}
