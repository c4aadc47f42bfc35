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

import difflib
import json
import warnings
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel, Field, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from mikrobot_tui.config.errors import ConfigError, ConfigWarning
from mikrobot_tui.config.files import (
    ENV_PREFIX,
    SECRET_KEYS,
    _refuse_secrets,
    db_path_problem,
    format_validation_error,
    read_toml,
)
from mikrobot_tui.config.sections import (
    ASSET_CLASSES,
    ABSettings,
    AccountSettings,
    AlertsSettings,
    BinanceSettings,
    BreakerSettings,
    EngineSettings,
    ExperimentSettings,
    FeedSpec,
    LiquiditySettings,
    ModelsSettings,
    MT5Settings,
    OrchestratorSettings,
    PaperSettings,
    QualitySettings,
    ReplaySettings,
    RiskSettings,
    SignalsSettings,
    SimSettings,
    StoreSettings,
    SwapSettings,
    _default_accounts,
)
from mikrobot_tui.domain.instruments import default_instruments

__all__ = [
    "SECRET_KEYS",
    "ABSettings",
    "AccountSettings",
    "AlertsSettings",
    "BinanceSettings",
    "BreakerSettings",
    "ConfigError",
    "ConfigWarning",
    "EngineSettings",
    "ExperimentSettings",
    "FeedSpec",
    "LiquiditySettings",
    "MT5Settings",
    "ModelsSettings",
    "OrchestratorSettings",
    "PaperSettings",
    "QualitySettings",
    "ReplaySettings",
    "RiskSettings",
    "Settings",
    "SignalsSettings",
    "SimSettings",
    "StoreSettings",
    "SwapSettings",
    "db_path_problem",
    "format_validation_error",
    "load_settings",
    "read_toml",
    "redacted",
]

DEFAULT_CONFIG = Path("config.toml")
ENV_FILE = ".env"
JSON_EXAMPLE = """MIKROBOT_SIM__SYMBOLS='["EURUSD"]'"""


@dataclass
class _Loading:
    """What one load_settings call hands to Settings' sources, and what they report back."""

    toml: dict[str, Any] | None = None
    unknown: list[tuple[str, str]] = field(default_factory=list)  # (variable, where)
    env: list[tuple[str, str | None, str]] = field(default_factory=list)  # (name, value, where)


_loading: ContextVar[_Loading | None] = ContextVar("mikrobot_loading", default=None)


