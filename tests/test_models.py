"""Setup models: walk-forward training finds a real effect and no false one, files keep
their versions, the compiled predictor is sklearn's to 1e-12, drift and the online score."""

from __future__ import annotations

import dataclasses
import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from model_data import HOUR_NS, synthetic
from typer.testing import CliRunner

from mikrobot_tui.cli import app
from mikrobot_tui.trading.models import registry
from mikrobot_tui.trading.models.serve import (
    DriftWatch,
    OnlineModel,
    Predictor,
    psi,
    reference_bins,
)
from mikrobot_tui.trading.models.train import standardise, train, walk_forward_folds

SWEEP = 29  # FEATURE_NAMES.index("sweep")
runner = CliRunner()


@pytest.fixture(scope="module")
def found() -> dict:
    """Each kind trained on 2,000 setups where a sweep lifts the win rate from 0.5 to 0.7."""
    data = synthetic(seed=3)
    return {kind: train(data, kind=kind) for kind in ("gbm", "logistic")}


@pytest.mark.parametrize("kind", ["gbm", "logistic"])
def test_a_real_effect_is_found_out_of_sample(found: dict, kind: str) -> None:
    result = found[kind]
    assert result.metrics["auc"] > 0.55
    bins = result.reliability
    assert len(bins) == 10 and sum(b["count"] for b in bins) == result.metrics["rows"]
    assert bins[-1]["observed_rate"] > bins[0]["observed_rate"] + 0.1
    assert result.importance[0]["feature"] == "sweep"
    # walk-forward: the first block only trains, the rest are each predicted once
    assert result.metrics["rows"] == 2000 - result.folds[0].train_end
    assert result.metrics["log_loss"] < 0.69  # better than a coin flip's ln 2


@pytest.mark.parametrize("kind", ["gbm", "logistic"])
def test_no_effect_gives_no_skill(kind: str) -> None:
    result = train(synthetic(seed=3, effect=False), kind=kind, folds=4)
    assert abs(result.metrics["auc"] - 0.5) < 0.05


def test_folds_train_only_on_earlier_rows_and_never_split_a_time() -> None:
    ts = np.repeat(np.arange(300, dtype=np.int64), 2)  # two setups at every time
    folds = walk_forward_folds(ts, 5)
    assert len(folds) == 5
    assert folds[0].train_end > 0 and folds[-1].test_end == len(ts)
    for before, after in itertools.pairwise(folds):
        assert after.train_end == before.test_end  # expanding: all before the fold
    for fold in folds:
        assert fold.test_start == fold.train_end
        assert ts[fold.train_end - 1] < ts[fold.test_start]  # later rows only in the test


def test_a_model_that_saw_the_future_would_score_here_and_walk_forward_does_not() -> None:
    """The sweep wins in the first 60% of the time and loses afterwards: trained on the
    past, the last fold's model still bets on the sweep and is wrong."""
    data = synthetic(seed=4)
    y = data.features[:, SWEEP].copy()
    y[1200:] = 1 - y[1200:]
    data = dataclasses.replace(data, labels={**data.labels, "tp_first": y})
    result = train(data, kind="logistic", folds=4)
    assert result.fold_metrics[0]["auc"] > 0.9
    assert result.fold_metrics[-1]["auc"] < 0.5


def test_rows_without_an_outcome_are_left_out() -> None:
    data = synthetic(seed=5)
    known = int((~np.isnan(data.labels["retest_held"])).sum())
    result = train(data, label="retest_held", kind="logistic", folds=2)
    assert known < 2000 and result.rows == known


def test_too_few_rows_or_one_outcome_say_what_is_needed() -> None:
    with pytest.raises(ValueError, match=r"50 setups .* needs at least 120"):
        train(synthetic(n=50), kind="logistic")
    data = synthetic(seed=6)
    y = data.labels["tp_first"].copy()
    y[:900] = 0.0
    one_class = dataclasses.replace(data, labels={**data.labels, "tp_first": y})
    with pytest.raises(ValueError, match=r"before fold 1 of 5 are all negative"):
        train(one_class, kind="logistic")
    y[:] = 1.0
    with pytest.raises(ValueError, match=r"at least 10 of each"):
        train(one_class, kind="logistic")
    with pytest.raises(ValueError, match="use one of tp_first"):
        train(data, label="won")


