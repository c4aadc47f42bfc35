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
from typing import TYPE_CHECKING, Annotated

import typer

from mikrobot_tui.cli.common import (
    EXIT_BAD_INPUT,
    db_errors,
    echo,
    fail,
    iso_ns,
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
    from mikrobot_tui.paper.report import METRIC_KEYS, report_json, reports

    if as_json and as_csv:
        raise fail("--json and --csv: choose one", EXIT_BAD_INPUT)
    since_ns = iso_ns(since, "--since")
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


def _print(r: Report) -> None:
    from rich import box
    from rich.console import Console

    from mikrobot_tui.tui.report_view import metrics_table, notes_lines, periods_table

    console = Console(file=sys.stdout, highlight=False, emoji=False)
    console.print(metrics_table(r, box.ASCII))
    lines = notes_lines(r)
    reasons = len(r.reasons)
    for line in lines[:reasons]:
        console.print(f"  {line}", markup=False)
    console.print(periods_table(r, box.ASCII))
    for line in lines[reasons:]:
        console.print(line, markup=False)
    console.print()
