"""`mikrobot ab`: each experiment's variants as the engine last wrote them, read-only."""

from __future__ import annotations

import json

import pytest
from tui_fixtures import build_fixture_db
from typer.testing import CliRunner

from mikrobot_tui.cli import app

runner = CliRunner()

VARIANT_KEYS = {
    "variant",
    "account",
    "params",
    "trades",
    "wins",
    "win_rate",
    "mean",
    "mean_ci",
    "diff",
    "diff_ci",
    "welch_p",
    "welch",
    "always_valid_p",
    "share",
    "verdict",
    "reason",
}


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_ab_json_has_every_experiment_with_its_variants(tmp_path) -> None:
    db = build_fixture_db(tmp_path / "fixture.db")
    result = invoke("--db", str(db.path), "ab", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert set(doc) == {"as_of_ts", "experiments"}
    assert doc["as_of_ts"] == db.now_ns
    (e,) = doc["experiments"]
    assert set(e) == {"name", "metric", "control", "alpha", "bandit", "tests", "ci", "variants"}
    assert (e["name"], e["metric"], e["control"], e["bandit"]) == ("ab", "r", "bos-a", True)
    assert e["ci"] == {
        "method": "percentile_bootstrap",
        "level": 0.975,
        "seed": 7,
        "resamples": 10_000,
    }
    assert e["tests"]["decides"] == "msprt"
    assert [v["variant"] for v in e["variants"]] == ["A", "B", "C"]
    for v in e["variants"]:
        assert set(v) == VARIANT_KEYS
    a, b, _ = e["variants"]
    assert a["verdict"] == "control" and a["diff"] is None and a["welch_p"] is None
    assert b["diff_ci"] == [-0.61, 0.22] and b["welch_p"] == 0.347
    assert b["always_valid_p"] == 1.0 and b["share"] == 0.30
    assert sum(v["share"] for v in e["variants"]) == pytest.approx(1.0)


def test_ab_plain_says_the_methods_and_the_verdicts(tmp_path) -> None:
    db = build_fixture_db(tmp_path / "fixture.db")
    out = invoke("--db", str(db.path), "ab").output
    assert "percentile_bootstrap 97.5% seed 7" in out
    assert "B bos-b: 27 trades" in out and "always-valid p 1" in out
    assert "collecting (bos-a has 31 and bos-b 27 trades; 100 each are needed)" in out
    out.encode("ascii")


def test_ab_without_a_database_says_so(tmp_path) -> None:
    result = invoke("--db", str(tmp_path / "none.db"), "ab")
    assert result.exit_code == 1
    assert "no database" in result.output