def test_versions_are_saved_listed_and_loaded(found: dict, tmp_path: Path) -> None:
    folder = tmp_path / "models"
    first = registry.save(found["gbm"], "house", folder, extra={"strategy": "bos_retest"})
    second = registry.save(found["logistic"], "house", folder)
    assert first == folder / "house" / "v1.joblib" and second.name == "v2.joblib"
    assert (folder / "house" / "v2.json").exists()
    [entry] = registry.list_models(folder)
    assert (entry.name, entry.versions, entry.latest["kind"]) == ("house", [1, 2], "logistic")
    latest = registry.load("house", directory=folder)
    assert (latest.version, latest.kind) == (2, "logistic")
    old = registry.load("house", 1, directory=folder)
    meta = old.meta
    assert (old.kind, meta["strategy"], meta["label"]) == ("gbm", "bos_retest", "tp_first")
    assert meta["training"]["first_ts"] == "2026-01-01T00:00:00Z"
    assert meta["training"]["last_ts_ns"] - meta["training"]["first_ts_ns"] == 1999 * HOUR_NS
    assert meta["validation"]["folds"] == 5 and len(meta["features"]) == 49
    assert meta["metrics"]["auc"] == pytest.approx(found["gbm"].metrics["auc"])
    sweep = meta["drift"]["sweep"]
    assert sweep["edges"] == [0.0, 1.0]  # two values: bins at or below 0, (0, 1], above, NaN
    assert sweep["shares"][2:] == [0.0, 0.0] and sum(sweep["shares"]) == pytest.approx(1.0)
    with pytest.raises(registry.UnknownModel, match="versions 1, 2; no version 3"):
        registry.load("house", 3, directory=folder)
    with pytest.raises(registry.UnknownModel, match=r"no model 'other'.*models there: house"):
        registry.load("other", directory=folder)
    with pytest.raises(ValueError, match="model name"):
        registry.save(found["gbm"], "../escape", folder)


@pytest.mark.parametrize("kind", ["gbm", "logistic"])
def test_the_compiled_predictor_is_sklearns_to_1e12(found: dict, kind: str, tmp_path) -> None:
    registry.save(found[kind], "m", tmp_path)
    loaded = registry.load("m", directory=tmp_path)
    predictor = Predictor(loaded)
    rng = np.random.default_rng(11)
    x = rng.normal(scale=2.0, size=(500, 49))
    x[rng.random(x.shape) < 0.25] = np.nan
    x[:, SWEEP] = rng.integers(0, 2, 500)
    x[0] = np.nan  # nothing known at all
    expected = loaded.model.predict_proba(x)[:, 1]
    one_by_one = np.array([predictor.probability(row) for row in x])
    assert np.max(np.abs(one_by_one - expected)) < 1e-12
    assert np.max(np.abs(predictor.probabilities(x) - expected)) < 1e-12
    assert len(np.unique(np.round(expected, 6))) > 20  # the rows really take different paths


def test_psi_is_near_zero_for_the_same_market_and_large_for_a_shifted_one() -> None:
    rng = np.random.default_rng(3)
    ref = reference_bins(rng.normal(size=5000))
    assert len(ref["edges"]) == 9 and len(ref["shares"]) == 11
    assert psi(ref, rng.normal(size=2000)) < 0.02
    assert psi(ref, rng.normal(loc=1.0, size=2000)) > 0.25
    gaps = rng.normal(size=2000)
    gaps[:1000] = np.nan  # a feature that went missing half the time
    assert psi(ref, gaps) > 0.25


