"""`mikrobot history import FILE`, `history export --symbol S` and `history backfill`.

Import reads MT5 tick and bar exports, Binance klines/trades/aggTrades dumps and a generic
CSV (data/importers), stores ticks and bars (data/history.py) and reports every rejected row
with its line number. Exit 0 when anything was imported; 2 when the file cannot be read at all
(missing, unreadable, unknown format, no symbol for it) or holds no good row. Export writes a
symbol's bars or ticks as CSV (default) or JSON to stdout. Backfill fetches M1 bars from Binance
or MetaTrader 5 (data/backfill.py): exit 1 when the venue fails after retries, 2 for bad input.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from mikrobot_tui.cli.common import (
    EXIT_BAD_INPUT,
    StderrProgress,
    check_db,
    db_errors,
    echo,
    fail,
    iso_ns,
    reader,
    settings,
)

SHOWN_REJECTS = 20  # the plain report lists this many rejects, then says how many more


class Format(StrEnum):
    auto = "auto"
    mt5_ticks = "mt5-ticks"
    mt5_bars = "mt5-bars"
    binance_klines = "binance-klines"
    binance_trades = "binance-trades"
    binance_aggtrades = "binance-aggtrades"
    generic = "generic"


class Timeframe(StrEnum):
    M1 = "M1"
    M5 = "M5"
    M15 = "M15"
    H1 = "H1"
    H4 = "H4"
    D1 = "D1"


def import_(
    file: Annotated[Path, typer.Argument(help="the file to import", show_default=False)],
    fmt: Annotated[
        Format, typer.Option("--format", help="the file's format; auto detects it")
    ] = Format.auto,
    symbol: Annotated[
        str | None,
        typer.Option(
            "--symbol", help="the symbol (MT5 files carry none; Binance's come from the name)"
        ),
    ] = None,
    server_timezone: Annotated[
        str | None,
        typer.Option(
            "--server-timezone",
            help="MT5 server clock, e.g. America/New_York+7 (default: mt5.server_timezone)",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Import ticks or bars from an MT5 export, a Binance dump or a generic CSV."""
    from mikrobot_tui.data.history import import_parsed
    from mikrobot_tui.data.importers import UnreadableFile, parse_file
    from mikrobot_tui.domain.timezones import parse_server_zone
    from mikrobot_tui.store.schema import open_db

    s = settings()

    def ny_close(name: str) -> bool:  # where its H4 and D1 bars open, as the engine's
        return not s.quality.always_open(name)

    try:
        zone = parse_server_zone(server_timezone or s.mt5.server_timezone)
    except ValueError as exc:
        raise fail(f"--server-timezone: {exc}", EXIT_BAD_INPUT) from None
    with StderrProgress(enabled=not as_json and sys.stderr.isatty()) as progress:
        progress.stage(f"reading {file.name}")
        try:
            parsed = parse_file(file, fmt.value, symbol=symbol, server_zone=zone, ny_close=ny_close)
        except UnreadableFile as exc:
            raise fail(f"cannot import: {exc}", EXIT_BAD_INPUT) from None
        if parsed.good == 0:
            _report_rejects(parsed.rejects, as_json)
            raise fail(
                f"cannot import: {file}: no good row in {parsed.rows} data line(s)",
                EXIT_BAD_INPUT,
            )
        db = Path(s.engine.db)
        check_db(db, write=True)
        progress.stage("storing", total=parsed.good)
        with db_errors(db):
            conn = open_db(db).conn
            try:
                report = import_parsed(
                    conn,
                    parsed,
                    str(file),
                    progress.advance,
                    ny_close=ny_close,
                )
            finally:
                conn.close()
    if as_json:
        echo(json.dumps(report.to_json()))
        return
    bars = ", ".join(f"{n} {tf}" for tf, n in report.bars.items() if n)
    echo(
        f"{file}: {report.format}, {', '.join(report.symbols)}: {report.rows} rows, "
        f"{report.imported} imported, {len(report.rejected)} rejected"
    )
    echo(
        f"  {_ts(report.first_ts)} .. {_ts(report.last_ts)} UTC; written: "
        f"{report.written} {'ticks' if parsed.ticks is not None else 'bars'}"
        + (f", bars {bars}" if bars else "")
        + (f"; {report.already_stored} ticks were already stored" if report.already_stored else "")
    )
    _report_rejects(report.rejected, False)


def _report_rejects(rejects: list[tuple[int, str]], as_json: bool) -> None:
    if as_json:
        return
    for line, reason in rejects[:SHOWN_REJECTS]:
        echo(f"  line {line}: {reason}")
    if len(rejects) > SHOWN_REJECTS:
        echo(f"  ... and {len(rejects) - SHOWN_REJECTS} more (--json lists them all)")