MODEL_ACCOUNT = "M"  # the control's copy that trades by the judged model


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="forbid",
    )

    engine: EngineSettings = EngineSettings()
    store: StoreSettings = StoreSettings()
    sim: SimSettings = SimSettings()
    replay: ReplaySettings = ReplaySettings()
    quality: QualitySettings = QualitySettings()
    risk: RiskSettings = RiskSettings()
    breakers: BreakerSettings = BreakerSettings()
    orchestrator: OrchestratorSettings = OrchestratorSettings()
    paper: PaperSettings = PaperSettings()
    accounts: list[AccountSettings] = Field(default_factory=_default_accounts)
    ab: ABSettings = ABSettings()
    experiments: list[ExperimentSettings] = []  # none: the experiment "ab" of [ab]
    binance: BinanceSettings = BinanceSettings()
    mt5: MT5Settings = MT5Settings()
    feeds: list[FeedSpec] = []  # the venues of engine.feed = "mixed"
    signals: SignalsSettings = SignalsSettings()
    alerts: AlertsSettings = AlertsSettings()
    models: ModelsSettings = ModelsSettings()

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
        self._experiments_known(names)
        if self.engine.feed == "replay" and self.replay.file is None:
            raise ValueError("replay.file: the replay feed needs a file to read")
        if self.engine.feed == "mixed":
            if not self.feeds:
                raise ValueError(
                    'feeds: engine.feed = "mixed" needs [[feeds]] tables, e.g. '
                    '{ venue = "binance", symbols = ["BTCUSDT"] }'
                )
            seen = [s for f in self.feeds for s in f.symbols]
            twice = sorted({s for s in seen if seen.count(s) > 1})
            if twice:
                raise ValueError(f"feeds: {twice} come from more than one venue; keep one")
            venues = [f.venue for f in self.feeds]
            if len(set(venues)) != len(venues):
                raise ValueError(f"feeds: one [[feeds]] table per venue, got {venues}")
        if self.signals.account not in names and (
            self.signals.ea_file is not None or self.signals.webhook
        ):
            raise ValueError(
                f"signals.account: {self.signals.account!r} is not an account; "
                f"choose one of {names}"
            )
        self._paper_symbols_known()
        self._judge_the_model(names)
        return self

    def _judge_the_model(self, names: list[str]) -> None:
        """Once the model [models] judge names is trained, and the experiment is [ab]'s
        (no [[experiments]]) with a bos_retest control, the control runs beside a copy of
        itself that trades by the model (account MODEL_ACCOUNT) and the experiment "model"
        compares them: the live A/B test that says whether the model helps."""
        control = next((a for a in self.accounts if a.name == self.ab.a), None)
        name = self.models.judge
        if (
            self.experiments
            or control is None
            or control.strategy != "bos_retest"
            or control.params.get("model")
            or MODEL_ACCOUNT in names
            or not self.models.trained(Path(self.engine.db), name)
        ):
            return
        params = {**control.params, "model": name}
        self.accounts.append(control.model_copy(update={"name": MODEL_ACCOUNT, "params": params}))

    def _experiments_known(self, names: list[str]) -> None:
        seen: set[str] = set()
        for i, e in enumerate(self.experiments):
            if e.name in seen:
                raise ValueError(
                    f"experiments[{i}].name: {e.name!r} is used by another experiment; "
                    "give each [[experiments]] its own name"
                )
            seen.add(e.name)
            for v in e.variants:
                if v not in names:
                    close = difflib.get_close_matches(v, names, n=1)
                    hint = f"did you mean {close[0]!r}? " if close else ""
                    raise ValueError(
                        f"experiments[{i}].variants: {v!r} is not an account; {hint}"
                        f"choose from {names} or add an [[accounts]] table named {v!r}"
                    )

    def effective_experiments(self) -> list[ExperimentSettings]:
        """The [[experiments]], or without any the experiment "ab": [ab.a, ab.b] (none when
        both name the same account: a one-account configuration has nothing to compare) and,
        once the judged model is trained, the experiment "model": [ab.a, MODEL_ACCOUNT]."""
        if self.experiments:
            return list(self.experiments)
        # equal shares: the control is in "ab" too, whose bandit already sizes its risk
        judged = [
            ExperimentSettings(name="model", variants=[self.ab.a, MODEL_ACCOUNT], bandit=False)
            for a in self.accounts
            if a.name == MODEL_ACCOUNT and a.params.get("model") == self.models.judge
        ]
        if self.ab.a == self.ab.b:
            return judged
        return [
            ExperimentSettings(name="ab", variants=[self.ab.a, self.ab.b], bandit=self.ab.bandit),
            *judged,
        ]

    def _paper_symbols_known(self) -> None:
        """A symbol in [paper.liquidity], [paper.swap] or [paper.leverage] is one the
        catalogue or a configured venue knows: a typo would silently fall back to defaults."""
        known = set(default_instruments()) | set(self.sim.symbols)
        known |= set(self.binance.symbols) | set(self.mt5.symbols)
        known |= {s for f in self.feeds for s in f.symbols}
        for table, keys in self.paper.symbol_keys().items():
            for key in keys:
                if key not in known:
                    close = difflib.get_close_matches(key, sorted(known), n=1)
                    hint = f"did you mean {close[0]!r}? " if close else ""
                    raise ValueError(
                        f"paper.{table}.{key}: not a symbol of the catalogue or of a configured "
                        f"venue; {hint}use an asset class ({', '.join(ASSET_CLASSES)}) or one "
                        f"of {sorted(known)}"
                    )

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


def redacted(settings: Settings) -> dict[str, Any]:
    """Settings as a plain dict with secrets shown as '**********' (or null when unset)."""
    return settings.model_dump(mode="json")
