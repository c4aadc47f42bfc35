"""`mikrobot report`: each account's performance, from the database, read only.

The figures and their definitions are paper/analytics.py's and paper/report.py's; this module
reads the options, opens the database without writing to it, and prints tables, JSON or CSV.
"""

from __future__ import annotations

import csv
import io
import sqlite3
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mikrobot_tui.cli.common import (
    EXIT_BAD_INPUT,
    db_errors,
    echo,
    fail,
    query_only_reader,
    settings,
)

if TYPE_CHECKING:
    from mikrobot_tui.paper.report import Report


class Frequency(StrEnum):
    D = "D"
    H = "H"


def report(
    account: Annotated[
        str | None, typer.Option("--account", help="Only this account (default: every one)")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="From this time (ISO-8601, UTC if no offset; default all)"),
    ] = None,
    frequency: Annotated[
        Frequency,
        typer.Option(
            "--frequency", help="Returns sampled per trading day (D, default) or hour (H)"
        ),
    ] = Frequency.D,
    as_json: Annotated[
        bool, typer.Option("--json", help="A JSON list, one object per account")
    ] = False,
    as_csv: Annotated[
        bool, typer.Option("--csv", help="CSV, one row per account, a header of metric names")
    ] = False,
) -> None:
    """Each account's performance: returns, risk ratios, drawdowns, trades and costs, per
    strategy and symbol, by day, week and month, against buy-and-hold."""
    from mikrobot_tui.cli.history import _iso_ns
    from mikrobot_tui.paper.report import METRIC_KEYS, report_json, reports

    if as_json and as_csv:
        raise fail("--json and --csv: choose one", EXIT_BAD_INPUT)
    since_ns = _iso_ns(since, "--since")
    s = settings()
    path = Path(s.engine.db)
    conn = query_only_reader(s)
    with db_errors(path):
        names = _accounts(conn)
        if account is not None and account not in names:
            known = ", ".join(names) or "none yet"
            raise fail(
                f"--account: no account {account!r} in {path} (accounts: {known})",
                EXIT_BAD_INPUT,
            )
        found = reports(conn, account, since_ns, frequency.value)
    conn.close()
    if as_json:
        echo(report_json(found))
    elif as_csv:
        out = io.StringIO()
        columns = [*METRIC_KEYS, "periods_per_year", "frequency"]
        w = csv.writer(out, lineterminator="\n")
        w.writerow(["account", *columns])
        for r in found:
            w.writerow(
                [r.account, *("" if r.metrics[c] is None else r.metrics[c] for c in columns)]
            )
        sys.stdout.write(out.getvalue())
    elif not found:
        echo("no accounts yet: no engine has opened one here")
    else:
        for r in found:
            _print(r)


def _accounts(conn: sqlite3.Connection) -> list[str]:
    from mikrobot_tui.store.performance import account_names

    return account_names(conn)


def _cell(value: Any, key: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, int) or key in ("trades", "periods_per_year"):
        return f"{value}"
    if isinstance(value, str):
        return value
    if key in ("total_return", "cagr", "annualized_volatility", "win_rate", "exposure"):
        return f"{value * 100:.3g}%" if abs(value) >= 1e4 else f"{value * 100:.2f}%"
    if abs(value) >= 1e7:  # a short period's annualized figures: no column holds them whole
        return f"{value:.3g}"
    if key == "max_drawdown_pct":
        return f"{value:.2f}%"
    if key in ("max_drawdown_duration", "avg_holding_s"):
        return _duration(value)
    return f"{value:,.2f}" if abs(value) >= 100 else f"{value:.4g}"


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def _print(r: Report) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from mikrobot_tui.paper.report import METRIC_KEYS

    console = Console(file=sys.stdout, highlight=False, emoji=False)
    title = (
        f"{r.account} ({r.currency}): {_stamp(r.start_ts)} to {_stamp(r.end_ts)}, "
        f"returns per {'hour' if r.frequency == 'H' else 'day'}, "
        f"{r.periods_per_year} periods a year"
    )
    t = Table(title=title, box=box.ASCII, title_justify="left")
    t.add_column("metric", no_wrap=True, min_width=22)
    t.add_column("account", justify="right")
    views = [(f"strategy {v.name}", v) for v in r.strategies]
    views += [(v.name, v) for v in r.symbols]
    for label, _ in views:
        t.add_column(label, justify="right")
    for key in METRIC_KEYS:
        t.add_row(key, _cell(r.metrics[key], key), *(_cell(v.metrics[key], key) for _, v in views))
    console.print(t)
    for key, why in r.reasons.items():
        console.print(f"  {key}: {why}", markup=False)
    p = Table(title=f"{r.account}: by month and week", box=box.ASCII, title_justify="left")
    for col in ("period", "start", "P&L", "return", "trades"):
        p.add_column(col, justify="left" if col in ("period", "start") else "right")
    for name in ("monthly", "weekly", "daily"):
        for row in r.periods[name][-10:]:
            ret = "-" if row["return"] is None else f"{row['return'] * 100:.2f}%"
            p.add_row(name, row["start"], f"{row['pnl']:,.2f}", ret, str(row["trades"]))
    console.print(p)
    bh = r.buy_and_hold
    if bh["return"] is None:
        console.print(f"buy-and-hold: {bh['reason']}", markup=False)
    else:
        legs = ", ".join(f"{leg['symbol']} {leg['return'] * 100:.2f}%" for leg in bh["symbols"])
        excess = "" if bh["excess"] is None else f"; account minus it {bh['excess'] * 100:+.2f}%"
        console.print(
            f"buy-and-hold, equal weights: {bh['return'] * 100:.2f}% ({legs}){excess}",
            markup=False,
        )
    for note in r.notes:
        console.print(f"note: {note}", markup=False)
    console.print()


def _stamp(ts: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts / 1e9, tz=UTC).strftime("%Y-%m-%d %H:%M")
