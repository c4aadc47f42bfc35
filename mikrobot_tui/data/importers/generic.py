"""The generic tick CSV: a header `ts,symbol,bid,ask[,last,volume]`, columns found by name.

`ts` may also be called `ts_event`, `time` or `timestamp` (an export of ticks,
`ts_event,bid,ask,last,volume`, reads back); it is ISO-8601 or an epoch number in s, ms, us or
ns (CONVENTIONS.md). Without a `symbol` column every row is the symbol given by `--symbol`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mikrobot_tui.data.importers.parsed import Parsed
from mikrobot_tui.data.importers.text import Checks, Table, UnreadableFile, read_table
from mikrobot_tui.data.importers.times import any_ns
from mikrobot_tui.domain.market import TICK_DTYPE

if TYPE_CHECKING:
    import polars as pl

TIME_NAMES = ("ts", "ts_event", "time", "timestamp")
FORMAT = "generic"


def columns(header: str) -> list[str]:
    return [c.strip().strip('"').lower() for c in header.split(",")]


def is_generic_header(line: str) -> bool:
    names = columns(line)
    return "bid" in names and "ask" in names and any(t in names for t in TIME_NAMES)


def parse(text: bytes, path: Path, symbol: str | None) -> Parsed:
    header: list[str] = []

    def width(line: str) -> tuple[int, int]:
        header.extend(columns(line))
        return len(header), len(header)

    def types(first: list[str]) -> dict[int, str]:
        kinds = {i: "float" for i, n in enumerate(header) if n in ("bid", "ask", "last", "volume")}
        for i, n in enumerate(header):  # epoch integers read as numbers, else as text
            if n in TIME_NAMES and i < len(first) and first[i].strip().isdigit():
                kinds[i] = "int"
        return kinds

    table = read_table(
        text, ",", is_header=is_generic_header, min_fields=1, max_fields=1, width=width, types=types
    )
    if table.header is None:
        raise UnreadableFile(
            f"{path}: a generic CSV starts with a header naming ts, symbol, bid, ask "
            "(and optionally last, volume)"
        )
    cols = {name: i for i, name in enumerate(header)}
    checks = Checks(table)
    ts_name = next(t for t in TIME_NAMES if t in cols)
    n = len(table)
    ts = any_ns(checks, cols[ts_name], ts_name)
    _done_with(table, cols[ts_name])
    if "symbol" in cols:
        symbols, sym, missing = _symbols(table.columns[cols["symbol"]])
        checks.add(missing, "symbol is missing")
        _done_with(table, cols["symbol"])
        if len(symbols) > 65_535:
            raise UnreadableFile(f"{path}: more than 65,535 symbols")
    elif symbol:
        symbols, sym = [symbol], np.zeros(n, dtype=np.uint16)
    else:
        raise UnreadableFile(f"{path}: no symbol column: name the symbol with --symbol")
    # plain columns while checking; the structured array only for the rows kept
    price = {}
    for name in ("bid", "ask"):
        price[name] = checks.floats(cols[name], name)
        checks.positive(price[name], name)
    for name in ("last", "volume"):
        if name in cols:
            price[name] = checks.floats(cols[name], name, empty_ok=True)
        else:
            price[name] = np.full(n, np.nan)
    checks.add(price["last"] <= 0, "last must be above zero")  # NaN (empty) compares False
    checks.add(price["volume"] < 0, "volume is negative")
    checks.add(price["bid"] > price["ask"], "bid above ask")
    checks.in_order(ts, sym, list(price.values()))
    rows, rejects, bad = n + len(table.rejects), checks.rejects(), checks.bad
    # the line index and the text columns go before the ticks are built: a million rows'
    # worth of each, not needed any more
    del table, checks
    good = slice(None) if not bad.any() else np.flatnonzero(~bad)
    kept = np.zeros(n - int(bad.sum()), dtype=TICK_DTYPE)
    kept["ts_event"] = kept["ts_recv"] = ts[good]
    kept["sym"] = sym[good]
    for name in list(price):
        kept[name] = price.pop(name)[good]
    used = np.unique(kept["sym"]) if len(kept) else np.zeros(0, dtype=np.uint16)
    if len(used) != len(symbols):  # symbols seen only on rejected rows: drop them
        remap = np.zeros(len(symbols), dtype=np.uint16)
        remap[used] = np.arange(len(used), dtype=np.uint16)
        kept["sym"] = remap[kept["sym"]]
        symbols = [symbols[i] for i in used.tolist()]
    return Parsed(FORMAT, symbols, rows, rejects, ticks=kept)


def _done_with(table: Table, k: int) -> None:
    """Column k has been read into numpy: its text or numbers go (a million rows' worth)."""
    table.columns[k] = table.columns[k].clear()


def _symbols(cells: pl.Series) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(sorted symbols, each row's index into them, rows without one): the distinct cells
    (a few) are stripped and sorted, the rows mapped through an Enum of them."""
    import polars as pl

    distinct = cells.unique().drop_nulls().to_list()
    codes = cells.cast(pl.Enum(distinct)).to_physical()
    null = codes.is_null().to_numpy()
    codes = codes.fill_null(0).to_numpy()
    names = [c.strip() for c in distinct]
    symbols = sorted({n for n in names if n})
    index = {n: i for i, n in enumerate(symbols)}
    lookup = np.array([index.get(n, 0) for n in names] or [0], dtype=np.uint16)
    blank = np.array([not n for n in names] or [True], dtype=bool)
    return symbols, lookup[codes], null | blank[codes]
