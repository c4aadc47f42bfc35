"""What the engine knows before its first live tick, without trading on any of it.

On a database that already holds market data (a restart), the past comes from the database
and is never regenerated: stored bars go to the strategies (the newest few hundred per symbol
and timeframe, oldest first), the stored ticks of the bars still open at the last stop go to
the candle builders, and the newest stored bar of each symbol and timeframe becomes a floor:
no bar at or before it is written or traded again (invariant 8). On a new database the feed's
own history (the simulated market generates an hour) runs through the whole corridor with
trading off: strategies learn, nothing is matched, ticks are not stored.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable

import numpy as np

from mikrobot_tui.domain.market import M5, TICK_DTYPE, TIMEFRAMES, Bar
from mikrobot_tui.engine.corridor import Corridor
from mikrobot_tui.engine.decisions import wanted
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
    corridor.set_bar_floors({(s, tf): ts for s, tf, ts in floors})
    strategies = list(strategies)
    bars = _stored_bars(conn, symbols, strategies)
    for bar in bars:
        for strategy in strategies:
            if bar.timeframe not in wanted(strategy):
                continue
            try:
                strategy.on_bar(bar)  # learning only: a signal from the past is not traded
            except Exception:
                continue
    corridor.seed_candles(_open_bar_ticks(conn, symbols))
    return len(bars)


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
    conn: sqlite3.Connection, symbols: list[str], strategies: list[Strategy]
) -> list[Bar]:
    """The newest bars each strategy needs, per symbol and timeframe, in closing order."""
    out: list[Bar] = []
    frames = {t for s in strategies for t in wanted(s)} & TIMEFRAMES.keys()
    for timeframe in sorted(frames):
        need = max(_bars_needed(s, timeframe) for s in strategies if timeframe in wanted(s))
        for symbol in symbols:
            rows = conn.execute(
                "SELECT symbol, timeframe, ts_open, open, high, low, close, ticks, volume "
                "FROM bars WHERE symbol = ? AND timeframe = ? ORDER BY ts_open DESC LIMIT ?",
                [symbol, timeframe, 2 * need + 10],
            ).fetchall()
            out.extend(Bar(*r) for r in reversed(rows))
    period = {name: ns for name, ns in TIMEFRAMES.items()}
    out.sort(key=lambda b: (b.ts_open + period[b.timeframe], period[b.timeframe], b.symbol))
    return out


def _bars_needed(strategy: Strategy, timeframe: str) -> int:
    """Bars of `timeframe` covering the strategy's warm-up, counted in its main timeframe."""
    main = TIMEFRAMES.get(strategy.timeframe, TIMEFRAMES[timeframe])
    bars = int(getattr(strategy, "warmup_bars", DEFAULT_WARMUP_BARS))
    return max(1, -(-bars * main // TIMEFRAMES[timeframe]))


def _open_bar_ticks(conn: sqlite3.Connection, symbols: list[str]) -> np.ndarray:
    """Stored ticks of the bars that were still open when the last engine stopped: those of
    each symbol's last five-minute period."""
    parts = []
    for s, symbol in enumerate(symbols):
        (last,) = conn.execute(
            "SELECT MAX(ts_event) FROM ticks WHERE symbol = ?", [symbol]
        ).fetchone()
        if last is None:
            continue
        rows = conn.execute(
            "SELECT ts_event, ts_recv, bid, ask, last, volume FROM ticks "
            "WHERE symbol = ? AND ts_event >= ? ORDER BY rowid",
            [symbol, last // M5 * M5],
        ).fetchall()
        t = np.zeros(len(rows), dtype=TICK_DTYPE)
        if rows:
            cols = list(zip(*rows, strict=True))
            t["ts_event"], t["ts_recv"] = cols[0], cols[1]
            t["bid"], t["ask"] = cols[2], cols[3]
            t["last"] = [np.nan if v is None else v for v in cols[4]]
            t["volume"] = [np.nan if v is None else v for v in cols[5]]
            t["sym"] = s
        parts.append(t)
    if not parts:
        return np.zeros(0, dtype=TICK_DTYPE)
    ticks = np.concatenate(parts)
    return ticks[np.argsort(ticks["ts_event"], kind="stable")]
