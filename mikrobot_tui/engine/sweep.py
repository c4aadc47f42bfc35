"""A parameter sweep: one strategy's grid of parameter values, each a backtest, run at once.

The grid is the cartesian product of the swept values (`--sweep k=v1,v2`), each combination
laid over the fixed params. Every combination is one backtest exactly as engine/backtest.py
runs it alone: its settings are load_settings with `backtest.overrides`, built in the parent
(so config.toml and MIKROBOT_* variables are the parent's, even on another machine), and its
own database. Only the ticks are shared: the parent reads the file once and writes it once as
a replay .npz (`write_replay`); a run replays that file (`backtest.run_file`), so a run's
trades are the same as the same combination's alone (tested).

A job's settings carry no secret (`without_secrets`): they travel to other processes and
machines, and a backtest needs neither venue keys nor alert webhooks.

Runs go to a `LocalPool` (worker processes on this machine, spawned or forkserver-forked: the
parent may hold threads, and fork would copy their locks) or to a `DaskPool` (the workers of
a Dask distributed scheduler, several machines; the replay file's bytes are scattered to every
worker, or with `shared_data` they read its path). Both call `run_job`, which never raises:
a run that fails comes back as `ok: false` with a one-line `error`, and the others go on.

A combination the strategy refuses (ema_cross with fast >= slow) is a failed run decided in the
parent (`refusals`): no process is started for it. A parameter name the strategy lacks, or a
value outside a parameter's declared range, is bad input for the whole sweep (`check_grid`).

Ranking (`ranked`): by a report metric or net_pnl, in that metric's better direction (lower is
better for drawdowns, volatility, losing streaks and costs; higher for the rest), ties and
undefined (None) values after in grid order, failed runs last.
"""

from __future__ import annotations

import itertools
import math
import multiprocessing
import os
import socket
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mikrobot_tui.config import Settings
from mikrobot_tui.data.feeds import save_ticks
from mikrobot_tui.engine import backtest as bt
from mikrobot_tui.paper.report import METRIC_KEYS

SORT_KEYS = ("net_pnl", *METRIC_KEYS)
LOWER_IS_BETTER = frozenset(
    {
        "annualized_volatility",
        "max_drawdown_pct",
        "max_drawdown_amount",
        "max_drawdown_duration",
        "max_consecutive_losses",
        "commissions",
        "swaps",
        "slippage",
    }
)
CONNECT_TIMEOUT_S = 10

Done = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Job:
    """One backtest of a sweep: where its database goes and which replay file it reads."""

    run: int  # 1-based, in grid order
    name: str  # its database's file stem: "run-001", "w01-train-001", "w01-test-001"
    params: dict[str, float]  # the whole combination, fixed params included
    settings: Settings  # db and replay file are set where it runs (`run_job`)
    source: str  # the replay file it reads: a key of the pool's files
    folder: str | None  # its database's folder; None: a temporary folder where it runs
    sweep_id: str  # names that temporary folder, the same on every machine
    batch_size: int | None = None


def parse_sweeps(specs: Iterable[str]) -> dict[str, list[float]]:
    """`--sweep k=v1,v2,...` options as {k: [v1, v2, ...]}; BadInput naming the option."""
    grid: dict[str, list[float]] = {}
    for spec in specs:
        key, sep, values = spec.partition("=")
        key = key.strip()
        try:
            if not sep or not key:
                raise ValueError
            numbers = [float(v) for v in values.split(",")]
            if not all(math.isfinite(v) for v in numbers):
                raise ValueError
        except ValueError:
            raise bt.BadInput(
                f"--sweep {spec!r}: write name=v1,v2,..., e.g. --sweep fast=5,8,13"
            ) from None
        if key in grid:
            raise bt.BadInput(f"--sweep {key}: given twice; put all its values in one --sweep")
        repeated = sorted({v for v in numbers if numbers.count(v) > 1})
        if repeated:
            raise bt.BadInput(f"--sweep {spec!r}: {', '.join(f'{v:g}' for v in repeated)} twice")
        grid[key] = numbers
    return grid


def check_grid(strategy: str, fixed: dict[str, float], grid: dict[str, list[float]]) -> None:
    """BadInput for an unknown strategy or parameter, a parameter both fixed and swept, or a
    value outside its declared range (the range is said)."""
    from mikrobot_tui.trading.strategies import strategy_specs
    from mikrobot_tui.trading.strategies.params import resolve

    try:
        specs = strategy_specs(strategy)
        resolve(specs, fixed)
        for key, values in grid.items():
            for value in values:
                resolve(specs, {key: value})
    except ValueError as exc:
        raise bt.BadInput(f"--strategy/--param/--sweep: {strategy}: {exc}") from None
    both = sorted(set(fixed) & set(grid))
    if both:
        raise bt.BadInput(f"--param and --sweep both give {', '.join(both)}: give it once")


