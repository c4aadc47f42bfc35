"""The CLI through typer's runner: configuration, status and remote control without an engine."""

from __future__ import annotations

import json
import math
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
    words = ("run", "status", "halt", "resume", "reduce", "flatten", "cancel", "modify", "config")
    words += ("alerts", "decisions")
    for word in (*words, "--attach", "--db"):
        assert word in out


def test_strategies_lists_each_parameter_with_its_type_default_and_range() -> None:
    listed = json.loads(invoke("strategies", "--json").output)
    ema = next(s for s in listed if s["name"] == "ema_cross")
    fast = next(p for p in ema["params"] if p["name"] == "fast")
    assert (fast["type"], fast["default"], fast["low"], fast["high"]) == ("int", 5, 1, 500)
    plain = invoke("strategies").output
    assert "ema_cross" in plain and "whole number in [1, 500], default 5" in plain


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


@pytest.mark.parametrize("args", [["status"], ["halt"], ["resume"], ["reduce"]])
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


CHECK = ["config", "check"]
RUN = ["run", "--headless", "--duration", "1"]
BAD_PARAMS = (
    '[[accounts]]\nname = "A"\nparams = { fast = 30, slow = 10 }\n[[accounts]]\nname = "B"\n',
    '[[accounts]]\nname = "A"\nparams = { fats = 3 }\n[[accounts]]\nname = "B"\n',
)


@pytest.mark.parametrize("toml", BAD_PARAMS, ids=["fast above slow", "unknown param"])
@pytest.mark.parametrize("command", [CHECK, RUN], ids=["config check", "run"])
def test_config_check_and_run_refuse_the_same_strategy_params(
    tmp_path: Path, toml: str, command: list[str]
) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(toml)
    result = invoke("--config", str(cfg), *command)
    assert result.exit_code == 2
    assert "accounts[0] (A).params" in result.stderr


