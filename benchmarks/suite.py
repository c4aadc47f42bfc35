"""The figures of `python -m benchmarks`, group by group (issue 11's list).

Each group runs its measurements in fresh processes (the `mikrobot` CLI itself, or a
benchmark module's figures function through benchmarks/common.py), alternating between the
things it compares, and returns Figures: medians of the runs, with the target each is held
to. A figure that cannot be measured here (a strategy or an option not there yet, tmux or
distributed missing) is "n/a (why)" and the rest of the suite goes on.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.common import (
    DATA,
    MIKROBOT,
    Run,
    in_fresh_process,
    median,
    run_process,
    tick_file,
)

Value = float | int | str | None  # a str says why there is no number


@dataclass
class Figure:
    group: str
    name: str
    value: Value
    unit: str
    target: float | None = None
    higher_is_better: bool = True
    note: str = ""
    runs: list[Value] = field(default_factory=list)  # each run's value, in the order run

    @property
    def verdict(self) -> str:
        if not isinstance(self.value, int | float):
            return "n/a"
        if self.target is None:
            return ""
        if self.target == 0 and not self.higher_is_better:  # none at all, e.g. quotes lost
            return "pass" if self.value == 0 else "miss"
        if self.higher_is_better:
            return "pass" if self.value >= self.target else "miss"
        return "pass" if self.value < self.target else "miss"

    @property
    def target_text(self) -> str:
        if self.target is None:
            return ""
        if self.target == 0 and not self.higher_is_better:
            return "= 0"
        return f"{'>=' if self.higher_is_better else '<'} {number(self.target)}"

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "verdict": self.verdict}


def number(value: Value) -> str:
    """A figure's value as the table shows it."""
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    if abs(value) >= 1000 or float(value).is_integer():
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}" if value else "0"


@dataclass
class Options:
    quick: bool
    repeat: int

    @property
    def n_ticks(self) -> int:
        return 100_000 if self.quick else 1_000_000


def interleaved(trials: dict[str, Callable[[], Any]], repeat: int) -> dict[str, list[Any]]:
    """Each trial `repeat` times, alternating A, B, C, A, B, C...: the machine's noise falls on
    all of them alike."""
    runs: dict[str, list[Any]] = {name: [] for name in trials}
    for _ in range(repeat):
        for name, trial in trials.items():
            runs[name].append(trial())
    return runs


def cli(args: list[str], scratch: Path) -> Run:
    """`mikrobot ARGS` in a new process; its temporary databases go under scratch (TMPDIR),
    which the caller removes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIKROBOT_")}  # defaults
    env["TMPDIR"] = str(scratch)
    return run_process([*MIKROBOT, *args], env=env)


def cli_json(run: Run, missing: str) -> dict[str, Any] | str:
    """The JSON a `--json` command printed; or why not: 'n/a (missing)' when the command
    refused its input (exit 2, an unknown strategy or option), else the error's last line."""
    if run.returncode == 0:
        return run.last_json()
    last = (run.stderr.strip().splitlines() or ["no output"])[-1].strip(" │|")
    if run.returncode == 2:
        return f"n/a ({missing})"
    return f"n/a (exit {run.returncode}: {last[:80]})"


def figure(
    group: str, name: str, runs: list[Any], key: str, unit: str, *args: Any, **kw: Any
) -> Figure:
    """The Figure of `key` over runs (dicts of figures, or why a run has none): their median,
    every run's value beside it."""
    values = [r.get(key) if isinstance(r, dict) else r for r in runs]
    return Figure(group, name, pick(runs, key), unit, *args, runs=values, **kw)


def pick(runs: list[Any], key: str) -> Value:
    """The median of a key over runs that produced JSON; else the reason they did not."""
    docs = [r for r in runs if isinstance(r, dict)]
    if not docs:
        return runs[-1] if runs and isinstance(runs[-1], str) else None
    return median([d.get(key) for d in docs])


# ---------------------------------------------------------------- 1. replay throughput


