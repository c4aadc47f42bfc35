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
        if section in ("accounts", "feeds", "experiments"):  # tables shown by example
            continue
        for key in type(model).model_fields:
            if (section, key) in SECRET_KEYS:
                continue
            line = next(
                ln
                for ln in text.splitlines()
                if ln.startswith((f"{key} =", f"[{section}.{key}]"))  # a key or a table
            )
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


def test_the_alert_webhook_url_is_a_secret_read_from_the_environment_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[alerts]\nwebhook_url = "https://api.telegram.org/bot123:tok/sendMessage"\n')
    msg = config_error(cfg)
    assert "MIKROBOT_ALERTS__WEBHOOK_URL" in msg and "tok" not in msg
    cfg.write_text('[alerts]\nwebhook_format = "telegram"\ntelegram_chat_id = "-100"\n')
    monkeypatch.setenv("MIKROBOT_ALERTS__WEBHOOK_URL", "https://api.telegram.org/bot1:tok/x")
    monkeypatch.setenv("MIKROBOT_ALERTS__WEBHOOK_SECRET", "k")
    s = load_settings(cfg)
    assert s.alerts.webhook_url is not None and "tok" not in str(redacted(s))
    assert s.alerts.webhook_secret is not None and s.alerts.webhook_format == "telegram"
    monkeypatch.delenv("MIKROBOT_ALERTS__WEBHOOK_URL")
    assert load_settings(cfg).alerts.webhook_url is None  # no URL: no webhook


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


def test_paper_and_account_defaults_of_the_venue_and_its_costs() -> None:
    s = load_settings(None)
    p = s.paper
    assert (p.latency_ms, p.latency_model, p.latency_max_ms) == (50.0, "uniform", 200.0)
    assert (p.latency_sigma, p.latency_seed, p.touch_fills) == (0.5, 7, False)
    assert (p.slippage_spread, p.slippage_volatility, p.impact_k) == (0.1, 0.05, 0.5)
    assert p.liquidity["forex"].touch_lots == 10 and p.liquidity["forex"].typical_lots == 200
    assert (p.liquidity["crypto"].touch_lots, p.liquidity["crypto"].typical_lots) == (2, 50)
    assert (p.swap["EURUSD"].long, p.swap["EURUSD"].short) == (-6.5, 1.2)
    assert p.leverage == {
        "forex": 30, "forex_jpy": 30, "metals": 20, "indices": 20, "energies": 10, "crypto": 1
    }  # fmt: skip
    a = s.accounts[0]
    assert (a.leverage, a.oms, a.margin_call_level, a.stop_out_level) == (None, "hedging", 100, 50)
    assert (a.commission_per_lot, a.maker_bps, a.taker_bps) == (7.0, 10.0, 10.0)


def test_paper_tables_are_laid_over_the_defaults_key_by_key(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        "[paper.liquidity.forex]\ntouch_lots = 20\n"
        "[paper.liquidity.XAUUSD]\ntypical_lots = 80\n"
        "[paper.swap.EURUSD]\nlong = -7.0\n"
        "[paper.leverage]\ncrypto = 2\n"
    )
    p = load_settings(cfg).paper
    assert (p.liquidity["forex"].touch_lots, p.liquidity["forex"].typical_lots) == (20, 200)
    assert (p.liquidity["XAUUSD"].touch_lots, p.liquidity["XAUUSD"].typical_lots) == (5, 80)
    assert p.liquidity["metals"].typical_lots == 50
    assert (p.swap["EURUSD"].long, p.swap["EURUSD"].short) == (-7.0, 1.2)
    assert p.swap["GBPUSD"].long == -4.0
    assert p.leverage["crypto"] == 2 and p.leverage["forex"] == 30