@pytest.mark.parametrize("command", [CHECK, RUN], ids=["config check", "run"])
def test_config_check_and_run_refuse_a_missing_replay_file(
    tmp_path: Path, command: list[str]
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[engine]\nfeed = "replay"\n[replay]\nfile = "{tmp_path / "nope.npz"}"\n')
    result = invoke("--config", str(cfg), *command)
    assert result.exit_code == 2
    assert "replay.file" in result.stderr and "does not exist" in result.stderr


@pytest.mark.parametrize("command", [CHECK, RUN], ids=["config check", "run"])
def test_a_database_in_a_missing_directory_is_refused_naming_it(
    tmp_path: Path, command: list[str]
) -> None:
    missing = tmp_path / "nope" / "dir"
    result = invoke("--db", str(missing / "x.db"), *command)
    assert result.exit_code == 2
    assert "engine.db" in result.stderr and str(missing) in result.stderr
    assert "mkdir" in result.stderr
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[engine]\ndb = "{missing / "x.db"}"\n')
    assert invoke("--config", str(cfg), *command).exit_code == 2


def test_bad_environment_and_config_files_exit_2_without_a_traceback(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("MIKROBOT_SIM__SYMBOLS", "EURUSD")
    result = invoke("config", "check")
    assert result.exit_code == 2 and "MIKROBOT_SIM__SYMBOLS" in result.stderr
    monkeypatch.delenv("MIKROBOT_SIM__SYMBOLS")
    result = invoke("--config", str(tmp_path), "config", "check")
    assert result.exit_code == 2 and "is a directory" in result.stderr
    u16 = tmp_path / "u16.toml"
    u16.write_bytes("[sim]\nspeed = 2.0\n".encode("utf-16-le"))
    result = invoke("--config", str(u16), "config", "check")
    assert result.exit_code == 2 and "save it as UTF-8" in result.stderr


def test_an_unknown_environment_variable_is_a_warning_on_stderr(monkeypatch) -> None:
    monkeypatch.setenv("MIKROBOT_SIM__SPEEED", "3")
    result = invoke("config", "check")
    assert result.exit_code == 0 and "configuration ok" in result.stdout
    assert result.stderr.startswith("warning: MIKROBOT_SIM__SPEEED")
    assert "MIKROBOT_SIM__SPEED?" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_config_check_refuses_accounts_the_database_holds_with_other_params(
    make_settings, tmp_path, db_path
) -> None:
    replay(make_settings(accounts=FAST_ACCOUNTS), waves(400), tmp_path / "s", batch=200).close()
    cfg = tmp_path / "c.toml"
    cfg.write_text('[[accounts]]\nname = "A"\nparams = { fast = 5, slow = 20 }\n[ab]\nb = "A"\n')
    for command in (CHECK, RUN):
        result = invoke("--config", str(cfg), "--db", str(db_path), *command)
        assert result.exit_code == 2, result.output
        assert "accounts[0] (A)" in result.stderr and "new name" in result.stderr


def all_commands():
    """Every command of the app as its argument path, e.g. ["config", "check"]."""
    from mikrobot_tui.cli import command

    def walk(group, path):
        for name, sub in group.commands.items():
            if hasattr(sub, "commands"):
                yield from walk(sub, [*path, name])
            else:
                yield [*path, name], sub

    return list(walk(command(), []))


def test_help_shows_flags_as_flags_and_h_is_help() -> None:
    for args in (["--help"], ["-h"], ["run", "--help"], ["run", "-h"], ["config", "-h"]):
        result = invoke(*args)
        assert result.exit_code == 0, args
        assert "Usage:" in result.output
        assert "<bool>" not in result.output and "BOOLEAN" not in result.output
    run_help = invoke("run", "-h").output
    assert "--headless" in run_help
    for path, _ in all_commands():
        assert invoke(*path, "-h").exit_code == 0, path
    bare = invoke("config")  # a group without its command shows the group's help
    assert "Usage:" in bare.output and "error:" not in bare.output


def test_a_flag_given_a_value_is_a_one_line_usage_error() -> None:
    result = invoke("run", "--headless", "true")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "--headless" in lines[0] and "takes no value" in lines[0]
    bogus = invoke("status", "--bogus")
    assert bogus.exit_code == 2 and len(bogus.stderr.strip().splitlines()) == 1
    assert "--bogus" in bogus.stderr and "mikrobot status --help" in bogus.stderr


def test_version_prints_the_package_version() -> None:
    from mikrobot_tui import __version__

    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"mikrobot {__version__}"


def test_every_command_takes_the_global_options_after_it_too(tmp_path: Path) -> None:
    for path, cmd in all_commands():
        opts = {o for p in cmd.params for o in p.opts}
        assert {"--db", "--config"} <= opts, path
    result = invoke("status", "--db", str(tmp_path / "after.db"))
    assert result.exit_code == 1 and str(tmp_path / "after.db") in result.stderr
    result = invoke("--db", str(tmp_path / "before.db"), "status", "--db", str(tmp_path / "b.db"))
    assert str(tmp_path / "b.db") in result.stderr and "before.db" not in result.stderr
    cfg = tmp_path / "c.toml"
    cfg.write_text("[sim]\nspeed = 7.0\n")
    shown = invoke("config", "show", "--config", str(cfg))
    assert json.loads(shown.stdout)["sim"]["speed"] == 7.0


def test_flatten_checks_for_an_engine_before_asking(tmp_path: Path) -> None:
    result = invoke("--db", str(tmp_path / "none.db"), "flatten", input="y\n")
    assert result.exit_code == 1
    assert "no engine has run here" in result.stderr
    assert "Close every" not in result.output
    from mikrobot_tui.store.schema import open_db

    open_db(tmp_path / "idle.db").conn.close()
    result = invoke("--db", str(tmp_path / "idle.db"), "flatten", input="y\n")
    assert result.exit_code == 1 and "no engine is running" in result.stderr
    assert "Close every" not in result.output


def test_status_json_rounds_prices_money_and_scores(make_settings, tmp_path, db_path) -> None:
    from mikrobot_tui.domain.instruments import default_instruments, step_decimals

    settings = make_settings(accounts=FAST_ACCOUNTS)
    replay(settings, waves(3000), tmp_path / "s", batch=1000).close()
    doc = json.loads(invoke("--db", str(db_path), "status", "--json").stdout)
    inst = default_instruments()

    def decimals(x: float) -> int:
        text = repr(x)
        return 0 if "." not in text else len(text.split(".")[1])

    for s in doc["symbols"]:
        d = step_decimals(inst[s["symbol"]].tick_size)
        assert decimals(s["bid"]) <= d and decimals(s["ask"]) <= d
        assert decimals(s["spread_pips"]) <= 1 and decimals(s["change_pct"]) <= 4
        assert all(decimals(x) <= d + 1 for x in s["spark"])
    for a in doc["accounts"]:
        for key in ("balance", "equity", "realized_pnl", "unrealized_pnl"):
            assert decimals(a[key]) <= 2
    parts = ("validity", "spikes_part", "gaps_part", "latency_part", "completeness")
    for q in doc["quality"]:
        assert decimals(q["score"]) <= 4 and decimals(q["latency_ms"]) <= 2
        # the score's parts, per symbol (issue 9): their product is the score
        assert all(decimals(q[k]) <= 4 for k in parts) and decimals(q["expected_ticks"]) <= 1
        assert math.prod(q[k] for k in parts) == pytest.approx(q["score"], abs=3e-4)
        assert isinstance(q["window_ticks"], int)
        assert {"latency_cp", "latency_cpk"} <= q.keys()  # issue 9: latency's capability
        assert q["latency_cpk"] is None or decimals(q["latency_cpk"]) <= 2
        # the M1 bars' completeness over the last hour; `completeness` is at most it
        assert decimals(q["bar_completeness"]) <= 4 and decimals(q["expected_bars"]) <= 1
        assert isinstance(q["window_bars"], int)
        assert q["completeness"] <= q["bar_completeness"]
    for p in doc["positions"]:
        d = step_decimals(inst[p["symbol"]].tick_size)
        assert decimals(p["entry_price"]) <= d and decimals(p["unrealized_pnl"]) <= 2
    assert doc["positions"] or doc["accounts"][0]["trades"]  # the run traded
    floats: list[str] = []
    raw = invoke("--db", str(db_path), "status", "--json").stdout
    json.loads(raw, parse_float=lambda text: floats.append(text) or float(text))
    assert floats and not [f for f in floats if "0000000" in f or "9999999" in f]


# ------------------------------------------------------------ --db that cannot be a database

DB_COMMANDS = [
    RUN,
    ["status"],
    ["status", "--json"],
    ["halt"],
    ["resume"],
    ["reduce"],
    ["flatten"],
    CHECK,
]
DB_IDS = ["run", "status", "status --json", "halt", "resume", "reduce", "flatten", "config check"]


def not_a_database(tmp_path: Path, kind: str) -> Path:
    if kind == "directory":
        path = tmp_path / "a-directory"
        path.mkdir()
    else:
        path = tmp_path / "notes.txt"
        path.write_text("these are my notes, not a database\n")
    return path


def assert_one_line_naming(result, path: Path, problem: str, code: int = 2) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and "unexpected error" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(path) in lines[0] and problem in lines[0]


@pytest.mark.parametrize("kind", ["directory", "text file"])
@pytest.mark.parametrize("command", DB_COMMANDS, ids=DB_IDS)
def test_a_db_path_that_cannot_be_a_database_is_one_line_exit_2(
    tmp_path: Path, kind: str, command: list[str]
) -> None:
    path = not_a_database(tmp_path, kind)
    result = invoke("--db", str(path), *command, input="y\n")
    problem = "is a directory" if kind == "directory" else "is not an SQLite database"
    assert_one_line_naming(result, path, problem)
    if kind == "text file":
        assert path.read_text().startswith("these are my notes")  # untouched


@pytest.fixture
def read_only(tmp_path: Path):
    """Make a file or directory read-only for real. Root writes through chmod 444, so as root
    the immutable attribute (chattr +i) is used instead; skip where neither works."""
    import os
    import shutil
    import subprocess

    made: list[Path] = []

    def make(path: Path) -> Path:
        if os.geteuid() != 0:
            path.chmod(0o555 if path.is_dir() else 0o444)
        else:
            chattr = shutil.which("chattr")
            done = chattr and subprocess.run([chattr, "+i", str(path)], capture_output=True)
            if not done or done.returncode != 0:
                pytest.skip("running as root without chattr +i: cannot make a file read-only")
        made.append(path)
        return path

    yield make
    for path in made:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(path)], capture_output=True)
        path.chmod(0o755 if path.is_dir() else 0o644)


