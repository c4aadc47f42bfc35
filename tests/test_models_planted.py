"""`mikrobot model train` end to end on generated markets: the real engine replays them, the
dataset builder labels every entry, the trainer validates walk-forward. Where a liquidity grab
before the break planted an effect on the take-profit, the model finds it out of sample and
its reliability table shows the lift; where nothing was planted, it finds no skill."""

from __future__ import annotations

import json

import pytest
from planted_market import write_planted
from typer.testing import CliRunner

from mikrobot_tui.cli import app

runner = CliRunner()


def train(tmp_path, data, *extra: str):
    args = ["--db", str(tmp_path / "m.db"), "model", "train", "--strategy", "bos_retest"]
    result = runner.invoke(app, [*args, "--data", str(data), *extra], catch_exceptions=False)
    return result


@pytest.fixture(scope="module")
def markets(tmp_path_factory):
    folder = tmp_path_factory.mktemp("markets")
    planted = folder / "planted.npz"
    write_planted(planted, 220, p_grab=0.85, p_plain=0.35, seed=21)
    flat = folder / "flat.npz"
    write_planted(flat, 220, p_grab=0.55, p_plain=0.55, seed=22)
    return planted, flat


def test_a_planted_effect_is_found_out_of_sample_and_the_model_is_saved(markets, tmp_path):
    planted, _ = markets
    result = train(tmp_path, planted, "--model", "logistic", "--folds", "3", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["label"] == "tp_first" and doc["kind"] == "logistic"
    assert doc["metrics"]["rows"] >= 100  # out of sample: the folds after the first
    assert doc["metrics"]["auc"] > 0.65  # a grab wins 85% of the time, no grab 35%
    table = doc["reliability"]
    counted = [b for b in table if b["count"]]
    assert counted[-1]["observed_rate"] > counted[0]["observed_rate"] + 0.3  # the lift, bin to bin
    assert (tmp_path / "models" / "bos_retest" / "v1.joblib").exists()
    shown = runner.invoke(app, ["--db", str(tmp_path / "m.db"), "model", "show", "bos_retest"])
    assert shown.exit_code == 0 and "walk-forward" in shown.stdout


def test_no_planted_effect_gives_no_skill(markets, tmp_path):
    _, flat = markets
    result = train(tmp_path, flat, "--model", "logistic", "--folds", "3", "--json")
    assert result.exit_code == 0, result.output
    auc = json.loads(result.stdout)["metrics"]["auc"]
    assert 0.35 < auc < 0.65  # ~150 outcomes: AUC's standard error is about 0.05


def test_a_market_where_every_entry_wins_has_nothing_to_learn(tmp_path):
    data = tmp_path / "wins.npz"
    write_planted(data, 30, p_grab=1.0, p_plain=1.0)
    result = train(tmp_path, data, "--folds", "2")
    assert result.exit_code == 2
    assert "tp_first" in result.stderr and len(result.stderr.strip().splitlines()) == 1
