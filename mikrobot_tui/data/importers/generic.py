"""The generic tick CSV: a header `ts,symbol,bid,ask[,last,volume]`, columns found by name.

`ts` may also be called `ts_event`, `time` or `timestamp` (an export of ticks,
`ts_event,bid,ask,last,volume`, reads back); it is ISO-8601 or an epoch number in s, ms, us or
ns (CONVENTIONS.md). Without a `symbol` column every row is the symbol given by `--symbol`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mikrobot_tui.data.importers.parsed import Parsed
from mikrobot_tui.data.importers.text import Checks, UnreadableFile, read_table
from mikrobot_tui.data.importers.times import any_ns
from mikrobot_tui.domain.market import TICK_DTYPE

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

    table = read_table(
        text, ",", is_header=is_generic_header, min_fields=1, max_fields=1, width=width
    )
    if table.header is None:
        raise UnreadableFile(
            f"{path}: a generic CSV starts with a header naming ts, symbol, bid, ask "
            "(and optionally last, volume)"
        )
    cols = {name: table.columns[i] for i, name in enumerate(header)}
    checks = Checks(table.lines, table.rejects)
    ts_name = next(t for t in TIME_NAMES if t in cols)
    n = len(table)
    ticks = np.zeros(n, dtype=TICK_DTYPE)
    ticks["ts_event"] = any_ns(checks, cols[ts_name], ts_name)
    ticks["ts_recv"] = ticks["ts_event"]
    if "symbol" in cols:
        names = cols["symbol"].str.strip_chars()
        checks.add(names.is_null().to_numpy() | (names == "").to_numpy(), "symbol is missing")
        names = names.fill_null("")
        symbols = names.unique().sort().to_list()
        sym = (names.rank("dense").to_numpy() - 1).astype(np.uint16)
        if len(symbols) > 65_535:
            raise UnreadableFile(f"{path}: more than 65,535 symbols")
    elif symbol:
        symbols, sym = [symbol], np.zeros(n, dtype=np.uint16)
    else:
        raise UnreadableFile(f"{path}: no symbol column: name the symbol with --symbol")
    ticks["sym"] = sym
    for name in ("bid", "ask"):
        ticks[name] = checks.floats(cols[name], name)
        checks.positive(ticks[name], name)
    for name in ("last", "volume"):
        if name in cols:
            ticks[name] = checks.floats(cols[name], name, empty_ok=True)
        else:
            ticks[name] = np.nan
    checks.positive(np.nan_to_num(ticks["last"], nan=1.0), "last")
    checks.add(np.nan_to_num(ticks["volume"], nan=0.0) < 0, "volume is negative")
    checks.add(ticks["bid"] > ticks["ask"], "bid above ask")
    checks.in_order(ticks["ts_event"], sym, [ticks[c] for c in ("bid", "ask", "last", "volume")])
    good = ~checks.bad
    kept = ticks[good]
    used = np.unique(kept["sym"]) if len(kept) else np.zeros(0, dtype=np.uint16)
    if len(used) != len(symbols):  # symbols seen only on rejected rows: drop them
        remap = np.zeros(len(symbols), dtype=np.uint16)
        remap[used] = np.arange(len(used), dtype=np.uint16)
        kept["sym"] = remap[kept["sym"]]
        symbols = [symbols[i] for i in used.tolist()]
    return Parsed(FORMAT, symbols, n + len(table.rejects), checks.rejects(), ticks=kept)
