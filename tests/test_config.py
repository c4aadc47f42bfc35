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
    for section, model in s:
        if section in ("binance", "mt5", "accounts"):
            continue
        for key in type(model).model_fields:
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


def test_a_price_jump_factor_of_one_or_less_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[quality]\nmax_price_jump = 1.0\n")
    msg = config_error(cfg)
    assert "quality.max_price_jump" in msg and "greater than 1" in msg
    cfg.write_text("[quality]\nmax_price_jump = 1e9\n")
    assert "less than or equal to 1000000" in config_error(cfg)
