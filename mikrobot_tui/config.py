"""Settings: config.toml, overridden by MIKROBOT_* environment variables and a .env file.

Precedence, highest first: explicit overrides (CLI flags), environment (`MIKROBOT_SIM__SPEED=5`,
nested with `__`), .env, config.toml, defaults. Secrets are SecretStr and are accepted only from
the environment or .env (invariant 5): a secret found in config.toml is a configuration error.
"""

from __future__ import annotations

import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from mikrobot_tui.domain.instruments import default_instruments

DEFAULT_CONFIG = Path("config.toml")
ENV_PREFIX = "MIKROBOT_"
SECRET_KEYS = {("binance", "api_key"), ("binance", "api_secret"), ("mt5", "password")}

_toml_path: ContextVar[Path | None] = ContextVar("mikrobot_toml_path", default=None)


class ConfigError(Exception):
    """Bad configuration: the message names each key, its bad value and the fix."""


class _Section(BaseModel):
    model_config = {"extra": "forbid"}


class EngineSettings(_Section):
    feed: Literal["sim", "replay"] = "sim"
    db: Path = Path("mikrobot.db")
    batch_max: int = Field(10_000, ge=1, le=1_000_000)
    poll_ms: int = Field(100, ge=10, le=1_000)
    snapshot_hz: float = Field(4.0, gt=0, le=20)
    store_ticks: bool = True
    currency_equivalents: dict[str, str] = {"USDT": "USD", "USDC": "USD"}

    @field_validator("feed", mode="before")
    @classmethod
    def _feed_available(cls, value: Any) -> Any:
        if value in ("binance", "mt5"):
            raise ValueError(f"the {value} feed is not in this version yet; use 'sim' or 'replay'")
        return value


class SimSettings(_Section):
    symbols: list[str] = ["EURUSD", "GBPUSD", "USDJPY", "XAUUSD", "BTCUSDT", "ETHUSDT"]
    seed: int = 7
    speed: float = Field(1.0, gt=0, le=1_000)
    faults: bool = True
    fault_rate: float = Field(0.002, ge=0, le=0.2)
    volatility_scale: float = Field(1.0, gt=0, le=100)
    warmup_minutes: float = Field(60.0, ge=0, le=1440)

    @field_validator("symbols")
    @classmethod
    def _known_symbols(cls, value: list[str]) -> list[str]:
        known = default_instruments()
        unknown = [s for s in value if s not in known]
        if unknown:
            raise ValueError(f"unknown symbols {unknown}; known: {sorted(known)}")
        if not value:
            raise ValueError("needs at least one symbol")
        return value


