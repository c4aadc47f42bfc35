"""How `mikrobot backtest --sweep` and `--walk-forward` print: the ranked table of runs, the
walk-forward's windows and totals, and where the databases went (cli/sweep.py runs them)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from mikrobot_tui.cli.common import echo

COLUMNS = {  # the table's metric columns: key -> heading
    "net_pnl": "net pnl",
    "trades": "trades",
    "win_rate": "win %",
    "sharpe": "sharpe",
    "max_drawdown_pct": "max dd %",
    "profit_factor": "pf",
}


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key == "net_pnl":
        return f"{value:+,.2f}"
    if key == "win_rate":
        return f"{100 * value:.1f}%"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.2f}" if abs(value) >= 0.01 or value == 0 else f"{value:.3g}"


def _value(doc: dict[str, Any], key: str) -> Any:
    if key in ("net_pnl", "trades"):
        return doc.get(key)
    return (doc.get("metrics") or {}).get(key)


def _columns(sort_by: str) -> dict[str, str]:
    return COLUMNS if sort_by in COLUMNS else {**COLUMNS, sort_by: sort_by}


def _params_text(params: dict[str, Any], keys: list[str]) -> list[str]:
    from mikrobot_tui.trading.strategies.params import param_text

    return [param_text(params[k]) for k in keys]


def print_sweep(out: dict[str, Any]) -> None:
    from rich import box
    from rich.table import Table

    from mikrobot_tui.engine.sweep import LOWER_IS_BETTER

    sort_by, keys = out["sort_by"], list(out["grid"])
    way = "lower" if sort_by in LOWER_IS_BETTER else "higher"
    table = Table(
        title=f"{out['strategy']}: {len(out['runs'])} runs by {sort_by} ({way} first)",
        box=box.ASCII,
    )
    table.add_column("run", justify="right")
    for key in keys:
        table.add_column(key, justify="right")
    columns = _columns(sort_by)
    for heading in columns.values():
        table.add_column(heading, justify="right")
    for doc in out["runs"]:
        cells = [str(doc["run"]), *_params_text(doc["params"], keys)]
        if doc["ok"]:
            cells += [_cell(k, _value(doc, k)) for k in columns]
        else:
            cells += ["failed"] + [""] * (len(columns) - 1)
        table.add_row(*cells)
    _console().print(table)
    for doc in out["runs"]:
        if not doc["ok"]:
            echo(f"run {doc['run']} ({_named(doc['params'], keys)}) failed: {doc['error']}")
    fixed = f"; fixed {_named(out['fixed'], list(out['fixed']))}" if out["fixed"] else ""
    echo(
        f"{len(out['runs']) - out['failed']} of {len(out['runs'])} runs ok{fixed}; "
        f"{out['elapsed_s']:.1f} s on {out['workers']} worker(s)"
    )
    _say_databases(out, "run-001.db")


def _when(iso: str) -> str:
    """2026-01-05T12:00:00Z as 2026-01-05 12:00 (seconds when not zero)."""
    text = iso.rstrip("Z").replace("T", " ")
    return text[:16] if text.endswith(":00") else text


def _console():
    """stdout's console; piped, wide enough that a row of a table never wraps."""
    from rich.console import Console

    width = None if sys.stdout.isatty() else 200
    return Console(file=sys.stdout, highlight=False, emoji=False, width=width)


def _named(params: dict[str, float], keys: list[str]) -> str:
    return " ".join(f"{k}={params[k]:g}" for k in keys)


def _say_databases(out: dict[str, Any], example: str) -> None:
    if out["databases"] is not None:
        where = Path(out["databases"])
        echo(f"databases in {where}: `mikrobot report --db {where / example}` for a run's report")
    else:
        echo("databases on the workers: each run's host and db are in --json's output")


def print_walk_forward(out: dict[str, Any]) -> None:
    from rich import box
    from rich.table import Table

    sort_by, keys = out["sort_by"], list(out["grid"])
    table = Table(
        title=f"{out['strategy']} walk-forward {out['walk_forward']}, best by {sort_by}",
        box=box.ASCII,
    )
    for heading in ("win", "train from", "test from", "test to", "params"):
        table.add_column(heading)
    extra = [] if sort_by == "net_pnl" else [sort_by]  # net pnl has its own columns
    for heading in (
        f"in-sample {sort_by}",
        "oos net pnl",
        "oos trades",
        *(f"oos {k}" for k in extra),
    ):
        table.add_column(heading, justify="right")
    for w in out["windows"]:
        dates = [_when(w["train_start"]), _when(w["test_start"]), _when(w["test_end"])]
        if w["partial"]:
            dates[-1] += " (partial)"
        if "skipped" in w:
            table.add_row(
                str(w["window"]), *dates, f"skipped: {w['skipped']}", *[""] * (3 + len(extra))
            )
            continue
        ins, oos = w["in_sample"], w.get("out_of_sample", {})
        if oos.get("ok"):
            result = [
                _cell("net_pnl", oos["net_pnl"]),
                _cell("trades", oos["trades"]),
                *(_cell(k, oos[k]) for k in extra),
            ]
        else:
            result = ["failed", "", *[""] * len(extra)]
        table.add_row(
            str(w["window"]),
            *dates,
            _named(w["params"], keys),
            _cell(sort_by, ins[sort_by]),
            *result,
        )
    console = _console()
    console.print(table)
    totals = Table(title="totals", box=box.ASCII)
    totals.add_column("")
    for heading in (
        "windows",
        "days",
        "net pnl",
        "pnl/day",
        "trades",
        *(f"{k} (mean)" for k in extra),
    ):
        totals.add_column(heading, justify="right")
    for name, key in (("in-sample", "in_sample"), ("out-of-sample", "out_of_sample")):
        t = out[key]
        totals.add_row(
            name,
            str(t["windows"]),
            f"{t['days']:.2f}",
            _cell("net_pnl", t["net_pnl"]),
            _cell("net_pnl", t["net_pnl_per_day"]),
            _cell("trades", t["trades"]),
            *(_cell(k, t[f"{k}_mean"]) for k in extra),
        )
    console.print(totals)
    for w in out["windows"]:
        oos = w.get("out_of_sample")
        if oos is not None and not oos["ok"]:
            echo(f"window {w['window']}: the test run failed: {oos['error']}")
    if out["left_out_ticks"]:
        echo(f"{out['left_out_ticks']:,} ticks after the last whole test window are not tested")
    echo(f"{out['failed']} run(s) failed; {out['elapsed_s']:.1f} s on {out['workers']} worker(s)")
    _say_databases(out, "w01-test-001.db")