@pytest.mark.parametrize("command", [RUN, ["halt"], ["flatten", "--yes"], CHECK], ids=str)
def test_a_read_only_database_is_one_line_exit_2(read_only, tmp_path, command) -> None:
    from mikrobot_tui.store.schema import open_db

    db = tmp_path / "ro.db"
    open_db(db).conn.close()
    read_only(db)
    assert_one_line_naming(invoke("--db", str(db), *command), db, "read-only")


@pytest.mark.parametrize("command", [RUN, CHECK], ids=str)
def test_a_database_in_a_read_only_directory_is_one_line_exit_2(
    read_only, tmp_path, command
) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    read_only(folder)
    result = invoke("--db", str(folder / "new.db"), *command)
    assert_one_line_naming(result, folder, "not writable")


def test_status_reads_a_read_only_database_or_says_why_in_one_line(read_only, tmp_path) -> None:
    from mikrobot_tui.store.schema import open_db

    db = tmp_path / "ro.db"
    open_db(db).conn.close()
    read_only(db)
    result = invoke("--db", str(db), "status")
    if result.exit_code != 0:
        assert_one_line_naming(result, db, "read-only")


def test_an_unexpected_error_is_one_line_naming_a_file_with_the_traceback(capsys) -> None:
    from mikrobot_tui.cli.common import last_resort

    with pytest.raises(SystemExit) as stopped, last_resort():
        raise RuntimeError("boom")
    assert stopped.value.code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "RuntimeError: boom" in err
    crash = Path(err.split("the details are in ")[1].split(";")[0])
    assert "Traceback" in crash.read_text() and "boom" in crash.read_text()
    crash.unlink()