def replay(opt: Options) -> list[Figure]:
    path = tick_file(opt.n_ticks)
    with tempfile.TemporaryDirectory() as tmp:

        def trial(strategy: str) -> Callable[[], Any]:
            args = ["backtest", "--data", str(path), "--strategy", strategy, "--json"]
            return lambda: cli_json(cli(args, Path(tmp)), "strategy missing")

        runs = interleaved({s: trial(s) for s in ("ema_cross", "ema_tick_cross")}, opt.repeat)
    ticks = f"{opt.n_ticks:,} ticks, file loaded"
    return [
        figure(
            "replay",
            "replay, bar strategy ema_cross M1",
            runs["ema_cross"],
            "ticks_per_s",
            "ticks/s",
            5_000_000,
            note=ticks,
        ),
        figure(
            "replay",
            "replay, tick strategy ema_tick_cross",
            runs["ema_tick_cross"],
            "ticks_per_s",
            "ticks/s",
            1_000_000,
            note=ticks,
        ),
    ]


# ---------------------------------------------------------------- 2. the whole process


def generic_csv(rows: int) -> Path:
    """A seeded `ts,symbol,bid,ask` CSV of rows ticks, kept under benchmarks/data/."""
    from benchmarks.history_import import write_csv

    path = DATA / f"generic_{rows}.csv"
    if not path.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        part = path.with_suffix(".part")
        write_csv(part, rows, quotes_only=True)
        part.rename(path)
    return path


def process(opt: Options) -> list[Figure]:
    path = generic_csv(opt.n_ticks)
    args = ["backtest", "--data", str(path), "--strategy", "ema_cross", "--json"]
    with tempfile.TemporaryDirectory() as tmp:
        runs = interleaved({"csv": lambda: cli(args, Path(tmp))}, opt.repeat)["csv"]
    done = [r for r in runs if r.returncode == 0]
    why = None if done else cli_json(runs[-1], "the CSV refused")
    note = f"{opt.n_ticks:,}-row generic CSV, ema_cross; start to exit, the result printed"
    return [
        Figure(
            "process",
            "backtest CSV, process start to result",
            median([r.wall_s for r in done]) or why,
            "s",
            3.0,
            False,
            note,
            [r.wall_s if r.returncode == 0 else None for r in runs],
        ),
        Figure(
            "process",
            "backtest CSV, peak memory (RSS)",
            median([r.max_rss_mib for r in done]) or why,
            "MiB",
            300,
            False,
            note,
            [r.max_rss_mib if r.returncode == 0 else None for r in runs],
        ),
    ]


# ---------------------------------------------------------------- 3. live


LIVE_RATES = (10_000, 20_000, 50_000, 100_000, 200_000)


def live(opt: Options) -> list[Figure]:
    seconds = 5.0 if opt.quick else 30.0
    runs = [
        in_fresh_process("feeds", "live_figures", rate=10_000, seconds=seconds)
        for _ in range(opt.repeat)
    ]
    lost = [r["received"] - r["processed"] - r["conflated"] for r in runs]
    accounted = not any(lost)
    counts = (
        f"last run: {runs[-1]['received']:,} received = {runs[-1]['processed']:,} processed "
        f"+ {runs[-1]['conflated']:,} conflated ({'all' if accounted else 'NOT all'} accounted)"
    )
    out = [
        figure(
            "live",
            "live, arrival to decision p50",
            runs,
            "p50_us",
            "us",
            note=f"50 symbols, 10,000 quotes/s, {seconds:.0f} s",
        ),
        figure("live", "live, arrival to decision p99", runs, "p99_us", "us", 1000, False, counts),
        figure(
            "live",
            "live, quotes conflated",
            runs,
            "conflated",
            "quotes",
            0,
            False,
            "0 when the engine keeps up",
        ),
        Figure(
            "live",
            "live, quotes not accounted for",
            sum(lost),
            "quotes",
            0,
            False,
            "received - processed - conflated, all runs",
            lost,
        ),
        figure("live", "live, engine memory (RSS)", runs, "engine_rss_mib", "MiB", 200, False),
    ]
    step_s = 3.0 if opt.quick else 10.0
    sustained: Value = 0
    steps = []
    for rate in LIVE_RATES:
        r = in_fresh_process("feeds", "live_figures", rate=rate, seconds=step_s)
        steps.append(r["conflated"])
        kept_up = r["conflated"] == 0 and r["received"] >= 0.98 * rate * step_s
        if not kept_up:
            break
        sustained = rate
    note = f"steps {', '.join(f'{r // 1000}k' for r in LIVE_RATES)}; {step_s:.0f} s each"
    out.append(
        Figure(
            "live",
            "live, highest rate without conflating",
            sustained,
            "quotes/s",
            50_000,
            note=note,
            runs=steps,  # the quotes conflated at each step
        )
    )
    return out


