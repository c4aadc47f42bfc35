"""Settings: config.toml, environment, .env; errors name the key, the value and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from mikrobot_tui.config import ConfigError, load_settings, redacted

REPO = Path(__file__).resolve().parents[1]


def config_error(path: Path) -> str:
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    return str(err.value)


def test_the_shipped_config_toml_is_valid_and_documents_every_setting() -> None:
    s = load_settings(REPO / "config.toml")
    assert s.engine.feed == "sim"
    text = (REPO / "config.toml").read_text()
    from mikrobot_tui.config import SECRET_KEYS

    for section, model in s:
        if section in ("accounts", "feeds"):  # tables shown by example
            continue
        for key in type(model).model_fields:
            if (section, key) in SECRET_KEYS:
                continue
            line = next(ln for ln in text.splitlines() if ln.startswith(f"{key} ="))
            assert "#" in line, f"{section}.{key} has no comment in config.toml"


def test_environment_overrides_the_file_with_nested_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[sim]\nspeed = 2.0\nseed = 11\n")
    monkeypatch.setenv("MIKROBOT_SIM__SPEED", "5")
    s = load_settings(cfg)
    assert s.sim.speed == 5.0
    assert s.sim.seed == 11


def test_dotenv_supplies_secrets_and_they_are_redacted(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("MIKROBOT_BINANCE__API_KEY=abc123secret\n")
    s = load_settings(None)
    assert s.binance.api_key is not None
    assert s.binance.api_key.get_secret_value() == "abc123secret"
    assert "abc123secret" not in str(redacted(s))
    assert "abc123secret" not in repr(s)


def test_a_bad_value_names_key_value_and_what_is_allowed(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[sim]\nspeed = -3\n")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    msg = str(err.value)
    assert "sim.speed" in msg
    assert "-3" in msg
    assert "greater than 0" in msg


def test_unknown_keys_and_symbols_are_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[sim]\nsymbols = ["EURUSD", "DOGEUSD"]\nsped = 1\n')
    msg = config_error(cfg)
    assert "DOGEUSD" in msg
    assert "sim.sped" in msg and "unknown key" in msg


def test_a_secret_in_config_toml_is_refused_with_the_variable_to_use(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[binance]\napi_key = "leaked"\n')
    msg = config_error(cfg)
    assert "MIKROBOT_BINANCE__API_KEY" in msg
    assert "leaked" not in msg


def test_ab_must_name_configured_accounts(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[ab]\na = "A"\nb = "Z"\n')
    msg = config_error(cfg)
    assert "ab.b" in msg and "'Z'" in msg


def test_broken_toml_names_the_problem(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[sim\nspeed = 1\n")
    assert "not valid TOML" in config_error(cfg)


def test_a_missing_config_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_a_negative_seed_is_refused_before_numpy_sees_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[sim]\nseed = -1\n")
    msg = config_error(cfg)
    assert "sim.seed" in msg and "greater than or equal to 0" in msg
    monkeypatch.setenv("MIKROBOT_SIM__SEED", "-5")
    with pytest.raises(ConfigError, match=r"sim\.seed"):
        load_settings(None)


@pytest.mark.parametrize(
    ("name", "value"),
    [("MIKROBOT_SIM__SYMBOLS", "EURUSD"), ("MIKROBOT_ACCOUNTS", "not json")],
)
def test_lists_and_tables_from_the_environment_must_be_json(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as err:
        load_settings(None)
    msg = str(err.value)
    assert name in msg and "JSON" in msg
    assert """MIKROBOT_SIM__SYMBOLS='["EURUSD"]'""" in msg
    assert "Traceback" not in msg and len(msg.splitlines()) <= 3


def test_json_lists_from_the_environment_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIKROBOT_SIM__SYMBOLS", '["EURUSD", "USDJPY"]')
    assert load_settings(None).sim.symbols == ["EURUSD", "USDJPY"]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-8-sig"])
def test_a_config_toml_with_a_byte_order_mark_is_read(tmp_path: Path, encoding: str) -> None:
    cfg = tmp_path / "c.toml"
    text = "[sim]\nspeed = 2.0\n"
    data = text.encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data
    cfg.write_bytes(data)
    assert load_settings(cfg).sim.speed == 2.0


def test_both_readers_of_a_utf16_file_agree_a_secret_is_still_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_bytes('[binance]\napi_key = "leaked"\n'.encode("utf-16"))
    msg = config_error(cfg)
    assert "MIKROBOT_BINANCE__API_KEY" in msg and "leaked" not in msg


@pytest.mark.parametrize(
    "data",
    ["[sim]\nspeed = 2.0\n".encode("utf-16-le"), b"[sim]\nx = '\xe9'\n"],
    ids=["utf-16 without a byte-order mark", "latin-1"],
)
def test_a_config_toml_that_is_not_utf8_names_the_file_and_the_fix(
    tmp_path: Path, data: bytes
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_bytes(data)
    msg = config_error(cfg)
    assert str(cfg) in msg and "save it as UTF-8" in msg


def test_a_config_path_that_is_a_directory_is_an_error(tmp_path: Path) -> None:
    msg = config_error(tmp_path)
    assert str(tmp_path) in msg and "directory" in msg


def test_unknown_environment_variables_are_warnings_naming_the_closest_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIKROBOT_SIM__SPEEED", "3")
    monkeypatch.setenv("MIKROBOT_FOO", "1")
    warnings: list[str] = []
    s = load_settings(None, warn=warnings.append)
    assert s.sim.speed == 1.0
    text = "\n".join(warnings)
    assert "MIKROBOT_SIM__SPEEED" in text and "MIKROBOT_SIM__SPEED" in text
    assert "MIKROBOT_FOO" in text
    assert len(warnings) == 2


def test_dotenv_unknown_keys_warn_and_other_variables_are_left_alone(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("OTHER_TOOL=1\nMIKROBOT_RISK__MAX_POSITION=4\n")
    warnings: list[str] = []
    s = load_settings(None, warn=warnings.append)
    assert s.risk.max_positions == 3
    assert len(warnings) == 1
    assert "MIKROBOT_RISK__MAX_POSITION" in warnings[0] and ".env" in warnings[0]
    assert "MIKROBOT_RISK__MAX_POSITIONS" in warnings[0]


def test_nested_tables_from_the_environment_still_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIKROBOT_ENGINE__CURRENCY_EQUIVALENTS", '{"USDT": "USD"}')
    monkeypatch.setenv("MIKROBOT_RISK__MAX_POSITIONS", "4")
    warnings: list[str] = []
    s = load_settings(None, warn=warnings.append)
    assert s.engine.currency_equivalents == {"USDT": "USD"}
    assert s.risk.max_positions == 4
    assert warnings == []


def test_a_price_jump_factor_of_one_or_less_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[quality]\nmax_price_jump = 1.0\n")
    msg = config_error(cfg)
    assert "quality.max_price_jump" in msg and "greater than 1" in msg
    cfg.write_text("[quality]\nmax_price_jump = 1e9\n")
    assert "less than or equal to 1000000" in config_error(cfg)
