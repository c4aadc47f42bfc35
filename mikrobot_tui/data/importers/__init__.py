"""Files traders bring, parsed into numpy arrays (CONVENTIONS.md, "Files traders bring").

One module per format family (mt5, binance, generic) plus `detect`; each returns a `Parsed`:
TICK_DTYPE ticks or BAR_DTYPE bars, the symbols their `sym` indexes, and every rejected row as
(line, reason), lines counted from 1 over every line of the file. Nothing here touches the
database: data/history.py stores what these return.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from mikrobot_tui.data.importers.parsed import Parsed
from mikrobot_tui.data.importers.text import UnreadableFile, first_line, line_texts, read_text

FORMATS = (
    "auto",
    "mt5-ticks",
    "mt5-bars",
    "binance-klines",
    "binance-trades",
    "binance-aggtrades",
    "generic",
)

__all__ = ["FORMATS", "Parsed", "UnreadableFile", "detect", "parse_file"]


def detect(path: Path, text: bytes) -> str | None:
    """The format of a file from its name and first non-blank line, or None."""
    from mikrobot_tui.data.importers import binance, generic

    line = first_line(text)
    if line.startswith("<DATE>"):
        names = line.upper()
        return "mt5-ticks" if "<BID>" in names else "mt5-bars" if "<OPEN>" in names else None
    named = binance.from_name(path)
    if named is not None:
        return named[1]
    if generic.is_generic_header(line):
        return "generic"
    cells = [c.strip().lower() for c in line.split(",")]
    if cells[0] == "open_time":
        return binance.KLINES
    if cells[0] == "agg_trade_id":
        return binance.AGGTRADES
    if cells[:3] == ["id", "price", "qty"]:
        return binance.TRADES
    tabs = line.split("\t")
    if len(tabs) >= 4 and len(tabs[0]) == 10 and tabs[0][4] == "." and tabs[0][7] == ".":
        return "mt5-bars" if len(tabs) >= 8 else "mt5-ticks"
    if not line[:1].isdigit():
        return None
    flags = {"true", "false"}
    if len(cells) == 12:
        return binance.KLINES
    if len(cells) == 8 and cells[6] in flags:
        return binance.AGGTRADES
    if len(cells) in (6, 7) and cells[5] in flags:
        return binance.TRADES
    return None


def parse_file(
    path: Path,
    fmt: str = "auto",
    *,
    symbol: str | None = None,
    server_zone: tuple[ZoneInfo, timedelta] | None = None,
    ny_close: Callable[[str], bool] = lambda symbol: False,
) -> Parsed:
    """Parse `path` as `fmt` (or the detected format). UnreadableFile when it cannot be:
    missing, unreadable, a format that does not fit, no symbol to give an MT5 file.
    `ny_close(symbol)`: the symbol keeps New York's trading day, where its H4 and D1 bars
    open (domain/bar_clock.py). The text of each rejected line comes with it (`raw`)."""
    text = read_text(Path(path))
    parsed = _parse(text, Path(path), fmt, symbol, server_zone, ny_close)
    parsed.raw = line_texts(text, [line for line, _ in parsed.rejects])
    return parsed


def _parse(
    text: bytes,
    path: Path,
    fmt: str,
    symbol: str | None,
    server_zone: tuple[ZoneInfo, timedelta] | None,
    ny_close: Callable[[str], bool],
) -> Parsed:
    from mikrobot_tui.data.importers import binance, generic, mt5

    if fmt not in FORMATS:
        raise UnreadableFile(f"unknown format {fmt!r}: one of {', '.join(FORMATS)}")
    if fmt == "auto":
        found = detect(path, text)
        if found is None:
            raise UnreadableFile(
                f"{path}: unknown format (not an MT5 tick or bar export, a Binance klines, "
                "trades or aggTrades dump, nor a CSV with a ts,symbol,bid,ask header); "
                "name one with --format"
            )
        fmt = found
    named = binance.from_name(path)
    if fmt == "generic":
        return generic.parse(text, path, symbol)
    if fmt.startswith("mt5-"):
        if not symbol:
            raise UnreadableFile(f"{path}: an MT5 export carries no symbol: name it with --symbol")
        zone, shift = server_zone or (ZoneInfo("UTC"), timedelta(0))
        if fmt == "mt5-ticks":
            return mt5.parse_ticks(text, path, symbol, zone, shift)
        return mt5.parse_bars(text, path, symbol, zone, shift, ny_close(symbol))
    symbol = symbol or (named[0] if named else None)
    if not symbol:
        raise UnreadableFile(
            f"{path}: the file name is not Binance's (e.g. BTCUSDT-1m-2024-01-01.csv): "
            "name the symbol with --symbol"
        )
    if fmt == binance.KLINES:
        period = named[2] if named and named[1] == binance.KLINES else None
        return binance.parse_klines(text, path, symbol, period, ny_close(symbol))
    return binance.parse_trades(text, path, symbol, fmt)