class ReplaySettings(_Section):
    file: Path | None = None
    speed: float = Field(0.0, ge=0, description="0 replays as fast as possible")

    @field_validator("file", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value


class QualitySettings(_Section):
    max_gap_s: float = Field(5.0, gt=0)
    spike_sigma: float = Field(6.0, gt=0)
    max_latency_ms: float = Field(250.0, gt=0)
    window_s: float = Field(60.0, gt=0)
    # a mid more than this many times above (or below 1/this of) the symbol's last accepted
    # mid is rejected as "price jump"; capped so that every return the spike estimator sees
    # stays finite (prices are capped at 1e12 and positive)
    max_price_jump: float = Field(10.0, gt=1, le=1e6)


class RiskSettings(_Section):
    max_positions: int = Field(3, ge=1, le=100)
    risk_per_trade: float = Field(0.005, gt=0, le=0.1)


class BreakerSettings(_Section):
    failure_threshold: int = Field(5, ge=1)
    reset_timeout_s: float = Field(30.0, gt=0)
    success_threshold: int = Field(3, ge=1)


class PaperSettings(_Section):
    latency_ms: float = Field(50.0, ge=0, le=10_000)


class AccountSettings(_Section):
    name: str = Field(min_length=1, max_length=24, pattern=r"^[A-Za-z0-9_\-]+$")
    balance: float = Field(10_000.0, gt=0)
    currency: str = Field("USD", min_length=3, max_length=4)
    strategy: Literal["ema_cross"] = "ema_cross"
    params: dict[str, float] = {}


class ABSettings(_Section):
    a: str = "A"
    b: str = "B"


class BinanceSettings(_Section):
    api_key: SecretStr | None = None
    api_secret: SecretStr | None = None


class MT5Settings(_Section):
    login: int | None = None
    server: str | None = None
    password: SecretStr | None = None


def _default_accounts() -> list[AccountSettings]:
    return [
        AccountSettings(name="A", params={"fast": 5, "slow": 20}),
        AccountSettings(name="B", params={"fast": 8, "slow": 34}),
    ]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="forbid",
    )

    engine: EngineSettings = EngineSettings()
    sim: SimSettings = SimSettings()
    replay: ReplaySettings = ReplaySettings()
    quality: QualitySettings = QualitySettings()
    risk: RiskSettings = RiskSettings()
    breakers: BreakerSettings = BreakerSettings()
    paper: PaperSettings = PaperSettings()
    accounts: list[AccountSettings] = Field(default_factory=_default_accounts)
    ab: ABSettings = ABSettings()
    binance: BinanceSettings = BinanceSettings()
    mt5: MT5Settings = MT5Settings()

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        names = [a.name for a in self.accounts]
        if not names:
            raise ValueError("accounts: at least one [[accounts]] table is needed")
        if len(set(names)) != len(names):
            raise ValueError(f"accounts: names must be unique, got {names}")
        for key in ("a", "b"):
            if getattr(self.ab, key) not in names:
                raise ValueError(
                    f"ab.{key}: {getattr(self.ab, key)!r} is not an account; choose one of {names}"
                )
        if self.engine.feed == "replay" and self.replay.file is None:
            raise ValueError("replay.file: the replay feed needs a file to read")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, dotenv_settings]
        path = _toml_path.get()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


def load_settings(
    config_path: Path | None = None, overrides: dict[str, Any] | None = None
) -> Settings:
    """Build Settings, or raise ConfigError with one line per bad key.

    `config_path` None means ./config.toml when it exists, else the built-in defaults.
    `overrides` are nested dicts from CLI flags, e.g. {"engine": {"db": Path("x.db")}}.
    """
    path = config_path if config_path is not None else DEFAULT_CONFIG
    if config_path is not None and not path.exists():
        raise ConfigError(f"--config: {path} does not exist; pass the path of a config.toml")
    toml_path = path if path.exists() else None
    if toml_path is not None:
        _refuse_secrets_in_file(toml_path)
    token = _toml_path.set(toml_path)
    try:
        return Settings(**(overrides or {}))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, toml_path)) from None
    finally:
        _toml_path.reset(token)


def _refuse_secrets_in_file(path: Path) -> None:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix the syntax at that line") from None
    for section, key in sorted(SECRET_KEYS):
        if isinstance(data.get(section), dict) and key in data[section]:
            env = f"{ENV_PREFIX}{section.upper()}__{key.upper()}"
            raise ConfigError(
                f"{section}.{key}: secrets are not read from {path}; remove it there and set "
                f"the environment variable {env} (or put it in .env)"
            )


def format_validation_error(exc: ValidationError, source: Path | None) -> str:
    where = f" (from {source}, the environment or .env)" if source else ""
    lines = [f"Invalid configuration{where}:"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(settings)"
        value = err.get("input")
        secret = any(str(p) in {"api_key", "api_secret", "password"} for p in err["loc"])
        shown = "<redacted>" if secret else repr(value)
        if isinstance(value, dict) and not err["loc"]:
            shown = "(whole file)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key; check the spelling against config.toml's comments"
        lines.append(f"  {key} = {shown}: {msg}")
    return "\n".join(lines)


def redacted(settings: Settings) -> dict[str, Any]:
    """Settings as a plain dict with secrets shown as '**********' (or null when unset)."""
    return settings.model_dump(mode="json")