# ---------------------------------------------------------------- 4. storage


def storage(opt: Options) -> list[Figure]:
    n, cycles = opt.n_ticks, 2_000 if opt.quick else 20_000
    runs = interleaved(
        {
            "ticks": lambda: in_fresh_process("ticks", "figures", n_ticks=n),
            "bars": lambda: in_fresh_process("bars", "figures", n_ticks=n),
            "paper": lambda: in_fresh_process("paper", "figures", n_cycles=cycles),
        },
        opt.repeat,
    )
    return [
        figure("storage", "ticks written", runs["ticks"], "written_per_s", "ticks/s", 5_000_000),
        figure("storage", "ticks read", runs["ticks"], "read_per_s", "ticks/s", 10_000_000),
        figure("storage", "tick size in blocks", runs["ticks"], "bytes_per_tick", "bytes"),
        figure(
            "storage", "1,000 M1 bars read (bars)", runs["bars"], "bars_1000_ms", "ms", 2, False
        ),
        figure(
            "storage",
            "1,000 M1 bars read (last_bars)",
            runs["bars"],
            "last_bars_1000_ms",
            "ms",
            2,
            False,
        ),
        figure("storage", "candles M1 to D1 built", runs["bars"], "candles_ticks_per_s", "ticks/s"),
        figure(
            "storage",
            "order submit to fill",
            runs["paper"],
            "cycle_us",
            "us",
            None,  # the issue names the figure, not a target
            False,
            "market order, events and trade row on SQLite",
        ),
        figure(
            "storage", "order submit to fill, with bracket", runs["paper"], "bracket_cycle_us", "us"
        ),
    ]


# ---------------------------------------------------------------- 5. cockpit


def cockpit(opt: Options) -> list[Figure]:
    seconds, rate = (5.0 if opt.quick else 20.0), 1_000
    runs = [
        in_fresh_process("cockpit", "figures", rate=rate, seconds=seconds)
        for _ in range(opt.repeat)
    ]
    note = f"50 symbols at {rate:,} quotes/s, 200x50 tmux, {seconds:.0f} s after 5 s warm-up"
    return [
        figure("cockpit", "cockpit CPU", runs, "cpu_pct", "% of a core", 15, False, note),
        figure("cockpit", "cockpit first frame", runs, "first_frame_s", "s", 1.0, False),
        figure("cockpit", "cockpit memory (RSS)", runs, "cockpit_rss_mib", "MiB"),
    ]


# ---------------------------------------------------------------- 6. sweep scaling


SWEEP = ["--sweep", "fast=5,8,10,12", "--sweep", "slow=20,30,40,50"]


def sweep(opt: Options) -> list[Figure]:
    path = tick_file(opt.n_ticks)
    base = ["backtest", "--data", str(path), "--strategy", "ema_cross", *SWEEP, "--json"]
    with tempfile.TemporaryDirectory() as tmp:

        def timed(extra: list[str]) -> Callable[[], Any]:
            def trial() -> Any:
                run = cli([*base, *extra], Path(tmp))
                doc = cli_json(run, "--sweep/--workers/--cluster missing")
                return run.wall_s if isinstance(doc, dict) else doc

            return trial

        first = timed(["--workers", "1"])()
        if isinstance(first, str):  # the options are not there: nothing to compare
            return [Figure("sweep", "sweep 16 runs, 2 workers speed-up", first, "x", runs=[first])]
        trials = {"1": timed(["--workers", "1"]), "2": timed(["--workers", "2"])}
        cluster, why = local_cluster()
        if cluster is not None:
            trials["cluster"] = timed(["--cluster", cluster.scheduler_address])
        try:
            runs = interleaved(trials, opt.repeat)
        finally:
            if cluster is not None:
                cluster.close()
    one, two = median(runs["1"]), median(runs["2"])
    on_cluster = median(runs["cluster"]) if cluster is not None else None
    note = f"ema_cross over {opt.n_ticks:,} ticks, 4 x 4 grid"

    def ratio(t: Value) -> Value:
        return one / t if isinstance(one, float) and isinstance(t, float) else t

    return [
        Figure(
            "sweep",
            "sweep 16 runs, 1 worker",
            one if one is not None else runs["1"][-1],
            "s",
            note=note,
            runs=runs["1"],
        ),
        Figure(
            "sweep",
            "sweep 16 runs, 2 workers speed-up",
            ratio(two or runs["2"][-1]),
            "x",
            runs=runs["2"],  # seconds
        ),
        Figure(
            "sweep",
            "sweep 16 runs, LocalCluster(2) speed-up",
            ratio(on_cluster) if cluster is not None else why,
            "x",
            runs=runs.get("cluster", []),  # seconds
        ),
    ]


