"""A trained model served live: bos_retest with `model` keeps the entries the model rates at or
above its threshold, the probability becomes the orchestrator's signal factor, outcomes teach
the online model, drift away from the training data raises an alert, and a model that is not
there stops the start with the key and the fix."""

from __future__ import annotations

import json
import sqlite3

import pytest
from planted_market import write_planted
from typer.testing import CliRunner

from mikrobot_tui.cli import app
from mikrobot_tui.clock import ReplayClock
from mikrobot_tui.config import ConfigError
from mikrobot_tui.data.feeds import ReplayFeed
from mikrobot_tui.domain.events import EventKind
from mikrobot_tui.engine import Engine
from mikrobot_tui.engine.dataset import build_dataset
from mikrobot_tui.engine.preflight import check_runnable
from mikrobot_tui.engine.runner import Runner
from mikrobot_tui.store.events import read_events
from mikrobot_tui.trading.models import registry
from mikrobot_tui.trading.models.train import train

runner = CliRunner()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A logistic model of tp_first from a market where a grab wins 85%, no grab 35%."""
    folder = tmp_path_factory.mktemp("served")
    data = folder / "train.npz"
    write_planted(data, 160, p_grab=0.85, p_plain=0.35, seed=31)
    dataset = build_dataset([data], work_dir=folder / "runs")
    result = train(dataset, kind="logistic", folds=2)
    models = folder / "models"
    registry.save(result, "grab", models)
    return folder, models


def replay(tmp_path, make_settings, models, data, psi_window=200, **model_params):
    """Accounts A (bos_retest) and M (bos_retest with the model) on the same replay."""
    settings = make_settings(
        engine={"db": tmp_path / "run.db", "store_ticks": False},
        accounts=[
            {"name": "A", "strategy": "bos_retest"},
            {"name": "M", "strategy": "bos_retest", "params": {"model": "grab", **model_params}},
        ],
        ab={"a": "A", "b": "M"},
        models={"dir": str(models), "psi_window": psi_window},
    )
    feed = ReplayFeed(data, batch_size=5_000)
    engine = Engine(settings, feed=feed, clock=ReplayClock())
    Runner(engine).replay(feed.iter_batches())
    return engine


def entries(engine, account):
    return [
        e
        for e in read_events(engine.conn, account=account)
        if e.kind is EventKind.ORDER_SUBMITTED and "parent_id" not in e.payload
    ]


def test_the_model_keeps_the_entries_it_rates_high_and_learns_their_outcomes(
    trained, tmp_path, make_settings
):
    _, models = trained
    data = tmp_path / "live.npz"
    write_planted(data, 60, p_grab=0.85, p_plain=0.35, seed=32)
    engine = replay(tmp_path, make_settings, models, data, threshold=0.5)
    plain, served = entries(engine, "A"), entries(engine, "M")
    strategy = engine.strategies["M"]
    assert len(plain) >= 40
    # the same setups are rated; the model passes some and skips the rest
    assert 0 < len(served) < len(plain) and strategy.filtered > 0
    assert all("model grab gives p=" in e.payload["reason"] for e in served)
    assert all(float(e.payload["reason"].rsplit("p=", 1)[1]) >= 0.5 for e in served)
    # the probability is the strategy's own confidence in the orchestrator's score
    factors = {f["name"]: f for f in served[0].payload["score"]["factors"]}
    assert factors["signal"]["score"] >= 0.5
    scores = engine.models.scores()["M"]
    closed = [
        e
        for e in read_events(engine.conn, account="M")
        if e.kind is EventKind.POSITION_CLOSED
        and e.payload["reason"] in ("take_profit", "stop_loss")
    ]
    assert scores["online"]["updates"] == len(closed) > 0
    assert scores["batch"]["auc"] > 0.6 and scores["drifted"] == []
    engine.close()


def test_the_served_model_s_figures_reach_the_snapshot_and_status(trained, tmp_path, make_settings):
    """The engine's `models` table holds account M's model, its batch score beside the online
    one, the entries it skipped; `status --json` and `status` show the same."""
    _, models = trained
    data = tmp_path / "live.npz"
    write_planted(data, 40, p_grab=0.85, p_plain=0.35, seed=34)
    engine = replay(tmp_path, make_settings, models, data, threshold=0.5)
    score = engine.models.scores()["M"]
    skipped = engine.strategies["M"].filtered
    meta = engine.models.served["M"].meta
    engine.close()
    conn = sqlite3.connect(tmp_path / "run.db")
    (row,) = conn.execute(
        "SELECT account, model, version, kind, label, batch_auc, online_updates, online_auc, "
        "skipped, drifted FROM models"
    ).fetchall()
    conn.close()
    assert row[:5] == ("M", "grab", 1, "logistic", meta["label"])
    assert row[5] == pytest.approx(meta["metrics"]["auc"]) and row[5] > 0.6
    assert row[6] == score["online"]["updates"] > 0
    assert row[7] == pytest.approx(score["online"]["auc"])
    assert row[8] == skipped > 0 and json.loads(row[9]) == []
    out = runner.invoke(app, ["--db", str(tmp_path / "run.db"), "status", "--json"])
    assert out.exit_code == 0, out.output
    (model,) = json.loads(out.stdout)["models"]
    assert model["account"] == "M" and model["model"] == "grab" and model["kind"] == "logistic"
    assert model["batch_auc"] == round(meta["metrics"]["auc"], 4)
    assert model["online_updates"] == row[6] and model["skipped"] == skipped
    assert model["drifted"] == []
    plain = runner.invoke(app, ["--db", str(tmp_path / "run.db"), "status"]).stdout
    (line,) = [x for x in plain.splitlines() if x.startswith("model M:")]
    assert f"grab v1 logistic/{meta['label']}" in line and f"skipped {skipped}" in line
    assert f"over {row[6]} outcomes" in line and line.endswith("drift: none")


def test_entries_unlike_the_training_data_raise_a_drift_alert(trained, tmp_path, make_settings):
    _, models = trained
    data = tmp_path / "wide.npz"
    write_planted(data, 60, seed=33, spread_pips=3.0)  # six times the spread it learnt on
    engine = replay(tmp_path, make_settings, models, data, psi_window=50, threshold=0.0)
    drift = [e for e in read_events(engine.conn) if e.kind is EventKind.MODEL_DRIFT]
    assert drift and drift[0].account == "M" and drift[0].payload["state"] == "drifted"
    assert "spread_atr" in [f["name"] for f in drift[0].payload["features"]]
    alerts = [
        e
        for e in read_events(engine.conn)
        if e.kind is EventKind.ALERT and e.payload["kind"] == "model_drift"
    ]
    assert alerts and alerts[0].payload["severity"] == "warning"
    assert "spread_atr" in alerts[0].payload["text"] and "retrain" in alerts[0].payload["text"]
    told = list(engine.models.served["M"].drift.told)
    engine.close()
    # the snapshot names the features drifted as of its last write, as the pane shows them
    (drifted,) = sqlite3.connect(tmp_path / "run.db").execute("SELECT drifted FROM models")
    assert json.loads(drifted[0]) == told and "spread_atr" in told


def test_a_missing_model_stops_the_start_with_the_key_and_the_fix(trained, tmp_path, make_settings):
    _, models = trained
    settings = make_settings(
        accounts=[{"name": "M", "strategy": "bos_retest", "params": {"model": "nope"}}],
        ab={"a": "M", "b": "M"},
        models={"dir": str(models)},
    )
    with pytest.raises(ConfigError) as caught:
        check_runnable(settings)
    text = str(caught.value)
    assert "accounts[0] (M).params.model" in text and "mikrobot model train" in text
    config = tmp_path / "config.toml"
    config.write_text(
        f'[models]\ndir = "{models}"\n\n[[accounts]]\nname = "M"\nstrategy = "bos_retest"\n'
        'params = { model = "nope" }\n\n[ab]\na = "M"\nb = "M"\n'
    )
    result = runner.invoke(app, ["--config", str(config), "config", "check"])
    assert result.exit_code == 2 and "params.model" in result.stderr


def test_model_list_json_names_the_served_model(trained, tmp_path):
    _, models = trained
    config = tmp_path / "config.toml"
    config.write_text(f'[models]\ndir = "{models}"\n')
    result = runner.invoke(app, ["--config", str(config), "model", "list", "--json"])
    assert result.exit_code == 0
    assert [m["name"] for m in json.loads(result.stdout)] == ["grab"]


def test_once_the_judged_model_is_trained_the_control_runs_beside_a_copy_trading_by_it(
    trained, tmp_path
):
    """No [[experiments]]: the experiment "model" compares [ab] a with account M, the same
    bos_retest trading by the model [models] judge names; without that model, nothing."""
    from mikrobot_tui.config import load_settings

    _, models = trained
    before = load_settings(None, overrides={"models": {"dir": str(models), "judge": "none"}})
    assert [a.name for a in before.accounts] == ["A", "B"]
    assert [e.name for e in before.effective_experiments()] == ["ab"]
    after = load_settings(None, overrides={"models": {"dir": str(models), "judge": "grab"}})
    m = after.accounts[-1]
    assert (m.name, m.strategy, m.params) == ("M", "bos_retest", {"model": "grab"})
    model = after.effective_experiments()[-1]
    assert (model.name, model.variants, model.bandit) == ("model", ["A", "M"], False)


def test_a_model_of_a_market_without_an_effect_is_judged_no_better_live(tmp_path, make_settings):
    """Trained where a grab changes nothing, the model's account and the plain one trade a
    fresh such market; the A/B test of the two finds no difference."""
    data = tmp_path / "flat.npz"
    write_planted(data, 160, p_grab=0.5, p_plain=0.5, seed=41)
    dataset = build_dataset([data], work_dir=tmp_path / "runs")
    result = train(dataset, kind="logistic", folds=2)
    assert 0.35 < result.metrics["auc"] < 0.65
    models = tmp_path / "models"
    registry.save(result, "bos_retest", models)
    live = tmp_path / "live.npz"
    write_planted(live, 120, p_grab=0.5, p_plain=0.5, seed=42)
    settings = make_settings(
        engine={"db": tmp_path / "ab.db", "store_ticks": False},
        accounts=[{"name": "A", "strategy": "bos_retest"}, {"name": "B"}],
        models={"dir": str(models), "judge": "bos_retest"},
    )
    assert [e.name for e in settings.effective_experiments()] == ["ab", "model"]
    feed = ReplayFeed(live, batch_size=5_000)
    engine = Engine(settings, feed=feed, clock=ReplayClock())
    Runner(engine).replay(feed.iter_batches())
    engine.close()
    out = runner.invoke(app, ["--db", str(tmp_path / "ab.db"), "ab", "--json"])
    assert out.exit_code == 0, out.output
    model = next(e for e in json.loads(out.stdout)["experiments"] if e["name"] == "model")
    control, judged = model["variants"]
    assert (control["account"], judged["account"]) == ("A", "M")
    assert control["trades"] >= 50 and judged["trades"] >= 20
    assert judged["verdict"] in ("collecting", "inconclusive")  # never "... better"
    assert judged["always_valid_p"] > 0.05  # no evidence either way
