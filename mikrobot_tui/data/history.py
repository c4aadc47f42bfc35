"""History import and export: parsed files into the database, stored data back out.

Import (`import_parsed`): a file parsed by data/importers goes in through the store's one tick
writer (store/ticks.py `write_ticks`) and bar upsert (store/bars.py `write_bars`).

- Ticks, with the M1 to D1 bars data/candles.py builds from them (H4 and D1 on the symbol's
  trading day: `ny_close(symbol)` says whether it keeps New York's, domain/bar_clock.py).
  Re-importing is idempotent: per symbol, ticks within the span already stored (from its
  oldest to its newest stored tick, both included) are counted as already stored and not
  written again (the past is never rewritten, DESIGN invariant 8); ticks before or after that
  span are written, so older history can be imported after newer and an overlapping file adds
  only what is new.
  A gap inside the stored span is not filled. Bars at the seams are completed, not replaced:
  the first new bar after the span continues the stored bar of its period (the builder is
  seeded with it), and the last new bar before the span is merged with the stored bar of its
  period (its open, the stored close, both extremes, the sums).
- Bar files (MT5 bars, Binance klines) are upserted as their own timeframe (M1 to D1;
  importers/bars.py says what happens to others), then each higher timeframe is rebuilt from the
  stored bars of the file's timeframe over the periods the file touched. Re-importing the same
  file writes the same rows.

Importing while an engine runs on the same database is safe: ticks and bars are market history,
not trading state (which only the engine writes, DESIGN.md), SQLite runs in WAL mode and every
write is a short transaction of at most 50,000 rows, so the engine's writer waits at most one
of them.

Every rejected line also goes to the `rejects` table (source `import:<file name>`, the reason
with its line number, the line's text), as the engine keeps the market messages it turned
down: a bad row is reported and kept, never lost.

Reading (`bars`, `last_bars`): a symbol's stored bars of one timeframe as a BAR_DTYPE array in
time order, for strategies, backtests and the cockpit; stored bars are closed bars (the engine
writes a bar when it closes, the importer and backfill whole periods).

Export (`export_lines`): bars as `ts_open,open,high,low,close,ticks,volume`, ticks as
`ts_event,bid,ask,last,volume`, CSV with a header line or a JSON list of objects with the same
keys. Times are integer ns UTC; floats are written in their shortest exact form, so an export
of ticks imports back (as a generic CSV) to the same numbers.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mikrobot_tui.data.candles import CandleSet
from mikrobot_tui.data.importers import Parsed
from mikrobot_tui.domain.bar_clock import bar_open, bar_opens
from mikrobot_tui.domain.market import BAR_DTYPE, TIMEFRAMES
from mikrobot_tui.store.bars import read_bars, read_last_bars, write_bars
from mikrobot_tui.store.ticks import flush, read_ticks, tick_span, write_ticks
from mikrobot_tui.store.writer import Writer

Progress = Callable[[int], None]
NyClose = Callable[[str], bool]  # whether a symbol keeps New York's trading day


def _utc_day(symbol: str) -> bool:
    return False


BAR_KEYS = ("ts_open", "open", "high", "low", "close", "ticks", "volume")
TICK_KEYS = ("ts_event", "bid", "ask", "last", "volume")


@dataclass
class ImportReport:
    file: str
    format: str
    symbols: list[str]
    rows: int  # data lines read: imported + rejected
    imported: int  # good rows: now in the database (written now or already stored)
    rejected: list[tuple[int, str]]
    first_ts: int | None  # ns UTC of the first and last good row (bars: open times)
    last_ts: int | None
    written: int = 0  # ticks or bars of the file's timeframe written by this import
    already_stored: int = 0  # good ticks at or before the newest stored tick of their symbol
    bars: dict[str, int] = field(default_factory=dict)  # bars written per timeframe

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "format": self.format,
            "symbols": self.symbols,
            "rows": self.rows,
            "imported": self.imported,
            "rejected": [{"line": line, "reason": reason} for line, reason in self.rejected],
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
        }


def import_parsed(
    conn: sqlite3.Connection,
    parsed: Parsed,
    file: str,
    progress: Progress | None = None,
    ny_close: NyClose = _utc_day,
) -> ImportReport:
    times = parsed.times
    report = ImportReport(
        file=file,
        format=parsed.format,
        symbols=list(parsed.symbols),
        rows=parsed.rows,
        imported=parsed.good,
        rejected=parsed.rejects,
        first_ts=int(times.min()) if len(times) else None,
        last_ts=int(times.max()) if len(times) else None,
    )
    _store_rejects(conn, parsed, file)
    if parsed.ticks is not None:
        ny = np.array([ny_close(s) for s in parsed.symbols], dtype=bool)
        _store_ticks(conn, parsed.ticks, parsed.symbols, report, progress, ny)
    elif parsed.bars is not None:
        symbol = parsed.symbols[0]
        _store_bars(conn, parsed.bars, symbol, report, progress, ny_close(symbol))
    return report


def _store_rejects(conn: sqlite3.Connection, parsed: Parsed, file: str) -> None:
    if not parsed.rejects:
        return
    writer = Writer(conn)
    now = time.time_ns()
    source = f"import:{Path(file).name}"
    symbol = parsed.symbols[0] if len(parsed.symbols) == 1 else None
    writer.append(
        "rejects",
        ("ts", "ts_event", "source", "symbol", "reason", "raw"),
        [
            (now, None, source, symbol, f"line {line}: {reason}", parsed.raw.get(line))
            for line, reason in parsed.rejects
        ],
    )
    flush(writer)


def _store_ticks(
    conn: sqlite3.Connection,
    ticks: np.ndarray,
    symbols: list[str],
    report: ImportReport,
    progress: Progress | None,
    ny_close: np.ndarray,
) -> None:
    spans: dict[int, tuple[int, int]] = {}
    inside = np.zeros(len(ticks), dtype=bool)
    for i, name in enumerate(symbols):
        span = tick_span(conn, name)
        if span is not None:
            spans[i] = span
            ts = ticks["ts_event"]
            inside |= (ticks["sym"] == i) & (ts >= span[0]) & (ts <= span[1])
    report.already_stored = int(inside.sum())
    if progress is not None and report.already_stored:
        progress(report.already_stored)
    oldest = np.full(len(symbols), np.iinfo(np.int64).max, dtype=np.int64)
    for i, (low, _) in spans.items():
        oldest[i] = low
    before = ~inside & (ticks["ts_event"] < oldest[ticks["sym"]])
    parts = [(ticks[before], "before"), (ticks[~inside & ~before], "after")]
    for part, _ in parts:
        if len(part):
            report.written += write_ticks(conn, part, symbols, on_chunk=progress)
    for part, side in parts:
        if len(part) == 0:
            continue
        candles = CandleSet(len(symbols), list(TIMEFRAMES.values()), ny_close=ny_close)
        if side == "after":  # the first new bar continues the stored one
            candles.seed(_stored_bars_at(conn, part, symbols, spans, ny_close, first=True))
        closed = candles.update(part)
        opened = candles.open_bars()
        if side == "before":  # the last new bar may run into the stored one
            later = _stored_bars_at(conn, part, symbols, spans, ny_close, first=False)
        for name, period in TIMEFRAMES.items():
            bars = np.concatenate([closed[period][0], opened[period]])
            if side == "before":
                bars = _join(bars, later[later["period_ns"] == period])
            report.bars[name] = report.bars.get(name, 0) + write_bars(conn, bars, symbols)


def _stored_bars_at(
    conn: sqlite3.Connection,
    part: np.ndarray,
    symbols: list[str],
    spans: dict[int, tuple[int, int]],
    ny_close: np.ndarray,
    *,
    first: bool,
) -> np.ndarray:
    """The stored bars (each timeframe) that each symbol's first (or last) tick of `part`
    falls in."""
    found = []
    for i in spans:
        mine = part["ts_event"][part["sym"] == i]
        if len(mine) == 0:
            continue
        at = int(mine.min() if first else mine.max())
        for name, period in TIMEFRAMES.items():
            start = bar_open(at, period, bool(ny_close[i]))
            bar = read_bars(conn, symbols[i], name, period, start, start + 1)
            bar["sym"] = i
            found.append(bar)
    return np.concatenate(found) if found else np.zeros(0, dtype=BAR_DTYPE)


def _join(bars: np.ndarray, later: np.ndarray) -> np.ndarray:
    """`bars` with each one that shares its period with a stored bar of `later` (whose ticks
    all come after) merged with it: its open, the stored close, both extremes, the sums."""
    for b in later:
        hit = np.flatnonzero((bars["sym"] == b["sym"]) & (bars["ts_open"] == b["ts_open"]))
        for j in hit.tolist():
            bars["high"][j] = max(bars["high"][j], b["high"])
            bars["low"][j] = min(bars["low"][j], b["low"])
            bars["close"][j] = b["close"]
            bars["ticks"][j] += b["ticks"]
            bars["volume"][j] += b["volume"]
    return bars


def _store_bars(
    conn: sqlite3.Connection,
    bars: np.ndarray,
    symbol: str,
    report: ImportReport,
    progress: Progress | None,
    ny_close: bool,
) -> None:
    if len(bars) == 0:
        return
    period = int(bars["period_ns"][0])
    own = next(k for k, v in TIMEFRAMES.items() if v == period)
    report.written = report.bars[own] = write_bars(conn, bars, [symbol])
    if progress is not None:
        progress(len(bars))
    first, last = int(bars["ts_open"].min()), int(bars["ts_open"].max())
    for name, higher in TIMEFRAMES.items():
        if higher <= period or higher % period:
            continue
        lo = bar_open(first, higher, ny_close)
        hi = bar_open(last, higher, ny_close) + higher  # past the last bar's open
        stored = read_bars(conn, symbol, own, period, lo, hi)
        report.bars[name] = write_bars(conn, aggregate(stored, higher, ny_close), [symbol])


def aggregate(bars: np.ndarray, period_ns: int, ny_close: bool = False) -> np.ndarray:
    """Bars of one symbol in time order, folded into bars of a longer `period_ns` (opening
    on New York's trading day when `ny_close`, domain/bar_clock.py)."""
    if len(bars) == 0:
        return np.zeros(0, dtype=BAR_DTYPE)
    group = bar_opens(bars["ts_open"], period_ns, ny_close)
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    ends = np.r_[starts[1:], len(bars)]
    out = np.zeros(len(starts), dtype=BAR_DTYPE)
    out["sym"] = bars["sym"][starts]
    out["period_ns"] = period_ns
    out["ts_open"] = group[starts]
    out["open"] = bars["open"][starts]
    out["high"] = np.maximum.reduceat(bars["high"], starts)
    out["low"] = np.minimum.reduceat(bars["low"], starts)
    out["close"] = bars["close"][ends - 1]
    out["ticks"] = np.add.reduceat(bars["ticks"], starts)
    out["volume"] = np.add.reduceat(bars["volume"], starts)
    return out


def bars(
    conn: sqlite3.Connection,
    symbol: str,
    timeframe: str,
    start: int | None = None,
    end: int | None = None,
) -> np.ndarray:
    """`symbol`'s stored bars of `timeframe` opening in [start, end) (ns UTC, either side
    open), oldest first, as BAR_DTYPE (sym 0)."""
    return read_bars(conn, symbol, timeframe, _period(timeframe), start, end)


def last_bars(conn: sqlite3.Connection, symbol: str, timeframe: str, n: int) -> np.ndarray:
    """`symbol`'s newest `n` stored bars of `timeframe` (fewer when fewer are stored), oldest
    first, as BAR_DTYPE (sym 0)."""
    if n < 0:
        raise ValueError(f"n must be 0 or more, got {n}")
    return read_last_bars(conn, symbol, timeframe, _period(timeframe), n)


def _period(timeframe: str) -> int:
    if timeframe not in TIMEFRAMES:
        raise ValueError(f"timeframe must be one of {', '.join(TIMEFRAMES)}, got {timeframe!r}")
    return TIMEFRAMES[timeframe]


def export_lines(
    conn: sqlite3.Connection,
    symbol: str,
    *,
    timeframe: str | None,
    start: int | None,
    end: int | None,
    as_json: bool,
) -> Iterator[str]:
    """The export, line by line: ticks when `timeframe` is None, else that timeframe's bars."""
    if timeframe is None:
        keys, rows = TICK_KEYS, read_ticks(conn, symbol, start, end)
    else:
        stored = bars(conn, symbol, timeframe, start, end)
        keys = BAR_KEYS
        rows = zip(*(stored[k].tolist() for k in BAR_KEYS), strict=True)
    if as_json:
        yield "["
        held = None  # each object but the last ends with a comma
        for row in rows:
            if held is not None:
                yield f"  {held},"
            held = json.dumps(dict(zip(keys, (_json_value(v) for v in row), strict=True)))
        if held is not None:
            yield f"  {held}"
        yield "]"
        return
    yield ",".join(keys)
    for row in rows:
        yield ",".join(_cell(v) for v in row)


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return repr(value) if isinstance(value, float) else str(value)


def _json_value(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value