def _ts(ns: int | None) -> str:
    if ns is None:
        return "-"
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def export(
    symbol: Annotated[str, typer.Option("--symbol", help="the symbol to export")],
    timeframe: Annotated[
        Timeframe, typer.Option("--timeframe", help="bars of this timeframe")
    ] = Timeframe.M1,
    ticks: Annotated[bool, typer.Option("--ticks", help="ticks instead of bars")] = False,
    start: Annotated[
        str | None, typer.Option("--start", help="from this time (ISO-8601, UTC if no offset)")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--end", help="before this time (ISO-8601, UTC if no offset)")
    ] = None,
    csv: Annotated[bool, typer.Option("--csv", help="CSV with a header line (default)")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="a JSON list of objects")] = False,
) -> None:
    """Write a symbol's stored bars (ts_open,open,high,low,close,ticks,volume) or ticks
    (ts_event,bid,ask,last,volume) to stdout; times are integer ns UTC."""
    from mikrobot_tui.data.history import export_lines

    if csv and as_json:
        raise fail("--csv and --json: choose one", EXIT_BAD_INPUT)
    lo, hi = iso_ns(start, "--start"), iso_ns(end, "--end")
    s = settings()
    conn = reader(s)
    out = sys.stdout
    with db_errors(Path(s.engine.db)):
        lines = export_lines(
            conn,
            symbol,
            timeframe=None if ticks else timeframe.value,
            start=lo,
            end=hi,
            as_json=as_json,
        )
        batch: list[str] = []
        for line in lines:
            batch.append(line)
            if len(batch) >= 10_000:
                out.write("\n".join(batch) + "\n")
                batch = []
        if batch:
            out.write("\n".join(batch) + "\n")
    conn.close()


class Venue(StrEnum):
    binance = "binance"
    mt5 = "mt5"


def backfill(
    symbol: Annotated[str, typer.Option("--symbol", help="the symbol to backfill")],
    start: Annotated[
        str, typer.Option("--start", help="from this time (ISO-8601, UTC if no offset)")
    ],
    end: Annotated[
        str | None,
        typer.Option("--end", help="before this time (ISO-8601, UTC if no offset; default now)"),
    ] = None,
    venue: Annotated[
        Venue | None,
        typer.Option(
            "--venue", help="where to fetch from (default: binance.symbols or mt5.symbols)"
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Fetch a symbol's M1 bars from Binance or MetaTrader 5 into the database (with M5 to
    D1): resumes after the last stored bar and repairs missing minutes inside."""
    import time

    from mikrobot_tui.data import backfill as bf
    from mikrobot_tui.store.schema import open_db

    lo, hi = iso_ns(start, "--start"), iso_ns(end, "--end")
    now = time.time_ns()
    hi = now if hi is None else hi
    if lo is None or lo >= hi:
        raise fail(f"--start {start} is not before --end {end or 'now'}", EXIT_BAD_INPUT)
    if lo >= now:
        raise fail(f"--start {start} is in the future: there is nothing to fetch", EXIT_BAD_INPUT)
    s = settings()
    name = venue.value if venue is not None else bf.venue_of(s, symbol)
    if name is None:
        raise fail(
            f"--symbol {symbol} is in neither binance.symbols nor mt5.symbols (nor a [[feeds]] "
            "table of either): add it to one, or name the venue with --venue binance|mt5",
            EXIT_BAD_INPUT,
        )
    db = Path(s.engine.db)
    check_db(db, write=True)
    from mikrobot_tui.config import ConfigError

    try:
        source = bf.open_venue(s, name)
    except ConfigError as exc:
        raise fail(str(exc), EXIT_BAD_INPUT) from None
    with StderrProgress(enabled=not as_json and sys.stderr.isatty()) as progress, db_errors(db):
        conn = open_db(db).conn
        try:
            report = bf.backfill(
                conn, source, symbol, lo, hi, progress, ny_close=not s.quality.always_open(symbol)
            )
        except bf.BadInput as exc:
            raise fail(f"cannot backfill: {exc}", EXIT_BAD_INPUT) from None
        except bf.VenueFailed as exc:
            done = exc.report
            kept = f"; {done.stored} bars stored, run again to continue" if done else ""
            raise fail(f"backfill of {symbol} stopped: {exc}{kept}") from None
        except KeyboardInterrupt:
            raise fail(f"backfill of {symbol} interrupted; run again to continue", 130) from None
        finally:
            conn.close()
            source.close()
    if as_json:
        echo(json.dumps(report.to_json()))
        return
    echo(
        f"{symbol} from {report.venue}: {_ts(report.start_ts)} .. {_ts(report.end_ts)} UTC: "
        f"{report.fetched} M1 bars fetched, {report.stored} stored "
        f"({report.gaps_repaired} in gaps), {report.requests} requests"
        + (f"; resumed from {_ts(report.resumed_from_ts)}" if report.resumed_from_ts else "")
    )
