"""The CLI through typer's runner: configuration, status and remote control without an engine."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from engine_data import FAST_ACCOUNTS, replay, waves
from tui_fixtures import SECOND, build_fixture_db, set_engine
from typer.testing import CliRunner

from mikrobot_tui.cli import app

runner = CliRunner()


def invoke(*args: str, **kw):
    return runner.invoke(app, list(args), catch_exceptions=False, **kw)


def test_help_lists_the_contract() -> None:
    out = invoke("--help").output
    for word in ("run", "status", "halt", "resume", "flatten", "config", "--attach", "--db"):
        assert word in out


def test_config_check_passes_on_defaults_and_show_redacts_secrets(monkeypatch) -> None:
    monkeypatch.setenv("MIKROBOT_BINANCE__API_SECRET", "hunter2-very-secret")
    result = invoke("config", "check")
    assert result.exit_code == 0 and "configuration ok" in result.output
    shown = invoke("config", "show").output
    assert "hunter2" not in shown
    assert json.loads(shown)["binance"]["api_secret"] == "**********"


def test_a_bad_config_exits_2_naming_the_key_and_the_fix(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[risk]\nrisk_per_trade = 3\n")
    result = invoke("--config", str(cfg), "config", "check")
    assert result.exit_code == 2
    assert "risk.risk_per_trade" in result.output and "less than or equal to 0.1" in result.output


def test_bad_strategy_params_are_a_config_error_too(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(
        '[[accounts]]\nname = "A"\nparams = { fast = 30, slow = 10 }\n[[accounts]]\nname = "B"\n'
    )
    result = invoke("--config", str(cfg), "run", "--headless", "--duration", "1")
    assert result.exit_code == 2
    assert "accounts[0] (A).params" in result.output


def test_commands_say_plainly_when_no_engine_is_running(tmp_path: Path) -> None:
    result = invoke("--db", str(tmp_path / "none.db"), "halt")
    assert result.exit_code == 1
    assert "no engine has run here" in result.output
    replay_db = tmp_path / "r.db"
    invoke("--db", str(replay_db), "config", "check")
    from mikrobot_tui.store.schema import open_db

    open_db(replay_db).conn.close()
    result = invoke("--db", str(replay_db), "flatten", "--yes")
    assert result.exit_code == 1
    assert "no engine is running" in result.output


def test_status_json_has_the_documented_keys_after_a_run(make_settings, tmp_path, db_path) -> None:
    settings = make_settings(accounts=FAST_ACCOUNTS)
    replay(settings, waves(3000), tmp_path / "s", batch=1000).close()
    result = invoke("--db", str(db_path), "status", "--json")
    assert result.exit_code == 0
    doc = json.loads(result.output)
    assert doc["engine"]["running"] is False
    assert {"running", "mode", "trading_state"} <= doc["engine"].keys()
    assert doc["engine"]["mode"] == "REPLAY"
    assert {s["symbol"] for s in doc["symbols"]} == {"EURUSD", "USDJPY"}
    assert {"symbol", "bid", "ask", "ts", "quality"} <= doc["symbols"][0].keys()
    assert {"name", "balance", "equity"} <= doc["accounts"][0].keys()
    assert {"name", "state", "failures"} <= doc["breakers"][0].keys()
    for p in doc["positions"]:
        assert {
            "account",
            "symbol",
            "side",
            "quantity",
            "entry_price",
            "unrealized_pnl",
        } <= p.keys()
    assert [v["variant"] for v in doc["ab"]] == ["A", "B"]
    plain = invoke("--db", str(db_path), "status").output
    assert "engine: not running" in plain and "EURUSD" in plain
    plain.encode("ascii")


def symbol_lines(plain: str) -> dict[str, list[str]]:
    return {
        line.split()[0]: line.split()
        for line in plain.splitlines()
        if line[:6] in ("EURUSD", "GBPUSD", "USDJPY", "XAUUSD", "BTCUSD", "ETHUSD")
    }


@pytest.mark.parametrize("how", ["stopped", "killed"])
def test_status_without_an_engine_dates_its_figures(how, tmp_path) -> None:
    """Figures an engine left behind are labelled with their time, never presented as live.

    "stopped": it wrote running=0 on its way out; "killed" (kill -9): the row still says
    running=1 but the heartbeat is old and nobody refreshes it.
    """
    written = time.time_ns() - 300 * SECOND
    db = build_fixture_db(tmp_path / "gone.db", now_ns=written)
    from mikrobot_tui.store.schema import connect

    conn = connect(db.path)
    set_engine(conn, written, running=how == "killed")
    conn.close()

    doc = json.loads(invoke("--db", str(db.path), "status", "--json").output)
    assert doc["stale"] is True
    assert doc["as_of_ts"] == written == doc["engine"]["heartbeat_ts"]
    assert doc["engine"]["running"] is False
    # the contract: every key stays, the figures are those of `as_of_ts`
    assert {"engine", "symbols", "quality", "accounts", "positions", "breakers", "ab"} <= set(doc)
    assert {s["symbol"]: s["quality"] for s in doc["symbols"]}["EURUSD"] == 0.99

    plain = invoke("--db", str(db.path), "status").output
    plain.encode("ascii")
    lines = plain.splitlines()
    assert lines[0].startswith("engine: not running")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(written / 1e9))
    assert lines[1].startswith(f"as of {when} UTC (5 min ago)")
    assert "not live" in plain
    rows = symbol_lines(plain)
    assert set(rows) == {"EURUSD", "GBPUSD", "USDJPY", "XAUUSD", "BTCUSDT", "ETHUSDT"}
    assert all(cells[-1] == "-" for cells in rows.values()), "no score is shown as current"


def test_status_of_a_running_engine_is_live(tmp_path) -> None:
    db = build_fixture_db(tmp_path / "live.db", now_ns=time.time_ns())
    doc = json.loads(invoke("--db", str(db.path), "status", "--json").output)
    assert doc["stale"] is False
    assert doc["as_of_ts"] == doc["engine"]["heartbeat_ts"]
    plain = invoke("--db", str(db.path), "status").output
    assert plain.startswith("engine: running")
    assert "not live" not in plain and "as of" not in plain
    assert symbol_lines(plain)["EURUSD"][-1] == "0.99"


@pytest.mark.parametrize("args", [["status"], ["halt"], ["resume"]])
def test_a_missing_database_is_a_clear_runtime_error(args, tmp_path) -> None:
    result = invoke("--db", str(tmp_path / "missing.db"), *args)
    assert result.exit_code == 1
    assert "mikrobot run --headless" in result.output


def test_a_broken_replay_file_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "ticks.npz"
    bad.write_bytes(b"not a zip file")
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[engine]\nfeed = "replay"\n[replay]\nfile = "{bad}"\n')
    result = invoke("--config", str(cfg), "run", "--headless", "--duration", "1")
    assert result.exit_code == 2
    assert "replay.file" in result.output and "cannot be read" in result.output


def test_replaying_an_older_file_into_a_used_database_is_refused(
    make_settings, tmp_path, db_path
) -> None:
    from mikrobot_tui.data.feeds import save_ticks

    ticks = waves(2000)
    replay(make_settings(accounts=FAST_ACCOUNTS), ticks[1000:], tmp_path / "late", 500).close()
    early = tmp_path / "early.npz"
    save_ticks(early, ticks[:1000], ["EURUSD", "USDJPY"])
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[engine]\nfeed = "replay"\n[replay]\nfile = "{early}"\n')
    result = invoke("--config", str(cfg), "--db", str(db_path), "run", "--headless")
    assert result.exit_code == 2
    assert "before the last event" in result.output and "--db" in result.output
