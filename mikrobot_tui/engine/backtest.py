"""A backtest: one account, one strategy, the ticks of a file, through the real engine.

The file is any tick format the importers read (data/importers: MT5 tick exports, Binance
trades and aggTrades dumps, the generic CSV) or a replay archive (.npz, data/feeds/replay.py).
Its ticks are replayed on the replay clock as fast as they go (engine/runner.py `Runner.replay`):
quality checks, candles, the strategy, the orchestrator, risk and the paper venue are the
engine's own, so a backtest and a paper run on the same ticks decide the same. The event log
lands in the database the settings name; the report is paper/report.py's.

What a backtest changes in the settings (`overrides`): the one account (strategy, params,
balance, currency, leverage), ticks not stored (bars are), a fixed order latency when asked,
and, when asked, no costs (commission, slippage, market impact and swap zero) or no spike
filter (`trust_data`: spike_sigma so high that no return is a spike; the validity checks stay).

Timing: `load_s` reads the file and builds the engine; `elapsed_s` is the replay itself (every
tick through the corridor and every event written), so `ticks_per_s` is the pipeline's speed.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mikrobot_tui.clock import ReplayClock
from mikrobot_tui.config import Settings
from mikrobot_tui.data.feeds import ReplayFeed
from mikrobot_tui.data.feeds.replay import load_ticks
from mikrobot_tui.domain.events import Event, EventKind
from mikrobot_tui.domain.instruments import default_instruments
from mikrobot_tui.engine import Engine
from mikrobot_tui.engine.runner import Runner
from mikrobot_tui.paper.report import Report, account_report
from mikrobot_tui.store.queries import read_only

ACCOUNT = "backtest"
# |log return| <= ln(quality.max_price_jump) <= ln(1e6) ~ 13.8 and the spike test floors the
# volatility at 1e-6, so no z reaches 1.4e7: at 1e12 sigmas no return is ever a spike
NO_SPIKES_SIGMA = 1e12


class BadInput(ValueError):
    """What the user gave cannot be backtested: one line saying why."""


@dataclass(frozen=True)
class Loaded:
    ticks: np.ndarray  # TICK_DTYPE, in event-time order
    symbols: list[str]  # `sym` indexes this list
    format: str  # "replay" or the importer's format
    rejects: int  # rows the importer turned down


@dataclass(frozen=True)
class Result:
    ticks: int  # ticks in the file (as fed to the engine)
    ticks_clean: int
    rejects: int  # ticks the quality checks rejected
    bars: int
    fills: int
    trades: int  # closed trades
    open_positions: int
    load_s: float
    elapsed_s: float
    initial_balance: float
    final_equity: float  # open positions marked at the last bid (long) or ask (short)
    report: Report

    @property
    def ticks_per_s(self) -> float | None:
        return self.ticks / self.elapsed_s if self.elapsed_s > 0 else None

    @property
    def net_pnl(self) -> float:
        return self.final_equity - self.initial_balance

    def to_json(self) -> dict[str, Any]:
        return {
            "ticks": self.ticks,
            "ticks_clean": self.ticks_clean,
            "rejects": self.rejects,
            "bars": self.bars,
            "fills": self.fills,
            "trades": self.trades,
            "open_positions": self.open_positions,
            "load_s": round(self.load_s, 6),
            "elapsed_s": round(self.elapsed_s, 6),
            "ticks_per_s": None if self.ticks_per_s is None else round(self.ticks_per_s, 1),
            "initial_balance": self.initial_balance,
            "final_equity": self.final_equity,
            "net_pnl": self.net_pnl,
            "currency": self.report.currency,
            "metrics": self.report.metrics,
            "reasons": self.report.reasons,
        }


def load(
    path: Path,
    symbol: str | None = None,
    parse: Callable[[Path, str | None], Any] | None = None,
) -> Loaded:
    """The ticks of `path`: a replay archive (.npz; `symbol` keeps that symbol's ticks only)
    or any tick file the importers read (`parse(path, symbol)`, data/importers `parse_file`
    by default; `symbol` names an MT5 file's symbol). BadInput when the file is missing,
    unreadable, holds bars or no good tick, or names a symbol outside the catalogue."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path}: no such file")
    if path.suffix.lower() == ".npz":
        try:
            ticks, symbols = load_ticks(path)
        except ValueError as exc:
            raise BadInput(str(exc)) from None
        if symbol is not None:
            if symbol not in symbols:
                raise BadInput(f"--symbol {symbol}: not in {path} (it holds {', '.join(symbols)})")
            ticks = ticks[ticks["sym"] == symbols.index(symbol)].copy()
            ticks["sym"] = 0
            symbols = [symbol]
        loaded = Loaded(np.array(ticks), symbols, "replay", 0)
    else:
        loaded = _parsed(path, symbol, parse)
    if len(loaded.ticks) == 0:
        raise BadInput(f"{path}: no tick to backtest")
    known = default_instruments()
    unknown = [s for s in loaded.symbols if s not in known]
    if unknown:
        raise BadInput(
            f"{path}: unknown symbol(s) {', '.join(unknown)}; the engine trades the "
            f"catalogue's: {', '.join(sorted(known))}"
        )
    ts = loaded.ticks["ts_event"]
    if len(ts) > 1 and bool((ts[1:] < ts[:-1]).any()):  # per symbol in order, not across
        order = np.argsort(ts, kind="stable")
        loaded = Loaded(loaded.ticks[order], loaded.symbols, loaded.format, loaded.rejects)
    return loaded


def _parsed(path: Path, symbol: str | None, parse: Callable[..., Any] | None) -> Loaded:
    from mikrobot_tui.data.importers import UnreadableFile, parse_file

    try:
        parsed = parse(path, symbol) if parse is not None else parse_file(path, symbol=symbol)
    except UnreadableFile as exc:
        raise BadInput(f"cannot read: {exc}") from None
    if parsed.ticks is None:
        raise BadInput(
            f"{path}: {parsed.format} holds bars; a backtest needs ticks (an MT5 tick export, "
            "Binance trades or aggTrades, a ts,symbol,bid,ask CSV or a replay .npz)"
        )
    if parsed.good == 0:
        raise BadInput(f"{path}: no good row in {parsed.rows} data line(s)")
    return Loaded(parsed.ticks, list(parsed.symbols), parsed.format, len(parsed.rejects))


def overrides(
    db: Path,
    replay_file: Path,
    strategy: str,
    params: dict[str, float],
    symbols: list[str],
    *,
    balance: float | None = None,
    currency: str | None = None,
    leverage: float | None = None,
    latency_ms: float | None = None,
    no_costs: bool = False,
    trust_data: bool = False,
) -> dict[str, Any]:
    """The settings a backtest lays over config.toml's (load_settings' `overrides`);
    `replay_file` names the ticks `run` replays (nothing is written there)."""
    account: dict[str, Any] = {"name": ACCOUNT, "strategy": strategy, "params": dict(params)}
    for key, value in (("balance", balance), ("currency", currency), ("leverage", leverage)):
        if value is not None:
            account[key] = value
    out: dict[str, Any] = {
        "engine": {"db": Path(db), "feed": "replay", "store_ticks": False},
        "replay": {"file": Path(replay_file), "speed": 0.0},
        "accounts": [account],
        "experiments": [],
        "ab": {"a": ACCOUNT, "b": ACCOUNT},  # one account: nothing to compare
    }
    paper: dict[str, Any] = {}
    if latency_ms is not None:
        paper |= {"latency_ms": latency_ms, "latency_model": "fixed"}
    if no_costs:
        account |= {"commission_per_lot": 0.0, "maker_bps": 0.0, "taker_bps": 0.0}
        paper |= {"slippage_spread": 0.0, "slippage_volatility": 0.0, "impact_k": 0.0}
        paper["swap"] = {s: {"long": 0.0, "short": 0.0} for s in symbols}
    if paper:
        out["paper"] = paper
    if trust_data:
        out["quality"] = {"spike_sigma": NO_SPIKES_SIGMA}
    return out


def fresh_db_problem(db: Path) -> str | None:
    """Why `db` cannot take a backtest: it holds another run's events (the accounts and
    orders of that run would carry on into this one). None for a new or empty file."""
    db = Path(db)
    if not db.exists() or db.stat().st_size == 0:
        return None
    try:
        conn = read_only(str(db))
        try:
            row = conn.execute("SELECT COUNT(*) FROM events").fetchone()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        if "no such table" in str(exc):
            return None
        return f"{db} cannot be used as the database ({exc})"
    if row and row[0]:
        return (
            f"{db} already holds {row[0]} event(s) of another run; a backtest starts from an "
            "empty database: give a new file with --db, or leave --db out for a temporary one"
        )
    return None


def run(
    settings: Settings,
    loaded: Loaded,
    batch_size: int | None = None,
    progress: Callable[[int], None] | None = None,
    load_s: float = 0.0,
    prepare: Callable[[Engine], None] | None = None,
) -> Result:
    """Replay `loaded` through an engine built from `settings` (see `overrides`), as fast as
    it goes, in batches of `batch_size` ticks (default engine.batch_max); `progress(n)` after
    each batch; `prepare(engine)` once built, before the first tick (a dataset builder hands
    the strategy its sink there). The feed replays the loaded ticks as they are in memory:
    replay.file only names them (a checkpoint records it). The engine is closed on return."""
    t0 = time.perf_counter()
    file = settings.replay.file
    assert file is not None, "overrides() names the replay file"
    feed = ReplayFeed(
        file,
        batch_size=batch_size or settings.engine.batch_max,
        loaded=(loaded.ticks, loaded.symbols),
    )
    return _replay(settings, feed, progress, load_s + time.perf_counter() - t0, prepare)


def run_file(
    settings: Settings,
    batch_size: int | None = None,
    progress: Callable[[int], None] | None = None,
    load_s: float = 0.0,
    prepare: Callable[[Engine], None] | None = None,
) -> Result:
    """`run` over the ticks replay.file already holds: a sweep's runs share one file."""
    t0 = time.perf_counter()
    file = settings.replay.file
    assert file is not None, "overrides() names the replay file"
    feed = ReplayFeed(file, batch_size=batch_size or settings.engine.batch_max)
    return _replay(settings, feed, progress, load_s + time.perf_counter() - t0, prepare)


def _replay(
    settings: Settings,
    feed: ReplayFeed,
    progress: Callable[[int], None] | None,
    load_s: float,
    prepare: Callable[[Engine], None] | None,
) -> Result:
    t0 = time.perf_counter()
    engine = Engine(settings, feed=feed, clock=ReplayClock())
    fills = 0

    def count(event: Event) -> None:
        nonlocal fills
        if event.kind is EventKind.ORDER_FILLED and event.account == ACCOUNT:
            fills += 1

    try:
        engine.ledger.watchers.append(count)
        if prepare is not None:
            prepare(engine)
        load_s += time.perf_counter() - t0
        t1 = time.perf_counter()
        stats = Runner(engine).replay(_told(feed.iter_batches(), progress))
        engine.stop()
        engine.writer.flush()
        elapsed = time.perf_counter() - t1
        acct = engine.ledger.state.accounts[ACCOUNT]
        final_equity = engine.ledger.equity(acct, None, 0)
        initial, trades = acct.initial_balance, len(acct.trades)
        open_positions = len(acct.positions)
    finally:
        engine.close()
    conn = read_only(str(settings.engine.db))
    try:
        report = account_report(conn, ACCOUNT)
    finally:
        conn.close()
    return Result(
        ticks=stats.ticks_in,
        ticks_clean=stats.ticks_clean,
        rejects=stats.rejects,
        bars=stats.bars,
        fills=fills,
        trades=trades,
        open_positions=open_positions,
        load_s=load_s,
        elapsed_s=elapsed,
        initial_balance=initial,
        final_equity=final_equity,
        report=report,
    )


def _told(
    batches: Iterator[np.ndarray], progress: Callable[[int], None] | None
) -> Iterator[np.ndarray]:
    for batch in batches:
        yield batch
        if progress is not None:
            progress(len(batch))
