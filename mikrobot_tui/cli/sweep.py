"""`mikrobot backtest ... --sweep k=v1,v2 [--walk-forward TRAIN:TEST]`: many backtests at once.

The runs are engine/sweep.py's (and engine/walk_forward.py's); this module checks the options
(bad ones exit 2 before anything runs), reads the file once, picks where the databases go
(the global `--db` names a folder, else a new temporary folder, said on stderr; with
`--cluster` and no `--db`, a temporary folder on each worker, named in each run's `db`),
shows one progress bar for the whole grid on stderr when it is a terminal, and prints the
ranked table or, with `--json`, one object. Exit 0 when at least one run (with
--walk-forward: one test run) succeeded, else 1.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from mikrobot_tui.cli.backtest import _one_line
from mikrobot_tui.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_RUNTIME,
    echo,
    fail,
    options,
    tick_parser,
)
from mikrobot_tui.cli.sweep_view import print_sweep, print_walk_forward


def run_sweep(
    *,
    data: Path,
    strategy: str,
    fixed: dict[str, float],
    sweep: list[str],
    workers: int | None,
    sort_by: str | None,
    cluster: str | None,
    shared_data: bool,
    walk_forward: str | None,
    symbol: str | None,
    account: dict[str, Any],
    latency_ms: float | None,
    no_costs: bool,
    trust_data: bool,
    batch_size: int | None,
    as_json: bool,
) -> None:
    from mikrobot_tui.config import ConfigError, load_settings
    from mikrobot_tui.engine import backtest as bt
    from mikrobot_tui.engine import sweep as sw
    from mikrobot_tui.engine import walk_forward as wf

    sort_key = sort_by or "net_pnl"
    try:
        grid = sw.parse_sweeps(sweep)
        sw.check_grid(strategy, fixed, grid)
        if sort_key not in sw.SORT_KEYS:
            raise bt.BadInput(
                f"--sort-by {sort_key}: not a metric; choose one of {', '.join(sw.SORT_KEYS)}"
            )
        spans = wf.parse_spans(walk_forward) if walk_forward is not None else None
    except bt.BadInput as exc:
        raise fail(str(exc), EXIT_BAD_INPUT) from None
    if cluster is not None and workers is not None:
        raise fail("--workers: with --cluster the cluster's workers run the grid", EXIT_BAD_INPUT)
    if shared_data and (cluster is None or options.db is None):
        raise fail(
            "--shared-data: with --cluster, and --db FOLDER on a disk every worker sees",
            EXIT_BAD_INPUT,
        )
    combos = sw.combinations(fixed, grid)

    t0 = time.perf_counter()
    try:
        loaded = bt.load(data, symbol, parse=tick_parser())
        windows = (
            wf.windows(loaded.ticks["ts_event"], *spans, walk_forward)
            if spans is not None and walk_forward is not None
            else None
        )
    except bt.BadInput as exc:
        raise fail(str(exc), EXIT_BAD_INPUT) from None

    def settings_for(params: dict[str, float], db: Path, replay: Path):
        return load_settings(
            options.config,
            overrides=bt.overrides(
                db,
                replay,
                strategy,
                params,
                loaded.symbols,
                latency_ms=latency_ms,
                no_costs=no_costs,
                trust_data=trust_data,
                **account,
            ),
            warn=lambda m: None,  # said once already, by tick_parser's settings()
        )

    try:  # the account's terms and config.toml are the same for every run: check them once
        settings_for(combos[0], Path("check.db"), Path("check.npz"))
    except ConfigError as exc:
        raise fail(_one_line(str(exc)), EXIT_BAD_INPUT) from None

    folder = _folder(cluster)
    if shared_data and folder is not None:
        data_dir = folder / "ticks"
        data_dir.mkdir(parents=True, exist_ok=True)
    else:
        data_dir = Path(tempfile.mkdtemp(prefix="mikrobot-sweep-data-"))
    sweep_id = uuid.uuid4().hex[:12]
    files: dict[str, Path] = {}
    total = len(combos) * (len(windows.windows) if windows else 1)
    total += len(windows.windows) if windows else 0
    progress = _GridProgress(enabled=not as_json and sys.stderr.isatty(), total=total)
    try:
        if windows is None:
            files["all"] = sw.write_replay(data_dir / "ticks.npz", loaded)
        with _pool(cluster, workers, files, shared_data) as pool:
            _say_where(folder, sweep_id)
            with progress:
                if windows is None:
                    p = sw.plan(
                        strategy,
                        combos,
                        settings_for,
                        files["all"],
                        folder=folder,
                        sweep_id=sweep_id,
                        batch_size=batch_size,
                    )
                    runs = sw.run_plans(pool, [p], progress.done)[0]
                    body = {"runs": sw.ranked(runs, sort_key), "failed": _failed(runs)}
                    ok = any(r["ok"] for r in runs)
                else:
                    body = {"walk_forward": walk_forward} | wf.walk_forward(
                        pool,
                        loaded,
                        windows,
                        strategy,
                        combos,
                        settings_for,
                        sort_by=sort_key,
                        data_folder=data_dir,
                        folder=folder,
                        sweep_id=sweep_id,
                        batch_size=batch_size,
                        done=progress.done,
                    )
                    ok = any(w.get("out_of_sample", {}).get("ok") for w in body["windows"])
            used = pool.workers
    except sw.Unreachable as exc:
        raise fail(str(exc), EXIT_BAD_INPUT) from None
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    out = {
        "strategy": strategy,
        "symbols": loaded.symbols,
        "fixed": fixed,
        "grid": grid,
        "sort_by": sort_key,
        **body,
        "elapsed_s": round(time.perf_counter() - t0, 3),
        "workers": used,
        "cluster": cluster,
        "databases": None if folder is None else str(folder),
    }
    if as_json:
        echo(json.dumps(out, indent=2, ensure_ascii=True, allow_nan=False))
    elif windows is None:
        print_sweep(out)
    else:
        print_walk_forward(out)
    if not ok:
        raise fail("no run succeeded", EXIT_RUNTIME)


def _failed(runs: list[dict[str, Any]]) -> int:
    return sum(1 for r in runs if not r["ok"])


def _folder(cluster: str | None) -> Path | None:
    """Where the databases go: `--db`'s folder (new or holding no other run's), else a new
    temporary one; with --cluster and no --db, None (a temporary folder on each worker)."""
    from mikrobot_tui.engine import backtest as bt

    if options.db is None:
        return None if cluster is not None else Path(tempfile.mkdtemp(prefix="mikrobot-sweep-"))
    folder = Path(options.db)
    if not folder.is_dir() and folder.suffix.lower() in (".db", ".sqlite", ".sqlite3"):
        raise fail(
            f"--db {folder}: a sweep writes one database per run: give a folder (new or empty), "
            "e.g. --db sweep-1",
            EXIT_BAD_INPUT,
        )
    if folder.exists() and not folder.is_dir():
        raise fail(
            f"--db: {folder} is a file; a sweep writes one database per run into the folder "
            "--db names (new or empty)",
            EXIT_BAD_INPUT,
        )
    for db in sorted(folder.glob("*.db")) if folder.is_dir() else []:
        problem = bt.fresh_db_problem(db)
        if problem is not None:
            raise fail(
                f"--db: {folder} holds another run's {db.name}; give a new or empty folder",
                EXIT_BAD_INPUT,
            )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise fail(f"--db: cannot make the folder {folder} ({exc})", EXIT_BAD_INPUT) from None
    return folder


def _say_where(folder: Path | None, sweep_id: str) -> None:
    from mikrobot_tui.engine.sweep import run_folder

    if folder is None:
        echo(f"databases: {run_folder(sweep_id)} on each worker (each run says its host)", err=True)
    elif options.db is None:
        echo(f"databases: {folder}", err=True)


def _pool(cluster: str | None, workers: int | None, files: dict[str, Path], shared: bool):
    from mikrobot_tui.engine import sweep as sw

    if cluster is not None:
        return sw.DaskPool(cluster, files, shared_data=shared)
    return sw.LocalPool(workers or sw.default_workers(), files)


class _GridProgress:
    """One rich bar on stderr for the whole grid: runs done of all, time left, ticks/s."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled = enabled
        self.total = total
        self._bar: Any = None
        self._task: Any = None
        self._ticks = 0
        self._t0 = time.perf_counter()

    def __enter__(self) -> _GridProgress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("sweep"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("runs"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[rate]}"),
                console=Console(stderr=True),
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task("sweep", total=self.total, rate="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def done(self, doc: dict[str, Any]) -> None:
        if self._bar is None:
            return
        self._ticks += doc.get("ticks") or 0
        elapsed = time.perf_counter() - self._t0
        rate = f"{self._ticks / elapsed:,.0f} ticks/s" if elapsed > 0 and self._ticks else ""
        self._bar.update(self._task, advance=1, rate=rate)