def test_drift_watch_names_the_feature_that_moved(found: dict) -> None:
    result = found["gbm"]
    watch = DriftWatch(result.reference_bins, result.names, window=200, alert=0.25)
    fresh = synthetic(n=300, seed=9).features
    for row in fresh[:40]:
        watch.add(row)
    assert watch.psi() == {}  # too few setups to judge
    for row in fresh[40:]:
        row = row.copy()
        row[0] += 1.5  # m1_ret_1 moved
        watch.add(row)
    assert len(watch) == 200
    alerts = watch.alerts()
    assert [name for name, _ in alerts] == ["m1_ret_1"], alerts


def test_the_online_model_scores_predictions_made_before_each_outcome() -> None:
    data = synthetic(n=3000, seed=3, rates=(0.2, 0.8))
    x, y = data.features, data.labels["tp_first"]
    online = OnlineModel(standardise(x[:1000]), window=200)
    assert online.probability(x[1000]) == 0.5  # nothing taught yet
    for i in range(1000, 3000):
        online.update(x[i], y[i])
    assert len(online.score) == 200 and online.updates == 2000
    assert online.score.auc() > 0.7
    assert online.score.log_loss() < 0.6

    blank = OnlineModel(standardise(x[:1000]), window=200)
    for i in range(1000, 1200):
        blank.update(x[i], y[i], predicted=0.5)  # the probability given when decided
    assert blank.score.auc() == 0.5  # the given predictions were scored, not the model's own
    assert blank.score.log_loss() == pytest.approx(np.log(2))


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_model_list_and_show_read_the_models_folder_beside_the_database(
    found: dict, tmp_path: Path
) -> None:
    db = str(tmp_path / "x.db")
    empty = invoke("--db", db, "model", "list")
    assert empty.exit_code == 0 and "no models in" in empty.stdout
    registry.save(found["gbm"], "bos_retest", tmp_path / "models", extra={"params": {}})
    registry.save(found["logistic"], "bos_retest", tmp_path / "models")
    listed = invoke("--db", db, "model", "list")
    assert listed.exit_code == 0, listed.output
    assert "bos_retest" in listed.stdout and "v1, v2" in listed.stdout
    assert f"{found['logistic'].metrics['auc']:.3f}" in listed.stdout
    doc = json.loads(invoke("model", "list", "--json", "--db", db).stdout)
    assert doc[0]["versions"] == [1, 2] and "drift" not in doc[0]["latest"]

    shown = invoke("--db", db, "model", "show", "bos_retest", "--version", "1")
    assert shown.exit_code == 0, shown.output
    out = shown.stdout
    assert "gbm on tp_first" in out and "walk-forward, 5 folds" in out
    assert "reliability" in out and "top features" in out and "sweep" in out
    assert f"{found['gbm'].metrics['auc']:.3f}" in out
    assert out.isascii()
    meta = json.loads(invoke("--db", db, "model", "show", "bos_retest", "--json").stdout)
    assert meta["version"] == 2 and meta["kind"] == "logistic" and "drift" not in meta

    unknown = invoke("--db", db, "model", "show", "nope")
    assert unknown.exit_code == 2
    assert unknown.stderr.strip().count("\n") == 0 and "models there: bos_retest" in unknown.stderr
    missing = invoke("--db", db, "model", "show", "bos_retest", "--version", "9")
    assert missing.exit_code == 2 and "no version 9" in missing.stderr


def test_model_train_refuses_a_strategy_without_setups_and_a_missing_file(tmp_path) -> None:
    data = tmp_path / "ticks.csv"
    data.write_text("ts,symbol,bid,ask\n")
    wrong = invoke("model", "train", "--strategy", "ema_cross", "--data", str(data))
    assert wrong.exit_code == 2 and "only bos_retest has setups" in wrong.stderr
    assert wrong.stderr.strip().count("\n") == 0
    gone = invoke("model", "train", "--strategy", "bos_retest", "--data", str(tmp_path / "no"))
    assert gone.exit_code == 2 and "does not exist" in gone.stderr


def test_the_cli_starts_without_importing_scikit_learn() -> None:
    code = "import sys, mikrobot_tui.cli; print(sorted({'sklearn', 'joblib'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
