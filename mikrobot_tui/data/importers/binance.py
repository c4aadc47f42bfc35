"""Binance public data dumps (data.binance.vision): klines, trades and aggTrades.

Spot dumps have no header; futures dumps have one line of column names, tolerated. Times are
milliseconds, or microseconds in spot dumps from 2025 on, decided per value (a concatenation
of daily files mixes both). Klines are bars: `ticks` is the kline's number of trades, `volume`
its base volume. Trades and aggTrades are ticks on the trade price (bid = ask = last = price,
volume = quantity), so candles are built on the trade price (CONVENTIONS.md, "Candles").
The symbol and, for klines, the interval come from Binance's file names:
`BTCUSDT-1m-2024-01-01.csv`, `BTCUSDT-trades-2024-01.csv`, `BTCUSDT-aggTrades-2024-01-01.csv`.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from mikrobot_tui.data.importers.bars import bars_of, finish
from mikrobot_tui.data.importers.parsed import Parsed
from mikrobot_tui.data.importers.text import Checks, read_table
from mikrobot_tui.data.importers.times import binance_ns
from mikrobot_tui.domain.market import NS_PER_SECOND, TICK_DTYPE

NAME = re.compile(
    r"^(?P<symbol>[A-Z0-9]+)-(?P<kind>trades|aggTrades|\d+[smhdw]|1mo)-\d{4}-\d{2}(?:-\d{2})?$"
)
_UNIT_S = {"s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800}

KLINES, TRADES, AGGTRADES = "binance-klines", "binance-trades", "binance-aggtrades"
# (time column, price column, quantity column, fewest fields, most fields)
_LAYOUT = {TRADES: (4, 1, 2, 5, 7), AGGTRADES: (5, 1, 2, 6, 8)}


def from_name(path: Path) -> tuple[str, str, int | None] | None:
    """(symbol, format, kline period in ns or None) from a Binance file name, else None."""
    m = NAME.match(Path(path).name.removesuffix(".csv"))
    if m is None:
        return None
    kind = m["kind"]
    if kind == "trades":
        return m["symbol"], TRADES, None
    if kind == "aggTrades":
        return m["symbol"], AGGTRADES, None
    if kind == "1mo":
        return m["symbol"], KLINES, 30 * 86_400 * NS_PER_SECOND
    return m["symbol"], KLINES, int(kind[:-1]) * _UNIT_S[kind[-1]] * NS_PER_SECOND


def is_header(line: str) -> bool:
    """A futures dump's column names: a first line that does not start with a number."""
    return not line[:1].isdigit()


def parse_klines(
    text: bytes, path: Path, symbol: str, period_ns: int | None, ny_close: bool = False
) -> Parsed:
    kinds = {0: "int", 1: "float", 2: "float", 3: "float", 4: "float", 5: "float", 8: "int"}
    table = read_table(
        text, ",", is_header=is_header, min_fields=9, max_fields=12, types=lambda _: kinds
    )
    checks = Checks(table)
    ts = binance_ns(checks.ints(0, "open time"))
    checks.add(ts <= 0, "open time is not after 1970")
    names = ("open", "high", "low", "close")
    prices = [checks.floats(i, name) for i, name in enumerate(names, 1)]
    volume = checks.floats(5, "volume")
    trades = checks.ints(8, "number of trades")
    bars = bars_of(checks, ts, *prices, trades, volume)
    rows = len(table.lines) + len(table.rejects)
    return finish(KLINES, symbol, rows, checks, bars, path, period_ns, ny_close)


def parse_trades(text: bytes, path: Path, symbol: str, fmt: str) -> Parsed:
    t_col, p_col, q_col, fewest, most = _LAYOUT[fmt]
    kinds = {0: "int", t_col: "int", p_col: "float", q_col: "float"}
    table = read_table(
        text, ",", is_header=is_header, min_fields=fewest, max_fields=most, types=lambda _: kinds
    )
    checks = Checks(table)
    trade_id = checks.ints(0, "id")
    n = len(table.lines)
    ticks = np.zeros(n, dtype=TICK_DTYPE)
    ts = binance_ns(checks.ints(t_col, "time"))
    checks.add(ts <= 0, "time is not after 1970")
    ticks["ts_event"] = ticks["ts_recv"] = ts
    price = checks.floats(p_col, "price")
    checks.positive(price, "price")
    qty = checks.floats(q_col, "quantity")
    checks.add(qty < 0, "quantity is negative")
    ticks["bid"] = ticks["ask"] = ticks["last"] = price
    ticks["volume"] = qty
    checks.in_order(ts, None, [trade_id, price, qty])
    rows = n + len(table.rejects)
    return Parsed(fmt, [symbol], rows, checks.rejects(), ticks=ticks[~checks.bad])
