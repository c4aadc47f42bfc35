"""Settings: config.toml, overridden by MIKROBOT_* environment variables and a .env file.

Precedence, highest first: explicit overrides (CLI flags), environment (`MIKROBOT_SIM__SPEED=5`,
nested with `__`), .env, config.toml, defaults. Secrets are SecretStr and are accepted only from
the environment or .env (invariant 5): a secret found in config.toml is a configuration error.

config.toml is read and parsed once, here (UTF-8, or UTF-16/32 when a byte-order mark says so),
and the parsed table is what both the secrets check and the settings see. A `MIKROBOT_*`
variable that names no setting is a warning (with the closest setting), never an error: the
environment is shared with other programs and other versions of this one.
"""

from __future__ import annotations

import codecs
import difflib
import json
import os
import tomllib
import warnings
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from mikrobot_tui.domain.instruments import default_instruments

DEFAULT_CONFIG = Path("config.toml")
ENV_PREFIX = "MIKROBOT_"
ENV_FILE = ".env"
SECRET_KEYS = {("binance", "api_key"), ("binance", "api_secret"), ("mt5", "password")}
JSON_EXAMPLE = """MIKROBOT_SIM__SYMBOLS='["EURUSD"]'"""
SQLITE_HEADER = b"SQLite format 3\x00"


class ConfigError(Exception):
    """Bad configuration: the message names each key, its bad value and the fix."""


class ConfigWarning(UserWarning):
    """A configuration that works but is probably not what was meant (an unknown variable)."""


@dataclass
class _Loading:
    """What one load_settings call hands to Settings' sources, and what they report back."""

    toml: dict[str, Any] | None = None
    unknown: list[tuple[str, str]] = field(default_factory=list)  # (variable, where)
    env: list[tuple[str, str | None, str]] = field(default_factory=list)  # (name, value, where)


_loading: ContextVar[_Loading | None] = ContextVar("mikrobot_loading", default=None)


class _Section(BaseModel):
    model_config = {"extra": "forbid"}


class EngineSettings(_Section):
    feed: Literal["sim", "replay"] = "sim"
    db: Path = Path("mikrobot.db")
    batch_max: int = Field(10_000, ge=1, le=1_000_000)
    poll_ms: int = Field(100, ge=10, le=1_000)
    snapshot_hz: float = Field(4.0, gt=0, le=20)
    store_ticks: bool = True
    db_wait_s: float = Field(300.0, gt=0, le=86_400)
    currency_equivalents: dict[str, str] = {"USDT": "USD", "USDC": "USD"}

    @field_validator("feed", mode="before")
    @classmethod
    def _feed_available(cls, value: Any) -> Any:
        if value in ("binance", "mt5"):
            raise ValueError(f"the {value} feed is not in this version yet; use 'sim' or 'replay'")
        return value


class SimSettings(_Section):
    symbols: list[str] = ["EURUSD", "GBPUSD", "USDJPY", "XAUUSD", "BTCUSDT", "ETHUSDT"]
    seed: int = Field(7, ge=0, description="numpy's SeedSequence takes no negative seed")
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
        loading = _loading.get() or _Loading()
        for source, where in ((env_settings, "the environment"), (dotenv_settings, ENV_FILE)):
            _keep_known_variables(source, where, loading)
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, dotenv_settings]
        if loading.toml is not None:
            sources.append(_ParsedToml(settings_cls, loading.toml))
        return tuple(sources)


class _ParsedToml(PydanticBaseSettingsSource):
    """config.toml as load_settings parsed it (one reader for the file, not two)."""

    def __init__(self, settings_cls: type[BaseSettings], data: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self.data = data

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self.data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.data)


def _setting_path(name: str) -> list[str] | None:
    """The setting a (lower-case) variable name sets, as [field] or [section, key, ...]."""
    prefix = ENV_PREFIX.lower()
    if not name.startswith(prefix):
        return None
    parts = name[len(prefix) :].split("__")
    top = Settings.model_fields.get(parts[0])
    if top is None:
        return None
    if len(parts) == 1:
        return parts
    section = top.annotation
    if not (isinstance(section, type) and issubclass(section, BaseModel)):
        return None  # lists (accounts) are set whole, as JSON
    sub = section.model_fields.get(parts[1])
    if sub is None or (len(parts) > 2 and get_origin(sub.annotation) is not dict):
        return None
    return parts


def _known_variables() -> list[str]:
    names = []
    for name, info in Settings.model_fields.items():
        names.append(f"{ENV_PREFIX}{name.upper()}")
        model = info.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            names += [f"{ENV_PREFIX}{name.upper()}__{key.upper()}" for key in model.model_fields]
    return names


def _keep_known_variables(source: Any, where: str, loading: _Loading) -> None:
    """Drop the MIKROBOT_* variables that name no setting (and, from .env, everything else)
    from a source, noting them for a warning: unknown names must not stop the program."""
    env_vars: Mapping[str, str | None] = getattr(source, "env_vars", {})
    kept: dict[str, str | None] = {}
    for name, value in env_vars.items():
        lower = name.lower()
        if not lower.startswith(ENV_PREFIX.lower()):
            if where != ENV_FILE:
                kept[name] = value  # other programs' variables: not ours to judge
            continue
        if _setting_path(lower) is None:
            loading.unknown.append((name.upper(), where))
            continue
        kept[name] = value
        loading.env.append((name.upper(), value, where))
    source.env_vars = kept


def _unknown_variable_warning(name: str, where: str) -> str:
    closest = difflib.get_close_matches(name, _known_variables(), n=1, cutoff=0.0)
    hint = f"; did you mean {closest[0]}?" if closest else ""
    return f"{name} (in {where}) is not a mikrobot setting and is ignored{hint}"