def test_paper_tables_from_the_environment_keep_the_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MIKROBOT_PAPER__LEVERAGE", '{"metals": 10}')
    monkeypatch.setenv("MIKROBOT_PAPER__SWAP", '{"USDJPY": {"long": 12}}')
    warnings: list[str] = []
    p = load_settings(None, warn=warnings.append).paper
    assert p.leverage["metals"] == 10 and p.leverage["forex"] == 30
    assert (p.swap["USDJPY"].long, p.swap["USDJPY"].short) == (12, -30)
    assert warnings == []


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[paper.liquidity.forx]\ntouch_lots = 1\n", ["paper.liquidity.forx", "'forex'"]),
        ("[paper.leverage]\nmetal = 10\n", ["paper.leverage.metal", "'metals'"]),
        ("[paper.swap.DOGEUSD]\nlong = 1\n", ["paper.swap.DOGEUSD", "configured venue"]),
        ("[paper.liquidity.EURUSDX]\ntouch_lots = 1\ntypical_lots = 2\n", ["'EURUSD'"]),
        ("[paper.swap.forex]\nlong = 1\n", ["paper.swap.forex", "per symbol"]),
        ("[paper.liquidity.SOLUSDT]\ntouch_lots = 3\n", ["paper.liquidity.SOLUSDT", "both"]),
    ],
    ids=["asset class typo", "leverage typo", "unknown symbol", "close symbol", "swap per class",
         "a new symbol without typical_lots"],
)  # fmt: skip
def test_unknown_keys_of_the_paper_tables_name_the_key_and_the_fix(
    tmp_path: Path, toml: str, expected: list[str]
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(toml)
    msg = config_error(cfg)
    for text in expected:
        assert text in msg


def test_a_symbol_of_a_configured_venue_may_have_its_own_table(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[binance]\nsymbols = ["SOLUSDT"]\n'
        "[paper.liquidity.SOLUSDT]\ntouch_lots = 300\ntypical_lots = 5000\n"
    )
    assert load_settings(cfg).paper.liquidity["SOLUSDT"].touch_lots == 300


def test_stop_out_must_be_below_the_margin_call(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[[accounts]]\nname = "A"\nmargin_call_level = 80\nstop_out_level = 80\n'
        '[[accounts]]\nname = "B"\n'
    )
    msg = config_error(cfg)
    assert "accounts.0" in msg and "stop_out_level (80)" in msg
    assert "below margin_call_level (80)" in msg and "lower stop_out_level" in msg


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ('[[accounts]]\nname = "A"\nleverage = 0\n', ["accounts.0.leverage", "greater than 0"]),
        ('[[accounts]]\nname = "A"\noms = "fifo"\n', ["accounts.0.oms", "'hedging' or 'netting'"]),
        ('[[accounts]]\nname = "A"\nstop_out_level = 0\n', ["accounts.0.stop_out_level"]),
        ('[[accounts]]\nname = "A"\nmargin_call_level = 20000\n', ["less than or equal to 10000"]),
        ("[paper.leverage]\nforex = 0\n", ["paper.leverage.forex = 0", "above 0"]),
        ('[paper]\nlatency_model = "gauss"\n', ["paper.latency_model", "'lognormal'"]),
        ("[paper.liquidity.forex]\ntouch_lots = -1\n", ["paper.liquidity.forex.touch_lots"]),
    ],
)
def test_bad_cost_and_margin_values_name_the_key(
    tmp_path: Path, toml: str, expected: list[str]
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(toml + ('[[accounts]]\nname = "B"\n' if "accounts" in toml else ""))
    msg = config_error(cfg)
    for text in expected:
        assert text in msg


def test_latency_bounds_are_consistent(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[paper]\nlatency_ms = 500\nlatency_max_ms = 100\n")
    msg = config_error(cfg)
    assert "paper.latency_max_ms (100) is below paper.latency_ms (500)" in msg
    cfg.write_text("[paper]\nlatency_ms = 500\n")  # an existing config: no upper bound given
    p = load_settings(cfg).paper
    assert (p.latency_ms, p.latency_max_ms) == (500, 500)
    cfg.write_text('[paper]\nlatency_ms = 500\nlatency_max_ms = 100\nlatency_model = "fixed"\n')
    assert load_settings(cfg).paper.latency_model == "fixed"


def test_risk_defaults_follow_ftmos_two_step_rules() -> None:
    s = load_settings(REPO / "config.toml")
    r = s.risk
    assert (r.max_positions, r.risk_per_trade, r.sizing) == (3, 0.005, "percent")
    assert (r.daily_loss_pct, r.overall_loss_pct, r.trailing_overall) == (5, 10, False)
    assert (r.day_timezone, r.max_heat_pct, r.max_correlation) == ("Europe/Prague", 6, 0.7)
    assert (r.reducing_at, r.flatten_on_breach, r.kelly_fraction) == (0.8, False, 0.25)


def test_a_bad_risk_time_zone_names_the_key_and_the_fix(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[risk]\nday_timezone = "Europe/Praha"\n')
    msg = config_error(cfg)
    assert "risk.day_timezone" in msg and "'Europe/Praha'" in msg
    assert "IANA time zone" in msg and "Europe/Prague" in msg


def test_a_daily_loss_above_the_overall_loss_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[risk]\ndaily_loss_pct = 12\n")
    msg = config_error(cfg)
    assert "risk.daily_loss_pct (12) is above risk.overall_loss_pct (10)" in msg
    assert "lower daily_loss_pct or raise overall_loss_pct" in msg


def test_an_unknown_sizing_method_lists_the_choices(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[risk]\nsizing = "martingale"\n')
    msg = config_error(cfg)
    assert "risk.sizing" in msg and "'percent', 'fixed' or 'kelly'" in msg


def test_experiments_must_name_accounts_and_say_the_fix(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[[experiments]]\nname = "x"\nvariants = ["A", "Bb"]\n')
    msg = config_error(cfg)
    assert "experiments[0].variants" in msg and "'Bb' is not an account" in msg
    assert "did you mean 'B'" in msg and "[[accounts]]" in msg


@pytest.mark.parametrize(
    ("body", "key", "words"),
    [
        ('name = "x"\nvariants = ["A"]', "experiments.0.variants", "two or more accounts"),
        ('name = "x"\nvariants = ["A", "A"]', "experiments.0.variants", "listed twice"),
        ('name = "x"\nvariants = ["A", "B"]\nmetric = "pnl"', "experiments.0.metric", "'r'"),
        ('name = "x"\nvariants = ["A", "B"]\nalpha = 0.7', "experiments.0.alpha", "0.5"),
        ('name = "x"\nvariants = ["A", "B"]\nmin_trades = 1', "experiments.0.min_trades", "2"),
        ('name = "x y"\nvariants = ["A", "B"]', "experiments.0.name", "pattern"),
        ('name = "x"\nvariants = ["A", "B"]\nbandits = true', "experiments.0.bandits", "unknown"),
    ],
)
def test_a_bad_experiment_names_its_key(tmp_path: Path, body: str, key: str, words: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"[[experiments]]\n{body}\n")
    msg = config_error(cfg)
    assert key in msg and words in msg


def test_two_experiments_of_one_name_are_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    one = '[[experiments]]\nname = "x"\nvariants = ["A", "B"]\n'
    cfg.write_text(one + one)
    assert "experiments[1].name: 'x' is used by another experiment" in config_error(cfg)


def test_experiments_default_to_ab_and_keep_their_settings(tmp_path: Path) -> None:
    s = load_settings(None)
    (e,) = s.effective_experiments()
    assert (e.name, e.variants, e.metric, e.min_trades, e.alpha, e.bandit) == (
        "ab",
        ["A", "B"],
        "r",
        100,
        0.05,
        True,
    )
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[[accounts]]\nname = "A"\n[[accounts]]\nname = "B"\n[[accounts]]\nname = "C"\n'
        '[[experiments]]\nname = "three"\nvariants = ["C", "A", "B"]\nmetric = "return_pct"\n'
        "bandit = false\nmin_trades = 50\n"
    )
    (e,) = load_settings(cfg).effective_experiments()
    assert (e.name, e.variants, e.metric, e.bandit, e.min_trades) == (
        "three",
        ["C", "A", "B"],
        "return_pct",
        False,
        50,
    )
    cfg.write_text('[[accounts]]\nname = "A"\n[ab]\nb = "A"\n')  # one account: nothing to compare
    assert load_settings(cfg).effective_experiments() == []
