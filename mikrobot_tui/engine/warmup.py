"""What the engine knows before its first live tick, without trading on any of it.

On a database that already holds market data (a restart), the past comes from the database
and is never regenerated: stored bars go to the strategies (the newest few hundred per symbol
and timeframe, oldest first) and to the decisions' bar history, the bars still open at the last
stop are rebuilt for the candle builders, and the newest stored bar of each symbol and
timeframe becomes a floor: no bar at or before it is written or traded again (invariant 8).
An open bar longer than a minute (up to a day) is rebuilt from the M1 bars stored since it
opened, then every open bar from the stored ticks of the open minute: an H1 bar open at the
stop is whole even when ticks are not kept. H4 and D1 bars open on the symbol's trading day
(domain/bar_clock.py), as the corridor builds them. On a new database the feed's own history (the
simulated market generates an hour) runs through the whole corridor with trading off:
strategies learn, nothing is matched, ticks are not stored.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable, Iterable

import numpy as np

from mikrobot_tui.domain.bar_clock import bar_open
from mikrobot_tui.domain.market import M1, TICK_DTYPE, TIMEFRAMES, Bar, empty_bars
from mikrobot_tui.engine.corridor import Corridor
from mikrobot_tui.engine.decisions import wanted
from mikrobot_tui.store.tickstore import newest_tick_ts, read_ticks
from mikrobot_tui.store.writer import Writer
from mikrobot_tui.trading.strategies import Strategy

DEFAULT_WARMUP_BARS = 100


def warm_from_store(
    conn: sqlite3.Connection, corridor: Corridor, strategies: Iterable[Strategy]
) -> int:
    """Warm the corridor from what the database holds; the number of bars replayed."""
    symbols = corridor.symbols
    floors = conn.execute(
        f"SELECT symbol, timeframe, MAX(ts_open) FROM bars WHERE symbol IN "
        f"({', '.join('?' * len(symbols))}) GROUP BY symbol, timeframe",
        symbols,
    ).fetchall()
    if not floors:
        return 0
    newest = {(s, tf): ts for s, tf, ts in floors}
    corridor.set_bar_floors(newest)
    strategies = list(strategies)
    history = corridor.history
    bars = _stored_bars(conn, symbols, strategies, history.capacity)
    for bar, learn in bars:
        history.push(bar)
        if not learn:
            continue
        for strategy in strategies:
            if bar.timeframe not in wanted(strategy):
                continue
            try:
                strategy.on_bar(bar)  # learning only: a signal from the past is not traded
            except Exception:
                continue
    corridor.seed_candles(*_open_bars(conn, symbols, newest, corridor.ny_close))
    return sum(learn for _, learn in bars)


def warm_from_history(
    corridor: Corridor,
    history: Iterable[np.ndarray],
    writer: Writer,
    should_stop: Callable[[], bool] = lambda: False,
) -> None:
    """Run a feed's generated history through the corridor with trading off; `should_stop`
    (a signal during start-up) ends it early, leaving the strategies colder."""
    corridor.warming = True
    try:
        for batch in history:
            if should_stop():
                break
            corridor.process(batch)
            if writer.pending_rows >= Writer.FLUSH_ROWS:
                writer.flush()
    finally:
        corridor.warming = False


def _stored_bars(
    conn: sqlite3.Connection, symbols: list[str], strategies: list[Strategy], keep: int
) -> list[tuple[Bar, bool]]:
    """The newest `keep` bars of every symbol and timeframe (the bar history's), and those
    each strategy needs, in closing order; with each, whether a strategy learns from it."""
    out: list[tuple[Bar, bool]] = []
    for timeframe in TIMEFRAMES:
        users = [s for s in strategies if timeframe in wanted(s)]
        learn = 2 * max(_bars_needed(s, timeframe) for s in users) + 10 if users else 0
        for symbol in symbols:
            rows = conn.execute(
                "SELECT symbol, timeframe, ts_open, open, high, low, close, ticks, volume "
                "FROM bars WHERE symbol = ? AND timeframe = ? ORDER BY ts_open DESC LIMIT ?",
                [symbol, timeframe, max(keep, learn)],
            ).fetchall()
            out.extend((Bar(*r), i < learn) for i, r in reversed(list(enumerate(rows))))
    out.sort(key=lambda item: _closing(item[0]))
    return out


def _closing(bar: Bar) -> tuple[int, int, str]:
    """Bars in the order the corridor closed them: by time, shorter timeframes first."""
    period = TIMEFRAMES[bar.timeframe]
    return bar.ts_open + period, period, bar.symbol


def _bars_needed(strategy: Strategy, timeframe: str) -> int:
    """Bars of `timeframe` covering the strategy's warm-up, counted in its main timeframe."""
    main = TIMEFRAMES.get(strategy.timeframe, TIMEFRAMES[timeframe])
    bars = int(getattr(strategy, "warmup_bars", DEFAULT_WARMUP_BARS))
    return max(1, -(-bars * main // TIMEFRAMES[timeframe]))


def _open_bars(
    conn: sqlite3.Connection,
    symbols: list[str],
    newest: dict[tuple[str, str], int],
    ny_close: list[bool],
) -> tuple[np.ndarray, np.ndarray]:
    """The bars that were open when the last engine stopped, as (partial bars of M5 and
    longer, built from the M1 bars stored since each opened; the stored ticks of the open
    minute, which continue every open bar)."""
    longest = max(TIMEFRAMES.values())
    seeds: list[tuple] = []
    parts = []
    for s, symbol in enumerate(symbols):
        last_m1 = newest.get((symbol, "M1"))
        if last_m1 is None:  # no bar closed yet: every open bar is in the stored ticks
            last = newest_tick_ts(conn, symbol)
            if last is None:
                continue
            since = bar_open(last, longest, ny_close[s])
        else:
            since = last_m1 + M1
            seeds.extend(_seeds(conn, s, symbol, last_m1, newest, ny_close[s]))
        parts.append(read_ticks(conn, symbol, since, None, sym=s))
    bars = empty_bars(len(seeds))
    for i, seed in enumerate(seeds):
        bars[i] = seed
    if not parts:
        return bars, np.zeros(0, dtype=TICK_DTYPE)
    ticks = np.concatenate(parts)
    return bars, ticks[np.argsort(ticks["ts_event"], kind="stable")]


def _seeds(
    conn: sqlite3.Connection,
    sym: int,
    symbol: str,
    last_m1: int,
    newest: dict[tuple[str, str], int],
    ny_close: bool,
) -> list[tuple]:
    """Partial bars (BAR_DTYPE rows) of each period longer than M1 that holds the newest
    stored M1 bar and was not stored itself: the M1 bars since it opened, merged."""
    longest = max(TIMEFRAMES.values())
    rows = conn.execute(
        "SELECT ts_open, open, high, low, close, ticks, volume FROM bars "
        "WHERE symbol = ? AND timeframe = 'M1' AND ts_open >= ? AND ts_open <= ? "
        "ORDER BY ts_open",
        [symbol, bar_open(last_m1, longest, ny_close), last_m1],
    ).fetchall()
    out = []
    for name, period in TIMEFRAMES.items():
        start = bar_open(last_m1, period, ny_close)
        if period == M1 or newest.get((symbol, name), start - 1) >= start:
            continue  # M1 comes from ticks; a stored bar is closed
        mine = [r for r in rows if r[0] >= start]
        if not mine:
            continue
        out.append(
            (
                sym,
                period,
                start,
                mine[0][1],
                max(r[2] for r in mine),
                min(r[3] for r in mine),
                mine[-1][4],
                sum(r[5] for r in mine),
                math.fsum(r[6] for r in mine),
            )
        )
    return out
