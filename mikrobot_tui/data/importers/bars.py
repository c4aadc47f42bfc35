"""Bar files (MT5 bar exports, Binance klines): checks shared by both, and their timeframe.

A bar file holds one timeframe. It is the file's own when that is M1, M5, M15, H1, H4 or D1
(the timeframes the engine builds and strategies read); a file of any other (Binance's 1s, 3m,
30m, 1w, MT5's M30, W1 ...) is refused as a whole, naming what it found: resampling those into
bars the engine never builds itself would be guessing. The timeframe is the kline interval in a
Binance file name, else the shortest step between two bars. H4 and D1 bars must open where
the engine opens them (domain/bar_clock.py): 17:00 New York for a symbol with New York's hours,
00:00 UTC for one that never closes; a bar elsewhere is a reject that says so.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mikrobot_tui.data.importers.parsed import Parsed
from mikrobot_tui.data.importers.text import Checks, UnreadableFile
from mikrobot_tui.domain.bar_clock import bar_opens, clocked
from mikrobot_tui.domain.market import BAR_DTYPE, NS_PER_SECOND, TIMEFRAMES


class UnsupportedTimeframe(UnreadableFile):
    """Bars of a timeframe the database does not keep."""


def bars_of(
    checks: Checks,
    ts: np.ndarray,
    o: np.ndarray,
    h: np.ndarray,
    lo: np.ndarray,
    c: np.ndarray,
    ticks: np.ndarray | None,
    volume: np.ndarray | None,
) -> np.ndarray:
    """Every row as a bar (BAR_DTYPE, period unset); the bad ones rejected in `checks`."""
    bars = np.zeros(len(ts), dtype=BAR_DTYPE)
    bars["ts_open"] = ts
    for name, values in (("open", o), ("high", h), ("low", lo), ("close", c)):
        bars[name] = values
        checks.positive(values, name)
    checks.add(h < lo, "high below low")
    checks.add((h < np.maximum(o, c)) | (lo > np.minimum(o, c)), "open or close outside high-low")
    if ticks is not None:
        bars["ticks"] = ticks
        checks.add(ticks < 0, "tick count is negative")
    if volume is not None:
        bars["volume"] = np.nan_to_num(volume, nan=0.0)
        checks.add(bars["volume"] < 0, "volume is negative")
    checks.in_order(ts, None, [bars[k] for k in ("open", "high", "low", "close", "volume")])
    checks.in_order(ts, None, [], reason="a second bar at the same time")
    return bars


def finish(
    fmt: str,
    symbol: str,
    rows: int,
    checks: Checks,
    bars: np.ndarray,
    path: Path,
    period_ns: int | None = None,
    ny_close: bool = False,
) -> Parsed:
    """Name the file's timeframe, reject bars off its grid, keep the good bars."""
    good = bars["ts_open"][~checks.bad]
    if period_ns is None:
        steps = np.diff(np.unique(good))
        period_ns = int(steps.min()) if len(steps) else TIMEFRAMES["M1"]
    if period_ns not in TIMEFRAMES.values():
        raise UnsupportedTimeframe(
            f"{path}: bars of {describe(period_ns)}; the database keeps M1, M5, M15, H1, H4 "
            "and D1 bars (export one of those)"
        )
    name = next(k for k, v in TIMEFRAMES.items() if v == period_ns)
    ts = bars["ts_open"]
    if clocked(period_ns):
        where = "17:00 New York" if ny_close else "00:00 UTC"
        grid = f"the {name} grid of {symbol}'s trading day ({where})"
        checks.add(bar_opens(ts, period_ns, ny_close) != ts, f"time is not on {grid}")
    else:
        checks.add(ts % period_ns != 0, f"time is not on the {name} grid")
    kept = bars[~checks.bad]
    kept["period_ns"] = period_ns
    return Parsed(fmt, [symbol], rows, checks.rejects(), bars=kept)


def describe(period_ns: int) -> str:
    s = period_ns // NS_PER_SECOND
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if s >= size and s % size == 0:
            return f"{s // size}{unit}"
    return f"{period_ns / NS_PER_SECOND:g}s"