def local_cluster() -> tuple[Any, str]:
    """A distributed.LocalCluster of two one-thread worker processes, or why there is none."""
    try:
        from distributed import LocalCluster
    except ImportError:
        return None, "n/a (distributed not installed)"
    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    return cluster, ""


# ---------------------------------------------------------------- the other modules' figures


def latency(opt: Options) -> list[Figure]:
    n, warmup = (20_000, 20_000) if opt.quick else (200_000, 100_000)
    runs = [
        in_fresh_process("latency", "figures", n_ticks=n, warmup=warmup) for _ in range(opt.repeat)
    ]
    note = f"{n:,} single-tick batches of the replay file, default accounts"
    return [
        figure("latency", "one tick through the engine, p99", runs, "tick_p99_us", "us", note=note),
        figure(
            "latency", "a tick deciding entries, p99", runs, "entries_p99_us", "us", 1000, False
        ),
    ]


def indicators(opt: Options) -> list[Figure]:
    n = 10_000 if opt.quick else 100_000
    runs = [in_fresh_process("indicators", "figures", n_bars=n) for _ in range(opt.repeat)]
    return [
        figure("indicators", "ten indicators, one bar, median", runs, "p50_us", "us", 50, False),
        figure("indicators", "ten indicators, one bar, p99", runs, "p99_us", "us"),
    ]


def history_import(opt: Options) -> list[Figure]:
    rows = 100_000 if opt.quick else 2_000_000
    runs = [in_fresh_process("history_import", "figures", rows=rows) for _ in range(opt.repeat)]
    note = f"{rows:,}-row generic CSV"
    return [
        figure("import", "CSV parse", runs, "parse_rows_per_s", "rows/s", 1_000_000, note=note),
        figure("import", "history import into SQLite", runs, "import_rows_per_s", "rows/s"),
    ]


def features(opt: Options) -> list[Figure]:
    setups = 2_000 if opt.quick else 10_000
    runs = [
        in_fresh_process("features", "figures", setups=setups, repeat=1) for _ in range(opt.repeat)
    ]
    note = "49 features of a bos_retest setup from a warm FeatureBook"
    return [
        figure(
            "features",
            "a setup's features, median",
            runs,
            "features_per_setup_us_p50",
            "us",
            50,
            False,
            note=note,
        ),
        figure("features", "a setup's features, p99", runs, "features_per_setup_us_p99", "us"),
    ]


def models(opt: Options) -> list[Figure]:
    calls = 2_000 if opt.quick else 10_000
    runs = [in_fresh_process("models", "flat_figures", calls=calls) for _ in range(opt.repeat)]
    out = []
    for kind in ("gbm", "logistic"):
        note = "the compiled predictor, one setup (sklearn's predict_proba: ~1 ms)"
        out.append(
            figure(
                "models",
                f"{kind} inference, median",
                runs,
                f"{kind}_median_us",
                "us",
                100,
                False,
                note=note,
            )
        )
    return out


GROUPS: dict[str, Callable[[Options], list[Figure]]] = {
    "replay": replay,
    "process": process,
    "live": live,
    "storage": storage,
    "cockpit": cockpit,
    "sweep": sweep,
    "latency": latency,
    "indicators": indicators,
    "import": history_import,
    "features": features,
    "models": models,
}
