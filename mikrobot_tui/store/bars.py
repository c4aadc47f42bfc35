"""Bars outside the engine's own writer: the history importer upserts, the exporter reads."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import numpy as np

from mikrobot_tui.domain.market import BAR_DTYPE, timeframe_name
from mikrobot_tui.store.schema import COLUMNS
from mikrobot_tui.store.ticks import flush, time_range
from mikrobot_tui.store.writer import Writer

CHUNK = 50_000


def write_bars(conn: sqlite3.Connection, bars: np.ndarray, symbols: Sequence[str]) -> int:
    """Insert or replace BAR_DTYPE `bars` (key: symbol, timeframe, ts_open); the count."""
    writer = Writer(conn)
    names = np.asarray(symbols, dtype=object)
    for start in range(0, len(bars), CHUNK):
        b = bars[start : start + CHUNK]
        tf = [timeframe_name(int(p)) for p in b["period_ns"].tolist()]
        rows = zip(
            names[b["sym"]].tolist(),
            tf,
            b["ts_open"].tolist(),
            b["open"].tolist(),
            b["high"].tolist(),
            b["low"].tolist(),
            b["close"].tolist(),
            b["ticks"].tolist(),
            b["volume"].tolist(),
            strict=True,
        )
        writer.upsert("bars", COLUMNS["bars"], rows)
        flush(writer)
    return len(bars)


_COLUMNS = "ts_open, open, high, low, close, COALESCE(ticks, 0), COALESCE(volume, 0.0)"
_NAMES = ("ts_open", "open", "high", "low", "close", "ticks", "volume")


def read_bars(
    conn: sqlite3.Connection,
    symbol: str,
    timeframe: str,
    period_ns: int,
    start: int | None = None,
    end: int | None = None,
) -> np.ndarray:
    """`symbol`'s bars of `timeframe` opening in [start, end), BAR_DTYPE with sym 0."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM bars WHERE symbol = ? AND timeframe = ? "
        "AND ts_open >= ? AND ts_open < ? ORDER BY ts_open",
        [symbol, timeframe, *time_range(start, end)],
    ).fetchall()
    return _as_bars(rows, period_ns)


def read_last_bars(
    conn: sqlite3.Connection, symbol: str, timeframe: str, period_ns: int, n: int
) -> np.ndarray:
    """`symbol`'s newest `n` bars of `timeframe`, oldest first, BAR_DTYPE with sym 0."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM bars WHERE symbol = ? AND timeframe = ? "
        "ORDER BY ts_open DESC LIMIT ?",
        [symbol, timeframe, n],
    ).fetchall()
    rows.reverse()
    return _as_bars(rows, period_ns)


def _as_bars(rows: list[tuple], period_ns: int) -> np.ndarray:
    """SQLite's rows as bars: transposed by zip and each column read by np.fromiter, a third
    of the time np.array takes to fill records from tuples (the rows themselves, Python
    objects made by sqlite3, cost the rest)."""
    n = len(rows)
    bars = np.zeros(n, dtype=BAR_DTYPE)
    if n:
        for name, column in zip(_NAMES, zip(*rows, strict=True), strict=True):
            bars[name] = np.fromiter(column, dtype=BAR_DTYPE[name], count=n)
    bars["period_ns"] = period_ns
    return bars