def test_status_json_lists_each_feed_connection_with_the_documented_keys(
    make_settings, tmp_path, db_path
) -> None:
    engine = replay(make_settings(accounts=FAST_ACCOUNTS), waves(2000), tmp_path / "f", batch=500)
    engine.close()
    doc = json.loads(invoke("--db", str(db_path), "status", "--json").output)
    (feed,) = doc["feeds"]
    assert set(feed) >= {
        "name",
        "venue",
        "state",
        "reconnects",
        "last_message_age_s",
        "msgs_per_s",
        "latency_ms_p50",
        "latency_ms_p99",
        "conflated",
    }
    assert feed["venue"] == "replay" and feed["reconnects"] == 0


def test_decisions_lists_the_newest_first_with_their_factors(tmp_path) -> None:
    db = build_fixture_db(tmp_path / "d.db", now_ns=time.time_ns())
    out = invoke("--db", str(db.path), "decisions", "--factors").output
    out.encode("ascii")
    lines = [ln for ln in out.splitlines() if not ln.startswith("    ")]
    assert [ln.split()[4] for ln in lines] == ["XAUUSD", "USDJPY", "GBPUSD", "EURUSD"]
    assert "refused" in lines[0] and "at max positions (3/3)" in lines[0]
    assert "resized 0.41 lots  confidence 0.62" in lines[1]
    assert out.count("    trend    score") == 4
    doc = json.loads(invoke("--db", str(db.path), "decisions", "--json", "-n", "2").output)
    first = doc["decisions"][0]
    assert [d["symbol"] for d in doc["decisions"]] == ["XAUUSD", "USDJPY"]
    assert {"outcome", "verdict", "confidence", "factors", "reason"} <= set(first)
    assert first["factors"][0]["name"] == "trend"