def combinations(fixed: dict[str, float], grid: dict[str, list[float]]) -> list[dict[str, float]]:
    """The grid's combinations over the fixed params, the last swept key varying fastest."""
    keys = list(grid)
    product = itertools.product(*grid.values())
    return [{**fixed, **dict(zip(keys, values, strict=True))} for values in product]


def refusal(strategy: str, params: dict[str, float]) -> str | None:
    """Why the strategy refuses this combination (fast >= slow), or None."""
    from mikrobot_tui.trading.strategies import build_strategy

    try:
        build_strategy(strategy, params)
    except ValueError as exc:
        return str(exc)
    return None


def failed(run: int, name: str, params: dict[str, float], error: str) -> dict[str, Any]:
    """A run that did not run or did not finish: its params and its one-line error."""
    return {"run": run, "name": name, "params": params, "db": None, "ok": False, "error": error}


def write_replay(path: Path, loaded: bt.Loaded) -> Path:
    save_ticks(path, loaded.ticks, loaded.symbols)
    return path


def run_job(job: Job, data: Path | str | bytes) -> dict[str, Any]:
    """Run one job where this process is: `data` is the replay file's path (read in place) or
    its bytes (written beside the database, removed after). Never raises: a failure is
    `ok: false` with the error in one line."""
    t0 = time.perf_counter()
    folder = Path(job.folder) if job.folder else run_folder(job.sweep_id)
    db = folder / f"{job.name}.db"
    doc: dict[str, Any] = {
        "run": job.run,
        "name": job.name,
        "params": job.params,
        "db": str(db),
        "host": socket.gethostname(),
        "ok": False,
        "error": None,
    }
    copy: Path | None = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            copy = folder / f"{job.name}.ticks.npz"
            copy.write_bytes(data)
        replay = copy or Path(data)
        s = job.settings
        s = s.model_copy(
            update={
                "engine": s.engine.model_copy(update={"db": db}),
                "replay": s.replay.model_copy(update={"file": replay}),
            }
        )
        result = bt.run_file(s, batch_size=job.batch_size, load_s=time.perf_counter() - t0)
        doc |= {"ok": True, **result.to_json()}
    except Exception as exc:
        doc["error"] = one_line(f"{type(exc).__name__}: {exc}")
    finally:
        if copy is not None:
            copy.unlink(missing_ok=True)
    return doc


def run_folder(sweep_id: str) -> Path:
    """Where a run without a folder writes its database: the same name on every machine."""
    return Path(tempfile.gettempdir()) / f"mikrobot-sweep-{sweep_id}"


def one_line(text: str) -> str:
    return " ".join(text.split())


def metric(doc: dict[str, Any], key: str) -> float | None:
    """A run's value of `key` (net_pnl or a report metric); None when failed or undefined."""
    if not doc.get("ok"):
        return None
    value = doc["net_pnl"] if key == "net_pnl" else doc["metrics"].get(key)
    return None if value is None else float(value)


