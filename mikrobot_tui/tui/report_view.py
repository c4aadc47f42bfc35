"""A performance report (paper/report.py) as rich tables: `mikrobot report` prints them, the
cockpit's report screen (`p`) shows them. Only rich: no Textual here.

How a figure reads: returns and rates as percent, durations in the largest whole unit, money
with two decimals, ratios with four significant digits; a short period's annualized figures
(a CAGR of 1e30%) in scientific form, since no column holds them whole; a null as "-", its
reason listed under the table.
"""

from __future__ import annotations

from typing import Any

from rich import box as boxes
from rich.box import Box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from mikrobot_tui.paper.report import METRIC_KEYS, Report

FRACTIONS = ("total_return", "cagr", "annualized_volatility", "win_rate", "exposure")
DURATIONS = ("max_drawdown_duration", "avg_holding_s")


def metric_cell(value: Any, key: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, int) or key in ("trades", "periods_per_year"):
        return f"{value}"
    if isinstance(value, str):
        return value
    if key in FRACTIONS:
        return f"{value * 100:.3g}%" if abs(value) >= 1e4 else f"{value * 100:.2f}%"
    if abs(value) >= 1e7:
        return f"{value:.3g}"
    if key == "max_drawdown_pct":
        return f"{value:.2f}%"
    if key in DURATIONS:
        return duration(value)
    return f"{value:,.2f}" if abs(value) >= 100 else f"{value:.4g}"


def duration(seconds: float) -> str:
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def stamp(ts: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts / 1e9, tz=UTC).strftime("%Y-%m-%d %H:%M")


def metrics_table(r: Report, box: Box = boxes.ASCII) -> Table:
    """Every metric of the account, then of each strategy and symbol it traded."""
    title = (
        f"{r.account} ({r.currency}): {stamp(r.start_ts)} to {stamp(r.end_ts)}, "
        f"returns per {'hour' if r.frequency == 'H' else 'day'}, "
        f"{r.periods_per_year} periods a year"
    )
    t = Table(title=title, box=box, title_justify="left")
    t.add_column("metric", no_wrap=True, min_width=22)
    t.add_column("account", justify="right")
    views = [(f"strategy {v.name}", v) for v in r.strategies]
    views += [(v.name, v) for v in r.symbols]
    for label, _ in views:
        t.add_column(label, justify="right")
    for key in METRIC_KEYS:
        cells = (metric_cell(v.metrics[key], key) for _, v in views)
        t.add_row(key, metric_cell(r.metrics[key], key), *cells)
    return t


def periods_table(r: Report, box: Box = boxes.ASCII, last: int = 10) -> Table:
    """The last `last` months, weeks and days: P&L, return and trades."""
    p = Table(title=f"{r.account}: by month, week and day", box=box, title_justify="left")
    for col in ("period", "start", "P&L", "return", "trades"):
        p.add_column(col, justify="left" if col in ("period", "start") else "right")
    for name in ("monthly", "weekly", "daily"):
        for row in r.periods[name][-last:]:
            ret = "-" if row["return"] is None else f"{row['return'] * 100:.2f}%"
            p.add_row(name, row["start"], f"{row['pnl']:,.2f}", ret, str(row["trades"]))
    return p


def notes_lines(r: Report) -> list[str]:
    """Why each null is null, buy-and-hold, and the report's notes."""
    lines = [f"{key}: {why}" for key, why in r.reasons.items()]
    bh = r.buy_and_hold
    if bh["return"] is None:
        lines.append(f"buy-and-hold: {bh['reason']}")
    else:
        legs = ", ".join(f"{leg['symbol']} {leg['return'] * 100:.2f}%" for leg in bh["symbols"])
        excess = "" if bh["excess"] is None else f"; account minus it {bh['excess'] * 100:+.2f}%"
        lines.append(f"buy-and-hold, equal weights: {bh['return'] * 100:.2f}% ({legs}){excess}")
    lines += [f"note: {note}" for note in r.notes]
    return lines


def report_renderable(r: Report, box: Box = boxes.ROUNDED) -> RenderableType:
    """The whole report of one account, for a screen."""
    return Group(
        metrics_table(r, box),
        Text("\n".join(notes_lines(r)), style="dim"),
        Text(""),
        periods_table(r, box),
    )
