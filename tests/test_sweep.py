"""`mikrobot backtest --sweep`: a grid of backtests on worker processes (or a Dask cluster),
each equal to the same combination run alone, ranked; walk-forward over a multi-day file;
bad options are one line, exit 2, before anything runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from cli_runs import events_of, invoke, run_json

from mikrobot_tui.data.feeds import save_ticks
from mikrobot_tui.domain.market import NS_PER_SECOND, TICK_DTYPE
from mikrobot_tui.engine import sweep as sw

MONDAY = 1_767_571_200 * NS_PER_SECOND  # 2026-01-05 00:00 UTC: the forex market is open
GRID = ["--strategy", "ema_cross", "--sweep", "fast=3,5", "--sweep", "slow=8,13"]
SAME = ("ticks", "bars", "fills", "trades", "final_equity", "net_pnl", "metrics")


def write_ticks(path: Path, n: int, every_s: float, seed: int = 1, wave_s: float = 300) -> Path:
    """EURUSD on a wave with a random walk from Monday 00:00 UTC, as a replay .npz."""
    rng = np.random.default_rng(seed)
    i = np.arange(n)
    mid = 1.1 + 0.002 * np.sin(i * every_s / wave_s * 2 * np.pi)
    mid = np.round(mid + np.cumsum(rng.normal(0, 1, n)) * 2e-5, 5)
    t = np.zeros(n, dtype=TICK_DTYPE)
    t["ts_event"] = MONDAY + (i * every_s * NS_PER_SECOND).astype(np.int64)
    t["ts_recv"] = t["ts_event"] + 1_000_000
    t["bid"], t["ask"] = np.round(mid - 5e-5, 5), np.round(mid + 5e-5, 5)
    t["last"], t["volume"] = np.nan, np.nan
    save_ticks(path, t, ["EURUSD"])
    return path


@pytest.fixture(scope="module")
def hour(tmp_path_factory) -> Path:
    """An hour of ticks, one a second."""
    return write_ticks(tmp_path_factory.mktemp("data") / "hour.npz", 4000, 1.0)


def test_a_2x2_grid_on_2_workers_is_4_runs_each_the_same_as_run_alone(hour, tmp_path):
    folder = tmp_path / "sweep"
    doc = run_json("--db", str(folder), "backtest", "--data", str(hour), *GRID, "--workers", "2")
    assert doc["workers"] == 2 and doc["failed"] == 0 and len(doc["runs"]) == 4
    assert doc["grid"] == {"fast": [3.0, 5.0], "slow": [8.0, 13.0]}
    combos = sorted((r["params"]["fast"], r["params"]["slow"]) for r in doc["runs"])
    assert combos == [(3, 8), (3, 13), (5, 8), (5, 13)]
    dbs = sorted(r["db"] for r in doc["runs"])
    assert dbs == [str(folder / f"run-00{k}.db") for k in (1, 2, 3, 4)]
    assert any(r["trades"] > 0 for r in doc["runs"])
    for run in doc["runs"]:
        fast, slow = (f"{run['params'][k]:g}" for k in ("fast", "slow"))
        alone_db = tmp_path / f"alone-{fast}-{slow}.db"
        alone = run_json(
            "--db", str(alone_db), "backtest", "--data", str(hour), "--strategy", "ema_cross",
            "--param", f"fast={fast}", "--param", f"slow={slow}",
        )  # fmt: skip
        for key in SAME:
            assert run[key] == alone[key], (run["params"], key)
        assert events_of(Path(run["db"])) == events_of(alone_db)


def test_runs_are_ranked_by_the_sort_metric_in_its_better_direction(hour, tmp_path):
    by_pnl = run_json("backtest", "--data", str(hour), *GRID, "--workers", "2")
    pnl = [r["net_pnl"] for r in by_pnl["runs"]]
    assert by_pnl["sort_by"] == "net_pnl" and pnl == sorted(pnl, reverse=True)
    by_dd = run_json(
        "backtest", "--data", str(hour), *GRID, "--workers", "2", "--sort-by", "max_drawdown_pct"
    )
    dd = [r["metrics"]["max_drawdown_pct"] for r in by_dd["runs"]]
    assert dd == sorted(dd) and len(set(dd)) > 1  # lower is better
    for doc in (by_pnl, by_dd):
        shutil.rmtree(doc["databases"])  # a temporary folder the command leaves for the user


def test_ranking_puts_undefined_values_then_failed_runs_last_ties_in_grid_order():
    def doc(run: int, sharpe: float | None, ok: bool = True) -> dict:
        return {"run": run, "ok": ok, "net_pnl": 0.0, "metrics": {"sharpe": sharpe}}

    docs = [doc(1, None), doc(2, 0.5), doc(3, None, ok=False), doc(4, 1.5), doc(5, 0.5)]
    assert [d["run"] for d in sw.ranked(docs, "sharpe")] == [4, 2, 5, 1, 3]
    drawdowns = [
        {**doc(k, None), "metrics": {"max_drawdown_pct": v}}
        for k, v in ((1, 5.0), (2, 1.0), (3, 3.0))
    ]
    assert [d["run"] for d in sw.ranked(drawdowns, "max_drawdown_pct")] == [2, 3, 1]


def test_the_plain_output_is_a_ranked_table_naming_the_databases(hour, tmp_path):
    folder = tmp_path / "sweep"
    result = invoke("--db", str(folder), "backtest", "--data", str(hour), *GRID, "--workers", "2")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "4 runs by net_pnl (higher first)" in result.stdout
    header = next(line for line in lines if "net pnl" in line)
    for word in ("fast", "slow", "trades", "win %", "sharpe", "max dd %", "pf"):
        assert word in header
    rows = [line for line in lines if line.startswith("|") and line.split("|")[1].strip().isdigit()]
    assert len(rows) == 4
    pnl = [float(row.split("|")[4].replace(",", "")) for row in rows]
    assert pnl == sorted(pnl, reverse=True)
    assert "4 of 4 runs ok" in result.stdout and f"databases in {folder}" in result.stdout


def test_a_combination_the_strategy_refuses_fails_alone_and_the_rest_run(hour, tmp_path):
    args = ("backtest", "--data", str(hour), "--strategy", "ema_cross", "--workers", "2")
    doc = run_json("--db", str(tmp_path / "s"), *args, "--sweep", "fast=3,9", "--sweep", "slow=8")
    assert doc["failed"] == 1
    good, bad = doc["runs"]
    assert good["ok"] and good["params"] == {"fast": 3.0, "slow": 8.0} and good["trades"] > 0
    assert not bad["ok"] and bad["params"] == {"fast": 9.0, "slow": 8.0}
    assert "fast must be < slow" in bad["error"] and "\n" not in bad["error"]
    plain = invoke("--db", str(tmp_path / "p"), *args, "--sweep", "fast=3,9", "--sweep", "slow=8")
    assert plain.exit_code == 0
    assert "run 2 (fast=9 slow=8) failed: ema_cross: fast must be < slow" in plain.stdout
    none = invoke("--db", str(tmp_path / "n"), *args, "--sweep", "fast=9,10", "--sweep", "slow=8")
    assert none.exit_code == 1 and "no run succeeded" in none.stderr


def test_a_run_that_raises_comes_back_failed_in_one_line(tmp_path, make_settings):
    job = sw.Job(1, "run-001", {"fast": 3.0}, make_settings(), "all", str(tmp_path), "x")
    doc = sw.run_job(job, tmp_path / "missing.npz")
    assert doc["ok"] is False and doc["db"] == str(tmp_path / "run-001.db")
    assert "missing.npz" in doc["error"] and "\n" not in doc["error"]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--sweep", "fast=3,x"], "--sweep 'fast=3,x': write name=v1,v2"),
        (["--sweep", "fast"], "--sweep 'fast': write name=v1,v2"),
        (["--sweep", "=3,5"], "write name=v1,v2"),
        (["--sweep", "fast=3,3"], "3 twice"),
        (["--sweep", "fast=3", "--sweep", "fast=5"], "--sweep fast: given twice"),
        (["--sweep", "zz=1,2"], "unknown param 'zz'"),
        (["--sweep", "fast=0,3"], "fast must be a whole number in [1, 500]"),
        (["--sweep", "fast=3", "--param", "fast=4"], "--param and --sweep both give fast"),
        (["--sweep", "fast=3", "--sort-by", "nope"], "--sort-by nope: not a metric; choose one"),
        (["--workers", "2"], "--workers: only with --sweep"),
        (["--sweep", "fast=3", "--walk-forward", "3x:1d"], "--walk-forward '3x:1d': write TRAIN:"),
        (["--sweep", "fast=3", "--walk-forward", "1d:1d"], "the data spans 1.1 hours"),
        (["--sweep", "fast=3", "--shared-data"], "--shared-data: with --cluster"),
    ],
)
def test_bad_sweep_options_are_one_line_exit_2(hour, tmp_path, args, says):
    result = invoke("backtest", "--data", str(hour), "--strategy", "ema_cross", *args)
    assert result.exit_code == 2, result.output
    assert says in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""


def test_sort_by_lists_the_allowed_metrics(hour):
    result = invoke("backtest", "--data", str(hour), *GRID, "--sort-by", "best")
    assert result.exit_code == 2
    assert "net_pnl, net_profit" in result.stderr and "max_drawdown_pct" in result.stderr


def test_json_has_the_sweep_and_each_run_s_backtest_keys(hour, tmp_path):
    doc = run_json("--db", str(tmp_path / "s"), "backtest", "--data", str(hour), *GRID[:4])
    assert doc.keys() >= {"strategy", "grid", "sort_by", "runs", "failed", "elapsed_s", "workers"}
    assert doc["strategy"] == "ema_cross" and doc["elapsed_s"] > 0 and doc["workers"] >= 1
    run = doc["runs"][0]
    assert run.keys() >= {"params", "db", "ok", "error", "ticks", "trades", "net_pnl", "metrics"}
    assert run["ok"] is True and run["error"] is None and run["params"] == {"fast": 3.0}


def test_a_dask_cluster_gives_the_local_pool_s_results(hour, tmp_path):
    distributed = pytest.importorskip("distributed")
    local = run_json("--db", str(tmp_path / "local"), "backtest", "--data", str(hour), *GRID)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        address = cluster.scheduler_address
        sent = run_json("backtest", "--data", str(hour), *GRID, "--cluster", address)
        shared = run_json(
            "--db", str(tmp_path / "shared"), "backtest", "--data", str(hour), *GRID,
            "--cluster", address, "--shared-data",
        )  # fmt: skip
    assert sent["workers"] == 2 and sent["cluster"] == address and sent["databases"] is None
    for doc in (sent, shared):
        assert [r["params"] for r in doc["runs"]] == [r["params"] for r in local["runs"]]
        for ours, theirs in zip(doc["runs"], local["runs"], strict=True):
            for key in SAME:
                assert ours[key] == theirs[key], key
    # the scattered runs wrote their databases in a temporary folder on the worker
    folders = {Path(r["db"]).parent for r in sent["runs"]}
    assert len(folders) == 1 and all(Path(r["db"]).exists() for r in sent["runs"])
    shutil.rmtree(folders.pop())
    assert all(Path(r["db"]).parent == tmp_path / "shared" for r in shared["runs"])
    assert not (tmp_path / "shared" / "ticks").exists()  # the shared replay file is removed


def test_an_unreachable_scheduler_is_one_line_exit_2(hour, monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setattr(sw, "CONNECT_TIMEOUT_S", 1)
    result = invoke("backtest", "--data", str(hour), *GRID, "--cluster", "tcp://127.0.0.1:9")
    assert result.exit_code == 2
    assert "--cluster tcp://127.0.0.1:9: no Dask scheduler answered" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_walk_forward_trades_each_window_s_training_best_on_the_next_stretch(tmp_path):
    """Two days, a tick every 4 s: 12h:12h gives three windows, the last one partial."""
    data = write_ticks(tmp_path / "days.npz", 2 * 86400 // 4, 4.0, seed=7, wave_s=1800)
    folder = tmp_path / "wf"
    doc = run_json(
        "--db", str(folder), "backtest", "--data", str(data), *GRID, "--workers", "2",
        "--walk-forward", "12h:12h",
    )  # fmt: skip
    assert doc.keys() >= {"windows", "in_sample", "out_of_sample"}
    windows = doc["windows"]
    assert [w["window"] for w in windows] == [1, 2, 3]
    assert [w["partial"] for w in windows] == [False, False, True]
    assert windows[0]["train_start"] == "2026-01-05T00:00:00Z"
    assert windows[0]["test_start"] == windows[1]["train_start"] == "2026-01-05T12:00:00Z"
    assert doc["left_out_ticks"] == 0
    for w in windows:
        assert w["train_ticks"] == w["test_ticks"] == 10_800
        best = max(w["train"], key=lambda r: r["net_pnl"])
        assert w["params"] == best["params"] and w["in_sample"]["db"] == best["db"]
        oos = w["out_of_sample"]
        assert oos["ok"] and oos["result"]["params"] == w["params"]
        assert oos["result"]["ticks"] == 10_800 and Path(oos["db"]).exists()
    total = doc["out_of_sample"]
    assert total["windows"] == 3
    assert total["net_pnl"] == pytest.approx(sum(w["out_of_sample"]["net_pnl"] for w in windows))
    assert total["trades"] == sum(w["out_of_sample"]["trades"] for w in windows) > 0
    assert doc["in_sample"]["net_pnl"] == pytest.approx(
        sum(w["in_sample"]["net_pnl"] for w in windows)
    )
    # a window's test run is the chosen params alone over that stretch's ticks
    from mikrobot_tui.data.feeds.replay import load_ticks

    ticks, symbols = load_ticks(data)
    w2 = windows[1]
    stretch = ticks[21_600:32_400]  # its test stretch: [24h, 36h)
    save_ticks(tmp_path / "w2.npz", stretch, symbols)
    alone = run_json(
        "--db", str(tmp_path / "alone.db"), "backtest", "--data", str(tmp_path / "w2.npz"),
        "--strategy", "ema_cross", *(f"--param={k}={v:g}" for k, v in w2["params"].items()),
    )  # fmt: skip
    for key in SAME:
        assert w2["out_of_sample"]["result"][key] == alone[key], key


def test_a_db_file_name_is_refused_for_a_sweep(hour, tmp_path):
    result = invoke("--db", str(tmp_path / "bt.db"), "backtest", "--data", str(hour), *GRID)
    assert result.exit_code == 2 and "give a folder" in result.stderr
    assert not (tmp_path / "bt.db").exists()


def test_the_jobs_carry_no_secret(tmp_path, monkeypatch):
    from mikrobot_tui.config import load_settings

    monkeypatch.setenv("MIKROBOT_BINANCE__API_KEY", "k-123")
    monkeypatch.setenv("MIKROBOT_BINANCE__API_SECRET", "s-456")

    def settings_for(params, db, replay):
        return load_settings(None, overrides={"engine": {"db": db}})

    assert settings_for({}, tmp_path / "a.db", tmp_path / "t.npz").binance.api_key is not None
    p = sw.plan("ema_cross", [{"fast": 3.0, "slow": 8.0}], settings_for, tmp_path / "t.npz",
                folder=tmp_path, sweep_id="x")  # fmt: skip
    (job,) = p.jobs
    assert job.settings.binance.api_key is None and job.settings.binance.api_secret is None
    assert job.settings.engine.db == tmp_path / "run-001.db"


def test_distributed_is_imported_only_for_cluster():
    """Dask costs start-up time: the CLI and the sweep's engine load it only with --cluster."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import mikrobot_tui.cli, mikrobot_tui.cli.sweep, mikrobot_tui.engine.walk_forward\n"
        "assert not any(m.split('.')[0] in ('dask', 'distributed') for m in sys.modules)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
