"""`mikrobot backtest --data FILE --strategy NAME`: one strategy over a file's ticks.

The run is engine/backtest.py's (the real engine on the replay clock, one account); this module
reads the options, picks the database (the global `--db`, else a new one in a temporary folder
whose path goes to stderr, so `mikrobot report --db PATH` reads it afterwards), shows a
progress bar on stderr when it is a terminal, and prints the report's metrics table or, with
`--json`, one object. Bad input (unknown strategy, bad param, unreadable file, a bars file)
is one line, exit 2. `--sweep` (a grid of runs, `--walk-forward`) goes on in cli/sweep.py.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
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
    options,
    strategy_params,
    tick_parser,
)


def backtest(
    data: Annotated[
        Path,
        typer.Option(
            "--data", help="ticks: an MT5 tick export, Binance trades, a CSV or a replay .npz"
        ),
    ],
    strategy: Annotated[str, typer.Option("--strategy", help="a strategy's name")],
    param: Annotated[
        list[str] | None,
        typer.Option("--param", help="a strategy parameter, k=v (repeatable)"),
    ] = None,
    symbol: Annotated[
        str | None,
        typer.Option("--symbol", help="the symbol (an MT5 file names none; an .npz: only it)"),
    ] = None,
    balance: Annotated[
        float | None, typer.Option("--balance", help="starting balance (default 10000)")
    ] = None,
    currency: Annotated[
        str | None, typer.Option("--currency", help="the account's currency (default USD)")
    ] = None,
    leverage: Annotated[
        float | None,
        typer.Option("--leverage", help="the account's leverage, 30 = 1:30 (default per class)"),
    ] = None,
    latency_ms: Annotated[
        float | None,
        typer.Option("--latency-ms", help="a fixed order latency (default: [paper]'s model)"),
    ] = None,
    no_costs: Annotated[
        bool, typer.Option("--no-costs", help="commission, slippage, impact and swap zero")
    ] = False,
    trust_data: Annotated[
        bool,
        typer.Option("--trust-data", help="no spike filter (the validity checks stay)"),
    ] = False,
    batch_size: Annotated[
        int | None,
        typer.Option(
            "--batch-size", min=1, help="ticks per batch (default engine.batch_max); same result"
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    sweep: Annotated[
        list[str] | None,
        typer.Option(
            "--sweep", help="a parameter's values, k=v1,v2,... (repeatable): run their whole grid"
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, help="a sweep's worker processes (default: every core)"),
    ] = None,
    sort_by: Annotated[
        str | None,
        typer.Option("--sort-by", help="a sweep's ranking: net_pnl or a report metric"),
    ] = None,
    cluster: Annotated[
        str | None,
        typer.Option(
            "--cluster", help="run the sweep on a Dask scheduler's workers, tcp://HOST:PORT"
        ),
    ] = None,
    shared_data: Annotated[
        bool,
        typer.Option(
            "--shared-data", help="--cluster: workers read the ticks from --db's folder, not sent"
        ),
    ] = False,
    walk_forward: Annotated[
        str | None,
        typer.Option(
            "--walk-forward",
            help="TRAIN:TEST (e.g. 30d:7d): best of the sweep on each next stretch",
        ),
    ] = None,
) -> None:
    """Run one strategy over a file's ticks through the engine; print its report. With
    --sweep, a grid of its parameters at once, ranked (see README, Backtest)."""
    from mikrobot_tui.config import ConfigError, load_settings
    from mikrobot_tui.engine import backtest as bt
    from mikrobot_tui.trading.strategies import build_strategy

    sweep_only = {
        "--workers": workers is not None,
        "--sort-by": sort_by is not None,
        "--cluster": cluster is not None,
        "--shared-data": shared_data,
        "--walk-forward": walk_forward is not None,
    }
    if sweep:
        from mikrobot_tui.cli.sweep import run_sweep

        return run_sweep(
            data=data,
            strategy=strategy,
            fixed=strategy_params(param or []),
            sweep=sweep,
            workers=workers,
            sort_by=sort_by,
            cluster=cluster,
            shared_data=shared_data,
            walk_forward=walk_forward,
            symbol=symbol,
            account={"balance": balance, "currency": currency, "leverage": leverage},
            latency_ms=latency_ms,
            no_costs=no_costs,
            trust_data=trust_data,
            batch_size=batch_size,
            as_json=as_json,
        )
    given = [flag for flag, on in sweep_only.items() if on]
    if given:
        raise fail(f"{', '.join(given)}: only with --sweep k=v1,v2,...", EXIT_BAD_INPUT)
    params = strategy_params(param or [])
    try:
        build_strategy(strategy, params)
    except ValueError as exc:
        raise fail(f"--strategy/--param: {exc}", EXIT_BAD_INPUT) from None

    t0 = time.perf_counter()
    progress = StderrProgress(enabled=not as_json and sys.stderr.isatty())
    with progress:
        progress.stage(f"reading {data.name}")
        try:
            loaded = bt.load(data, symbol, parse=tick_parser())
        except bt.BadInput as exc:
            raise fail(str(exc), EXIT_BAD_INPUT) from None
        if options.db is not None:
            db = Path(options.db)
            check_db(db, write=True)
            problem = bt.fresh_db_problem(db)
            if problem is not None:
                raise fail(f"--db: {problem}", EXIT_BAD_INPUT)
        else:
            db = Path(tempfile.mkdtemp(prefix="mikrobot-backtest-")) / "backtest.db"
        with db_errors(db), tempfile.TemporaryDirectory(prefix="mikrobot-bt-") as work:
            try:
                s = load_settings(
                    options.config,
                    overrides=bt.overrides(
                        db,
                        Path(work) / "ticks.npz",
                        strategy,
                        params,
                        loaded.symbols,
                        balance=balance,
                        currency=currency,
                        leverage=leverage,
                        latency_ms=latency_ms,
                        no_costs=no_costs,
                        trust_data=trust_data,
                    ),
                    warn=lambda m: None,  # said once already, by tick_parser's settings()
                )
            except ConfigError as exc:
                if options.db is None:  # the temporary database's folder holds nothing yet
                    shutil.rmtree(db.parent, ignore_errors=True)
                raise fail(_one_line(str(exc)), EXIT_BAD_INPUT) from None
            if options.db is None:
                echo(f"database: {db}", err=True)
            progress.stage(f"backtesting {strategy}", total=len(loaded.ticks))
            result = bt.run(
                s,
                loaded,
                batch_size=batch_size,
                progress=progress.advance,
                load_s=time.perf_counter() - t0,
            )
    if as_json:
        doc = {"db": str(db), "strategy": strategy, "params": params, **result.to_json()}
        doc["symbols"] = loaded.symbols
        echo(json.dumps(doc, indent=2, ensure_ascii=True, allow_nan=False))
        return
    _print(result, db)


_FLAGS = {  # the settings a backtest's options set, named as the options
    "accounts.0.balance": "--balance",
    "accounts.0.currency": "--currency",
    "accounts.0.leverage": "--leverage",
    "paper.latency_ms": "--latency-ms",
}


def _one_line(text: str) -> str:
    """A configuration error's lines (a heading, then one per key) as one line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    line = "; ".join(lines[1:]) if len(lines) > 1 else text.strip()
    for key, flag in _FLAGS.items():
        line = line.replace(key, flag)
    return line


def _print(result, db: Path) -> None:
    from rich import box
    from rich.console import Console

    from mikrobot_tui.tui.report_view import metrics_table

    r = result.report
    console = Console(file=sys.stdout, highlight=False, emoji=False)
    console.print(metrics_table(r, box.ASCII))
    rate = "-" if result.ticks_per_s is None else f"{result.ticks_per_s:,.0f}"
    lines = [
        f"ticks {result.ticks:,} ({result.rejects:,} rejected), bars {result.bars:,}, "
        f"fills {result.fills:,}, trades {result.trades:,}, open positions "
        f"{result.open_positions}",
        f"balance {result.initial_balance:,.2f} -> equity {result.final_equity:,.2f} "
        f"{r.currency} (net {result.net_pnl:+,.2f}; open positions marked at the last quote)",
        f"load {result.load_s:.2f} s, run {result.elapsed_s:.2f} s, {rate} ticks/s",
        f"events in {db}: `mikrobot report --db {db}` for the full report",
    ]
    for line in lines:
        echo(line)