def ranked(docs: Iterable[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """Best first by `key` in its better direction; undefined values, then failed runs, last;
    ties in grid order."""
    sign = 1.0 if key in LOWER_IS_BETTER else -1.0

    def order(doc: dict[str, Any]) -> tuple[int, float, int]:
        value = metric(doc, key)
        if value is None:
            return (1 if doc.get("ok") else 2, 0.0, doc["run"])
        return (0, sign * value, doc["run"])

    return sorted(docs, key=order)


class LocalPool:
    """Worker processes on this machine; `files` maps a job's source to its replay file."""

    def __init__(self, workers: int, files: dict[str, Path]) -> None:
        self.workers = workers
        self.files = files
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> LocalPool:
        self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=_context())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def run(self, jobs: list[Job], done: Done) -> list[dict[str, Any]]:
        """Every job's result in job order; `done(result)` as each one ends."""
        assert self._pool is not None, "use the pool as a context manager"
        futures = {self._pool.submit(run_job, job, self.files[job.source]): job for job in jobs}
        results: dict[int, dict[str, Any]] = {}
        for future in as_completed(futures):
            job = futures[future]
            try:
                doc = future.result()
            except Exception as exc:  # the worker process died (killed, out of memory)
                doc = failed(
                    job.run, job.name, job.params, one_line(f"{type(exc).__name__}: {exc}")
                )
            results[id(job)] = doc
            done(doc)
        return [results[id(job)] for job in jobs]

    def forget(self, source: str) -> None:
        """A replay file no job will read again: off the disk."""
        self.files.pop(source).unlink(missing_ok=True)


def _context() -> Any:
    """forkserver where there is one (a fresh process forks the workers, the engine already
    imported), spawn elsewhere (Windows): never fork a parent that may hold threads."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["mikrobot_tui.engine.sweep"])
        return ctx
    return multiprocessing.get_context("spawn")


def default_workers() -> int:
    return os.cpu_count() or 1


class Unreachable(Exception):
    """The Dask scheduler did not answer in time: one line."""


class DaskPool:
    """The workers of a Dask distributed scheduler at `address`. The replay files' bytes are
    scattered to every worker (broadcast) the first time a job needs them; with `shared_data`
    the workers read the files' paths, which must then be on a disk they all see."""

    def __init__(self, address: str, files: dict[str, Path], shared_data: bool = False) -> None:
        self.address = address
        self.files = files
        self.shared_data = shared_data
        self.workers = 0
        self._client: Any = None
        self._scattered: dict[str, Any] = {}

    def __enter__(self) -> DaskPool:
        import logging

        from distributed import Client

        # a scheduler that does not answer is our one line, not distributed's log lines
        logging.getLogger("distributed").setLevel(logging.CRITICAL)
        try:
            self._client = Client(self.address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise Unreachable(
                f"--cluster {self.address}: no Dask scheduler answered within "
                f"{CONNECT_TIMEOUT_S} s ({one_line(str(exc))})"
            ) from None
        info = self._client.scheduler_info()
        self.workers = sum(w.get("nthreads", 1) for w in info.get("workers", {}).values())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._client is not None:
            self._client.close()

    def forget(self, source: str) -> None:
        """A replay file no job will read again: off the workers' memory (and the disk)."""
        scattered = self._scattered.pop(source, None)
        if scattered is not None:
            scattered.release()
        self.files.pop(source).unlink(missing_ok=True)

    def _data(self, source: str) -> Any:
        if self.shared_data:
            return str(self.files[source])
        if source not in self._scattered:
            payload = self.files[source].read_bytes()
            self._scattered[source] = self._client.scatter(payload, broadcast=True)
        return self._scattered[source]

    def run(self, jobs: list[Job], done: Done) -> list[dict[str, Any]]:
        from distributed import as_completed as completed

        futures = [
            self._client.submit(run_job, job, self._data(job.source), pure=False) for job in jobs
        ]
        job_of = {f.key: job for f, job in zip(futures, jobs, strict=True)}
        results: dict[str, dict[str, Any]] = {}
        for future in completed(futures, loop=self._client.loop):
            job = job_of[future.key]
            try:
                doc = future.result()
            except Exception as exc:  # a worker lost, the task cancelled
                doc = failed(
                    job.run, job.name, job.params, one_line(f"{type(exc).__name__}: {exc}")
                )
            results[future.key] = doc
            done(doc)
        return [results[f.key] for f in futures]


SettingsFor = Callable[[dict[str, float], Path, Path], Settings]


@dataclass(frozen=True)
class Plan:
    """A grid's jobs, and the combinations the strategy refused (failed without running)."""

    jobs: list[Job]
    refused: list[dict[str, Any]]

    def merge(self, results: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """The refused and the run, in grid order."""
        names = {job.name for job in self.jobs}
        docs = self.refused + [doc for doc in results if doc["name"] in names]
        return sorted(docs, key=lambda doc: doc["run"])


def plan(
    strategy: str,
    combos: list[dict[str, float]],
    settings_for: SettingsFor,
    replay_file: Path,
    *,
    folder: Path | None,
    sweep_id: str,
    source: str = "all",
    prefix: str = "run",
    batch_size: int | None = None,
) -> Plan:
    """One job per combination the strategy accepts (`refusal`), named `prefix-NNN`.
    `settings_for(params, db, replay_file)` builds a run's settings (it may raise ConfigError:
    nothing has run yet); `folder` None: each run's database goes to a temporary folder where
    it runs (`run_folder`)."""
    jobs: list[Job] = []
    refused: list[dict[str, Any]] = []
    for run, params in enumerate(combos, start=1):
        name = f"{prefix}-{run:03d}"
        why = refusal(strategy, params)
        if why is not None:
            refused.append(failed(run, name, params, why))
            continue
        db = (folder or run_folder(sweep_id)) / f"{name}.db"
        settings = without_secrets(settings_for(params, db, replay_file))
        where = None if folder is None else str(folder)
        jobs.append(Job(run, name, params, settings, source, where, sweep_id, batch_size))
    return Plan(jobs, refused)


def without_secrets(model: Any) -> Any:
    """`model` with every secret (API keys, passwords, webhook URLs) emptied: a backtest needs
    none, and a job's settings travel to other processes and machines."""
    from pydantic import BaseModel, SecretStr

    updates: dict[str, Any] = {}
    for name, value in model:
        if isinstance(value, SecretStr):
            updates[name] = None
        elif isinstance(value, BaseModel):
            stripped = without_secrets(value)
            if stripped is not value:
                updates[name] = stripped
    return model.model_copy(update=updates) if updates else model


def run_plans(pool: LocalPool | DaskPool, plans: list[Plan], done: Done) -> list[list[dict]]:
    """Every plan's jobs on `pool` at once (the pool stays busy across plans); each plan's
    results in grid order. `done(result)` for each refused combination, then as each run ends."""
    for p in plans:
        for doc in p.refused:
            done(doc)
    jobs = [job for p in plans for job in p.jobs]
    results = pool.run(jobs, done) if jobs else []
    return [p.merge(results) for p in plans]
