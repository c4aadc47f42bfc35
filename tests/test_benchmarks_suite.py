"""`python -m benchmarks`: the harness runs a group in fresh processes and writes its table,
its JSON (the machine named) and the README's markdown. No figure's speed is checked here:
speed is what the benchmarks measure, on a quiet machine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "benchmarks", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_a_quick_group_prints_its_table_and_writes_json_with_the_machine(tmp_path: Path) -> None:
    done = bench("process", "--quick", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    latest = json.loads((tmp_path / "latest.json").read_text())
    dated = [p for p in tmp_path.iterdir() if p.name != "latest.json"]
    assert len(dated) == 1 and json.loads(dated[0].read_text()) == latest
    assert latest["quick"] is True and latest["repeat"] == 1 and latest["groups"] == ["process"]
    machine = latest["machine"]
    assert set(machine) >= {"hostname", "cpu", "cores", "ram_gib", "python", "os"}
    assert machine["cores"] >= 1 and machine["cpu"]
    by_name = {f["name"]: f for f in latest["figures"]}
    wall = by_name["backtest CSV, process start to result"]
    rss = by_name["backtest CSV, peak memory (RSS)"]
    assert wall["value"] > 0 and wall["unit"] == "s" and wall["target"] == 3.0
    assert rss["value"] > 10 and rss["unit"] == "MiB"  # a whole Python with numpy, in MiB
    assert wall["verdict"] in ("pass", "miss") and rss["verdict"] in ("pass", "miss")
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["figure", "value", "unit", "target"]
    assert any(line.startswith("backtest CSV, process start to result") for line in lines)

    shown = bench("--markdown", "--out", str(tmp_path))
    assert shown.returncode == 0, shown.stderr
    assert "| figure | result | target | | machine |" in shown.stdout
    assert machine["hostname"] in shown.stdout and "`--quick`" in shown.stdout
    row = next(r for r in shown.stdout.splitlines() if "peak memory (RSS)" in r)
    short = f"{machine['hostname']}, {machine['cores']} cores"
    assert row.endswith(f"| < 300 | {rss['verdict']} | {short} |")


def test_a_figure_without_a_number_says_why_and_is_neither_pass_nor_miss() -> None:
    sys.path.insert(0, str(ROOT))
    from benchmarks.suite import Figure, number

    missing = Figure("replay", "tick strategy", "n/a (strategy missing)", "ticks/s", 1e6)
    assert missing.verdict == "n/a" and number(missing.value) == "n/a (strategy missing)"
    assert Figure("live", "conflated", 0, "quotes", 0, False).verdict == "pass"
    assert Figure("live", "conflated", 3, "quotes", 0, False).verdict == "miss"
    assert Figure("live", "p99", 999.0, "us", 1000, False).verdict == "pass"
    assert Figure("replay", "rate", 4e6, "ticks/s", 5e6).verdict == "miss"
    assert Figure("replay", "rate", 4e6, "ticks/s", 5e6).target_text == ">= 5,000,000"


def test_an_unknown_group_is_refused_in_one_line(tmp_path: Path) -> None:
    done = bench("replay", "nonsense", "--out", str(tmp_path))
    assert done.returncode == 2
    assert "unknown group ['nonsense']" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "latest.json").exists()