def _is_json_setting(parts: list[str]) -> bool:
    """Whether a variable's value must be JSON: a whole section, a list or a table."""
    info = Settings.model_fields[parts[0]]
    annotation = info.annotation
    if len(parts) == 1:
        is_section = isinstance(annotation, type) and issubclass(annotation, BaseModel)
        return is_section or get_origin(annotation) in (list, dict)
    assert isinstance(annotation, type) and issubclass(annotation, BaseModel)
    sub = annotation.model_fields[parts[1]].annotation
    if len(parts) > 2:
        return False
    origins = {get_origin(sub), *(get_origin(a) for a in get_args(sub))}
    return bool(origins & {list, dict})


def _explain_settings_error(exc: SettingsError, loading: _Loading) -> str:
    """pydantic-settings says which field failed, not which variable: find the variable."""
    for name, value, where in loading.env:
        parts = _setting_path(name.lower())
        if parts is None or value is None or not _is_json_setting(parts):
            continue
        try:
            json.loads(value)
        except ValueError:
            shown = value if len(value) <= 60 else value[:57] + "..."
            source = "" if where == "the environment" else f" (in {where})"
            return (
                f"{name}{source} = {shown!r}: not valid JSON; lists and tables are given as "
                f"JSON, e.g. {JSON_EXAMPLE}"
            )
    return f"{exc}; lists and tables in MIKROBOT_* variables are JSON, e.g. {JSON_EXAMPLE}"


def load_settings(
    config_path: Path | None = None,
    overrides: dict[str, Any] | None = None,
    warn: Callable[[str], None] | None = None,
) -> Settings:
    """Build Settings, or raise ConfigError with one line per bad key.

    `config_path` None means ./config.toml when it exists, else the built-in defaults.
    `overrides` are nested dicts from CLI flags, e.g. {"engine": {"db": Path("x.db")}}.
    `warn` receives one line per MIKROBOT_* variable that names no setting (default: a
    ConfigWarning through the warnings module).
    """
    path = config_path if config_path is not None else DEFAULT_CONFIG
    if config_path is not None and not path.exists():
        raise ConfigError(f"--config: {path} does not exist; pass the path of a config.toml")
    if path.is_dir():
        flag = "--config: " if config_path is not None else ""
        raise ConfigError(
            f"{flag}{path} is a directory, not a file; pass the path of a config.toml"
        )
    toml_path = path if path.exists() else None
    loading = _Loading(toml=read_toml(toml_path) if toml_path is not None else None)
    if loading.toml is not None and toml_path is not None:
        _refuse_secrets(loading.toml, toml_path)
    token = _loading.set(loading)
    try:
        settings = Settings(**(overrides or {}))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, toml_path)) from None
    except SettingsError as exc:
        raise ConfigError(_explain_settings_error(exc, loading)) from None
    finally:
        _loading.reset(token)
    for name, where in dict.fromkeys(loading.unknown):
        message = _unknown_variable_warning(name, where)
        if warn is None:
            warnings.warn(message, ConfigWarning, stacklevel=2)
        else:
            warn(message)
    return settings


_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a config file: UTF-8, or UTF-16/32 with a byte-order mark; ConfigError otherwise."""
    try:
        raw = path.read_bytes()
    except IsADirectoryError:
        raise ConfigError(
            f"{path} is a directory, not a file; pass the path of a config.toml"
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot be read ({exc.strerror}); check the path and its permissions"
        ) from None
    encoding = next((enc for bom, enc in _BOMS if raw.startswith(bom)), "utf-8")
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError:
        text = None
    if text is None or (encoding == "utf-8" and "\x00" in text):
        what = "UTF-16 without a byte-order mark" if b"\x00" in raw else "not UTF-8 text"
        raise ConfigError(f"{path}: the file is {what}; save it as UTF-8 and try again")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix the syntax at that line") from None


def _refuse_secrets(data: dict[str, Any], path: Path) -> None:
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


def db_path_problem(path: Path, *, write: bool) -> str | None:
    """Why `path` cannot be the SQLite database, with the fix; None when it can.

    With `write`, also a file or directory the engine could not write (SQLite in WAL mode
    writes files next to the database). A missing file is fine: the engine creates it.
    """
    path = Path(path)
    parent = path.parent
    if path.is_dir():
        return f"{path} is a directory; give a file in it, e.g. --db {path / 'mikrobot.db'}"
    if not parent.exists():
        return f"directory {parent} does not exist; create it (mkdir -p {parent}) or use another"
    if not parent.is_dir():
        return f"{parent} is not a directory; give a path inside a directory"
    if path.exists():
        try:
            with path.open("rb") as f:
                head = f.read(len(SQLITE_HEADER))
        except OSError as exc:
            return f"{path} cannot be read ({exc.strerror}); check its permissions"
        if head and head != SQLITE_HEADER:
            return (
                f"{path} is not an SQLite database; give the path of a mikrobot database or "
                "of a new file"
            )
        if write and not os.access(path, os.W_OK):
            return f"{path} is read-only; make it writable (chmod u+w) or use another file"
    if write and not os.access(parent, os.W_OK | os.X_OK):
        return (
            f"directory {parent} is not writable (SQLite writes its journal next to the "
            "database); make it writable or use another directory"
        )
    return None


def redacted(settings: Settings) -> dict[str, Any]:
    """Settings as a plain dict with secrets shown as '**********' (or null when unset)."""
    return settings.model_dump(mode="json")
