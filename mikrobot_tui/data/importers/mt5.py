"""MetaTrader 5 exports: ticks and bars, tab-separated, `<DATE> <TIME> ...` headers.

Ticks: `<DATE> <TIME> <BID> <ASK> <LAST> <VOLUME> <FLAGS>`; an empty BID or ASK did not change,
so the previous value is carried forward (a first row with nothing to carry is rejected). LAST
and VOLUME may be empty (FX). Bars: `<DATE> <TIME> <OPEN> <HIGH> <LOW> <CLOSE> <TICKVOL> <VOL>
<SPREAD>`. Times are the broker's server clock, converted to UTC with the configured zone.
The file carries no symbol: the caller names it. A file without the header line is read in
the standard column order.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import numpy as np

from mikrobot_tui.data.importers.bars import bars_of, finish
from mikrobot_tui.data.importers.parsed import Parsed
from mikrobot_tui.data.importers.text import Checks, Table, UnreadableFile, read_table
from mikrobot_tui.data.importers.times import mt5_ns
from mikrobot_tui.domain.market import TICK_DTYPE

if TYPE_CHECKING:
    import polars as pl

TICK_COLUMNS = ("DATE", "TIME", "BID", "ASK", "LAST", "VOLUME", "FLAGS")
BAR_COLUMNS = ("DATE", "TIME", "OPEN", "HIGH", "LOW", "CLOSE", "TICKVOL", "VOL", "SPREAD")


def header_names(line: str) -> list[str]:
    return [c.strip().strip("<>").upper() for c in line.split("\t")]


def is_header(line: str) -> bool:
    return line.startswith("<")


_NUMBERS = {
    "BID": "float", "ASK": "float", "LAST": "float", "VOLUME": "float", "OPEN": "float",
    "HIGH": "float", "LOW": "float", "CLOSE": "float", "TICKVOL": "int", "VOL": "float",
}  # fmt: skip


def _table(text: bytes, standard: tuple[str, ...], needed: int) -> tuple[dict, Table]:
    names = list(standard)

    def width(line: str) -> tuple[int, int]:
        names[:] = header_names(line)
        return needed, len(names)

    def types(_: list[str]) -> dict[int, str]:
        return {i: _NUMBERS[n] for i, n in enumerate(names) if n in _NUMBERS}

    table = read_table(
        text,
        "\t",
        is_header=is_header,
        min_fields=needed,
        max_fields=len(standard),
        width=width,
        types=types,
    )
    return {name: i for i, name in enumerate(names)}, table


def _date_time(table: Table, cols: dict[str, int]) -> tuple[pl.Series, pl.Series]:
    return table.columns[cols["DATE"]], table.columns[cols["TIME"]]


def _need(cols: dict, names: tuple[str, ...], path: Path) -> None:
    missing = [n for n in names if n not in cols]
    if missing:
        raise UnreadableFile(f"{path}: the header has no {', '.join(f'<{n}>' for n in missing)}")


def parse_ticks(text: bytes, path: Path, symbol: str, zone: ZoneInfo, shift: timedelta) -> Parsed:
    cols, table = _table(text, TICK_COLUMNS, 4)
    _need(cols, ("DATE", "TIME", "BID", "ASK"), path)
    checks = Checks(table)
    n = len(table.lines)
    ticks = np.zeros(n, dtype=TICK_DTYPE)
    ticks["ts_event"] = mt5_ns(
        checks, table.columns[cols["DATE"]], table.columns[cols["TIME"]], zone, shift
    )
    ticks["ts_recv"] = ticks["ts_event"]
    for name in ("BID", "ASK"):
        values = checks.floats(cols[name], name, empty_ok=True)
        have = ~np.isnan(values)
        carried = np.maximum.accumulate(np.where(have, np.arange(n), -1)) if n else have
        checks.add(carried < 0, f"{name} is empty and no earlier {name} to carry forward")
        ticks[name.lower()] = values[np.maximum(carried, 0)] if n else values
        checks.positive(np.nan_to_num(ticks[name.lower()], nan=1.0), name)
    for name in ("LAST", "VOLUME"):
        ticks[name.lower()] = (
            checks.floats(cols[name], name, empty_ok=True) if name in cols else np.nan
        )
    checks.positive(np.nan_to_num(ticks["last"], nan=1.0), "LAST")
    checks.add(np.nan_to_num(ticks["volume"], nan=0.0) < 0, "VOLUME is negative")
    checks.add(ticks["bid"] > ticks["ask"], "bid above ask")
    checks.in_order(ticks["ts_event"], None, [ticks[c] for c in ("bid", "ask", "last", "volume")])
    rows = n + len(table.rejects)
    return Parsed("mt5-ticks", [symbol], rows, checks.rejects(), ticks=ticks[~checks.bad])


def parse_bars(
    text: bytes,
    path: Path,
    symbol: str,
    zone: ZoneInfo,
    shift: timedelta,
    ny_close: bool = False,
) -> Parsed:
    cols, table = _table(text, BAR_COLUMNS, 6)
    _need(cols, ("DATE", "TIME", "OPEN", "HIGH", "LOW", "CLOSE"), path)
    checks = Checks(table)
    ts = mt5_ns(checks, *_date_time(table, cols), zone, shift)
    prices = [checks.floats(cols[c], c) for c in ("OPEN", "HIGH", "LOW", "CLOSE")]
    ticks = checks.ints(cols["TICKVOL"], "TICKVOL", empty=0) if "TICKVOL" in cols else None
    volume = checks.floats(cols["VOL"], "VOL", empty_ok=True) if "VOL" in cols else None
    bars = bars_of(checks, ts, *prices, ticks, volume)
    rows = len(table.lines) + len(table.rejects)
    return finish("mt5-bars", symbol, rows, checks, bars, path, ny_close=ny_close)
