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
        "SELECT ts_open, open, high, low, close, ticks, volume FROM bars WHERE symbol = ? "
        "AND timeframe = ? AND ts_open >= ? AND ts_open < ? ORDER BY ts_open",
        [symbol, timeframe, *time_range(start, end)],
    ).fetchall()
    bars = np.zeros(len(rows), dtype=BAR_DTYPE)
    if rows:
        cols = list(zip(*rows, strict=True))
        for name, values in zip(
            ("ts_open", "open", "high", "low", "close", "ticks", "volume"), cols, strict=True
        ):
            bars[name] = [0 if v is None else v for v in values]
    bars["period_ns"] = period_ns
    return bars
