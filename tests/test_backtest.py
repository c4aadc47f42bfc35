"""`mikrobot backtest`: a generic CSV and a replay .npz through the real engine, read back
through `mikrobot report`; same figures whatever the batching; bad input is one line, exit 2."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from cli_runs import events_of, invoke, run_json
from engine_data import waves

from mikrobot_tui.data.feeds import save_ticks
from mikrobot_tui.engine import backtest as bt
from mikrobot_tui.paper.report import METRIC_KEYS

T0_MS = 1_767_261_600_000  # 2026-01-01 10:00 UTC, a Thursday: the forex market is open
FAST = ["--strategy", "ema_cross", "--param", "fast=3", "--param", "slow=8"]
KEYS = {
    "ticks",
    "bars",
    "fills",
    "trades",
    "load_s",
    "elapsed_s",
    "ticks_per_s",
    "initial_balance",
    "final_equity",
    "net_pnl",
    "metrics",
}


def write_csv(path: Path, n: int = 4000, seed: int = 1) -> Path:
    """EURUSD a tick a second on a five-minute wave with a random walk: EMAs cross often."""
    rng = np.random.default_rng(seed)
    i = np.arange(n)
    mid = 1.1 + 0.002 * np.sin(i / 300 * 2 * np.pi) + np.cumsum(rng.normal(0, 1, n)) * 2e-5
    lines = ["ts,symbol,bid,ask"]
    for k in range(n):
        m = round(float(mid[k]), 5)
        lines.append(f"{T0_MS + k * 1000},EURUSD,{m - 0.00005:.5f},{m + 0.00005:.5f}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_csv_backtest_prints_json_and_report_reads_its_database(tmp_path):
    data = write_csv(tmp_path / "ticks.csv")
    db = tmp_path / "bt.db"
    doc = run_json("--db", str(db), "backtest", "--data", str(data), *FAST)
    assert doc.keys() >= KEYS
    assert doc["ticks"] == 4000 and doc["bars"] >= 60
    assert doc["fills"] >= 2 * doc["trades"] > 0
    assert doc["ticks_per_s"] == pytest.approx(doc["ticks"] / doc["elapsed_s"], rel=1e-3)
    assert doc["initial_balance"] == 10_000.0
    assert doc["net_pnl"] == pytest.approx(doc["final_equity"] - doc["initial_balance"])
    if doc["open_positions"] == 0:  # nothing open: the equity is the balance the report ends at
        assert doc["net_pnl"] == pytest.approx(doc["metrics"]["net_profit"])
    # the metrics are `mikrobot report --json`'s, from the database the backtest wrote
    report = json.loads(invoke("--db", str(db), "report", "--json").stdout)
    assert [r["account"] for r in report] == [bt.ACCOUNT]
    assert report[0]["metrics"] == doc["metrics"]
    assert set(doc["metrics"]) >= set(METRIC_KEYS)
    assert doc["metrics"]["trades"] == doc["trades"]


def test_the_plain_output_is_the_report_table_and_a_temporary_database(tmp_path):
    data = write_csv(tmp_path / "ticks.csv", n=2000)
    result = invoke("backtest", "--data", str(data), *FAST)
    assert result.exit_code == 0, result.output
    assert "net_profit" in result.stdout and "sharpe" in result.stdout
    assert "ticks 2,000" in result.stdout
    found = re.search(r"database: (\S+)", result.stderr)
    assert found is not None, result.stderr
    db = Path(found.group(1))
    assert db.exists() and db.parent != tmp_path
    again = invoke("--db", str(db), "report", "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)[0]["account"] == bt.ACCOUNT
    shutil.rmtree(db.parent)  # the command leaves it for the user: the test cleans up


def test_same_trades_and_metrics_twice_and_whatever_the_batch_size(tmp_path):
    data = write_csv(tmp_path / "ticks.csv")
    runs = []
    for name, batch in (("a", "10000"), ("b", "10000"), ("c", "37"), ("d", "1")):
        db = tmp_path / f"{name}.db"
        doc = run_json(
            "--db", str(db), "backtest", "--data", str(data), *FAST, "--batch-size", batch
        )
        runs.append((doc, events_of(db)))
    first_doc, first_events = runs[0]
    assert first_doc["trades"] > 0
    for doc, events in runs[1:]:
        assert events == first_events
        assert doc["metrics"] == first_doc["metrics"]
        for key in ("ticks", "bars", "fills", "trades", "final_equity", "net_pnl"):
            assert doc[key] == first_doc[key], key


def test_no_costs_zeroes_commission_and_the_slippage_model(tmp_path):
    data = write_csv(tmp_path / "ticks.csv")
    paid = run_json("--db", str(tmp_path / "a.db"), "backtest", "--data", str(data), *FAST)
    free = run_json(
        "--db",
        str(tmp_path / "b.db"),
        "backtest",
        "--data",
        str(data),
        *FAST,
        "--no-costs",
        "--latency-ms",
        "0",
    )
    assert paid["metrics"]["commissions"] > 0 and paid["metrics"]["slippage"] > 0
    assert free["metrics"]["commissions"] == 0 and free["metrics"]["swaps"] == 0
    # what slippage is left is the market moving to a stop's fill, not a cost model
    assert free["metrics"]["slippage"] < paid["metrics"]["slippage"] / 5


def test_balance_currency_and_leverage_reach_the_account(tmp_path):
    data = write_csv(tmp_path / "ticks.csv", n=1500)
    doc = run_json(
        "--db",
        str(tmp_path / "a.db"),
        "backtest",
        "--data",
        str(data),
        *FAST,
        "--balance",
        "50000",
        "--currency",
        "EUR",
        "--leverage",
        "10",
    )
    assert doc["initial_balance"] == 50_000.0 and doc["currency"] == "EUR"


def test_trust_data_keeps_spiky_ticks_in_the_bars(tmp_path):
    """A spike is stored but never builds a bar or fills: --trust-data lets every tick in."""
    n = 3000
    rng = np.random.default_rng(5)
    i = np.arange(n)
    mid = 1.1 + np.cumsum(rng.normal(0, 1, n)) * 1e-5
    mid[500::400] += 0.004  # a lone jump, far beyond 6 sigmas, back on the next tick
    lines = ["ts,symbol,bid,ask"]
    lines += [f"{T0_MS + k * 1000},EURUSD,{mid[k] - 0.00005:.5f},{mid[k] + 0.00005:.5f}" for k in i]
    data = tmp_path / "spiky.csv"
    data.write_text("\n".join(lines) + "\n")
    args = ("backtest", "--data", str(data), *FAST)
    strict = run_json("--db", str(tmp_path / "a.db"), *args)
    trusting = run_json("--db", str(tmp_path / "b.db"), *args, "--trust-data")
    assert strict["rejects"] == trusting["rejects"] == 0  # the validity checks pass them all

    def highs(db: Path) -> float:
        from mikrobot_tui.store.schema import open_db

        conn = open_db(db).conn
        top = conn.execute("SELECT MAX(high) FROM bars WHERE timeframe = 'M1'").fetchone()[0]
        conn.close()
        return top

    assert highs(tmp_path / "b.db") > highs(tmp_path / "a.db") + 0.003


def test_a_replay_npz_backtests_too_and_symbol_picks_one(tmp_path):
    file = tmp_path / "w.npz"
    save_ticks(file, waves(3000), ["EURUSD", "USDJPY"])
    both = run_json("--db", str(tmp_path / "a.db"), "backtest", "--data", str(file), *FAST)
    assert both["ticks"] == 3000
    one = run_json(
        "--db", str(tmp_path / "b.db"), "backtest", "--data", str(file), *FAST, "--symbol", "EURUSD"
    )
    assert one["ticks"] == 1500


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--strategy", "nope"], "unknown strategy 'nope'"),
        (["--strategy", "ema_cross", "--param", "fast=x"], "fast must be a whole number"),
        (["--strategy", "ema_cross", "--param", "fast"], "--param 'fast'"),
        (["--strategy", "ema_cross", "--param", "zz=3"], "unknown param 'zz'"),
        (["--strategy", "ema_cross", "--param", "fast=0"], "fast must be"),
    ],
)
def test_bad_strategy_or_param_is_one_line_exit_2(tmp_path, args, says):
    data = write_csv(tmp_path / "ticks.csv", n=100)
    result = invoke("backtest", "--data", str(data), *args)
    assert result.exit_code == 2
    assert says in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_unreadable_missing_or_bars_files_are_refused_with_exit_2(tmp_path):
    missing = invoke("backtest", "--data", str(tmp_path / "none.csv"), *FAST)
    assert missing.exit_code == 2 and "no such file" in missing.stderr
    junk = tmp_path / "junk.txt"
    junk.write_text("hello\nworld\n")
    unread = invoke("backtest", "--data", str(junk), *FAST)
    assert unread.exit_code == 2 and "unknown format" in unread.stderr
    bars = tmp_path / "EURUSD_M1.csv"
    bars.write_text(
        "<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>\n"
        "2026.01.02\t10:00:00\t1.1\t1.2\t1.0\t1.1\t10\t0\t2\n"
    )
    refused = invoke("backtest", "--data", str(bars), *FAST, "--symbol", "EURUSD")
    assert refused.exit_code == 2 and "a backtest needs ticks" in refused.stderr
    for r in (missing, unread, refused):
        assert len(r.stderr.strip().splitlines()) == 1


def test_a_database_holding_another_run_is_refused(tmp_path):
    data = write_csv(tmp_path / "ticks.csv", n=500)
    db = tmp_path / "a.db"
    assert invoke("--db", str(db), "backtest", "--data", str(data), *FAST).exit_code == 0
    again = invoke("--db", str(db), "backtest", "--data", str(data), *FAST)
    assert again.exit_code == 2 and "another run" in again.stderr


def test_bad_account_terms_are_one_line_naming_the_option_and_leave_no_folder(tmp_path):
    import tempfile

    data = write_csv(tmp_path / "ticks.csv", n=100)
    before = set(Path(tempfile.gettempdir()).glob("mikrobot-backtest-*"))
    result = invoke("backtest", "--data", str(data), *FAST, "--balance", "-5", "--leverage", "0")
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1 and "--balance" in line and "--leverage" in line
    assert set(Path(tempfile.gettempdir()).glob("mikrobot-backtest-*")) == before


def test_an_mt5_tick_export_needs_its_symbol(tmp_path):
    rng = np.random.default_rng(3)
    mid = 1.1 + 0.002 * np.sin(np.arange(1500) / 300 * 2 * np.pi)
    mid += np.cumsum(rng.normal(0, 1, 1500)) * 2e-5
    lines = ["<DATE>\t<TIME>\t<BID>\t<ASK>\t<LAST>\t<VOLUME>\t<FLAGS>"]
    for k in range(1500):
        s = 10 * 3600 + k
        stamp = f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}.000"
        lines.append(f"2026.01.02\t{stamp}\t{mid[k] - 5e-5:.5f}\t{mid[k] + 5e-5:.5f}\t\t\t6")
    data = tmp_path / "EURUSD_ticks.csv"
    data.write_text("\r\n".join(lines) + "\r\n")
    nameless = invoke("backtest", "--data", str(data), *FAST)
    assert nameless.exit_code == 2 and "--symbol" in nameless.stderr
    doc = run_json(
        "--db", str(tmp_path / "a.db"), "backtest", "--data", str(data), *FAST, "--symbol", "EURUSD"
    )
    assert doc["ticks"] == 1500 and doc["symbols"] == ["EURUSD"] and doc["bars"] >= 25
