"""The sections of config.toml, one model each: every key, its default and what it allows.

config.toml documents each key with a comment; a test holds the two to each other.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from mikrobot_tui.domain.instruments import AssetClass, default_instruments


class _Section(BaseModel):
    model_config = {"extra": "forbid"}


FEEDS = ("sim", "replay", "binance", "mt5", "mixed")
VENUES = ("binance", "mt5", "sim")
BINANCE_STREAMS = ("bookTicker", "trade", "depth", "kline")


class EngineSettings(_Section):
    feed: Literal["sim", "replay", "binance", "mt5", "mixed"] = "sim"
    db: Path = Path("mikrobot.db")
    batch_max: int = Field(10_000, ge=1, le=1_000_000)
    poll_ms: int = Field(100, ge=10, le=1_000)
    snapshot_hz: float = Field(4.0, gt=0, le=20)
    store_ticks: bool = True
    db_wait_s: float = Field(300.0, gt=0, le=86_400)
    currency_equivalents: dict[str, str] = {"USDT": "USD", "USDC": "USD"}


class StoreSettings(_Section):
    """`[store]`: backups while the engine runs, and how long ticks are kept as they came."""

    backup_every_h: float = Field(6.0, ge=0, le=24 * 365)  # 0: no scheduled backups
    backup_dir: Path = Path("backups")  # relative to the database's folder unless absolute
    backup_keep: int = Field(4, ge=1, le=10_000)
    retain_days: float = Field(30.0, ge=0, le=36_500)  # ticks older than this: `retain_mode`
    retain_mode: Literal["compact", "drop"] = "compact"


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
    # ts_event later than ts_recv by more than this: rejected as "timestamp in the future"
    future_tolerance_s: float = Field(2.0, gt=0, le=86_400)
    # a spread above this many times the symbol's usual spread (its EWMA) is flagged
    spread_k: float = Field(10.0, gt=1, le=1e6)
    # the upper specification limit of feed latency for its process capability (Cp, Cpk)
    latency_limit_ms: float = Field(250.0, gt=0, le=3_600_000)
    # trading hours per symbol: "fx" (Sunday 17:00 to Friday 17:00 New York) or "always";
    # a symbol not named here follows its asset class (crypto "always", the rest "fx")
    hours: dict[str, Literal["fx", "always"]] = {}

    def always_open(self, symbol: str) -> bool:
        """Whether `symbol` trades around the clock: its `hours` entry, else its asset class
        (a symbol outside the catalogue counts as always open: no gap is excused)."""
        mode = self.hours.get(symbol)
        if mode is not None:
            return mode == "always"
        inst = default_instruments().get(symbol)
        return inst is None or inst.asset_class is AssetClass.CRYPTO


class RiskSettings(_Section):
    """`[risk]`: sizing and the account limits (trading/risk), FTMO's rules by default."""

    max_positions: int = Field(3, ge=1, le=100)
    risk_per_trade: float = Field(0.005, gt=0, le=0.1)
    sizing: Literal["percent", "fixed", "kelly"] = "percent"
    fixed_lots: float = Field(0.01, gt=0, le=1_000_000)
    kelly_fraction: float = Field(0.25, gt=0, le=1)
    kelly_min_trades: int = Field(30, ge=2, le=100_000)
    daily_loss_pct: float = Field(5.0, gt=0, le=100)
    overall_loss_pct: float = Field(10.0, gt=0, le=100)
    trailing_overall: bool = False
    day_timezone: str = "Europe/Prague"
    max_heat_pct: float = Field(6.0, gt=0, le=100)
    max_trades_per_day: int = Field(50, ge=1, le=100_000)
    max_correlation: float = Field(0.7, gt=0, le=1)
    correlation_window: int = Field(100, ge=10, le=100_000)
    reducing_at: float = Field(0.8, gt=0, le=1)
    flatten_on_breach: bool = False

    @field_validator("day_timezone")
    @classmethod
    def _iana_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{value!r} is not an IANA time zone; the trading day starts at midnight there, "
                'e.g. "Europe/Prague" (FTMO\'s CE(S)T) or "UTC"'
            ) from None
        return value

    @model_validator(mode="after")
    def _daily_within_overall(self) -> Self:
        if self.daily_loss_pct > self.overall_loss_pct:
            raise ValueError(
                f"risk.daily_loss_pct ({self.daily_loss_pct:g}) is above risk.overall_loss_pct "
                f"({self.overall_loss_pct:g}): a day could lose more than the whole account may; "
                "lower daily_loss_pct or raise overall_loss_pct"
            )
        return self


class ModelsSettings(_Section):
    """`[models]`: where setup models are stored (trading/models/registry.py) and when the
    features of recent setups count as drifted from a model's training data."""

    dir: Path = Path("models")  # relative to the database's folder unless absolute
    psi_alert: float = Field(0.25, gt=0, le=10)  # a feature's PSI above this is an alert
    psi_window: int = Field(200, ge=50, le=100_000)  # recent setups PSI compares
    # the model the live experiment judges: once trained, the A/B control's bos_retest runs
    # beside a copy that trades by it ("" turns this off)
    judge: str = Field("bos_retest", pattern=r"^[A-Za-z0-9_\-]{0,40}$")

    @field_validator("dir", mode="before")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise ValueError('a folder is needed, e.g. "models" (beside the database)')
        return value

    def folder(self, db: Path) -> Path:
        """The models folder: `dir`, relative to the database's folder unless absolute."""
        return self.dir if self.dir.is_absolute() else Path(db).parent / self.dir

    def trained(self, db: Path, name: str) -> bool:
        """A version of model `name` is saved in the folder (its .json is there)."""
        folder = self.folder(db) / name
        return bool(name) and folder.is_dir() and any(folder.glob("v*.json"))


class BreakerSettings(_Section):
    failure_threshold: int = Field(5, ge=1)
    reset_timeout_s: float = Field(30.0, gt=0)
    success_threshold: int = Field(3, ge=1)
    min_quality: float = Field(0.95, ge=0.0, le=1.0)


ASSET_CLASSES = tuple(c.value for c in AssetClass)

SCORE_FACTORS = ("trend", "atr", "session", "spread", "quality", "record", "signal")
SESSIONS = ("asia", "london", "new_york", "any")
# Where each asset class trades well: its liquid hours. Crypto never closes and has no session.
DEFAULT_SESSIONS: dict[str, list[str]] = {
    "forex": ["london", "new_york"],
    "forex_jpy": ["asia", "london", "new_york"],
    "metals": ["london", "new_york"],
    "indices": ["london", "new_york"],
    "energies": ["london", "new_york"],
    "crypto": ["any"],
}


class OrchestratorSettings(_Section):
    """`[orchestrator]`: how every signal is scored before it is sized (trading/scoring.py)."""

    approve_at: float = Field(0.7, gt=0, le=1)  # at or above: full risk
    refuse_below: float = Field(0.4, ge=0, le=1)  # below: refused; between: risk scaled down
    weights: dict[str, float] = Field(default_factory=lambda: dict.fromkeys(SCORE_FACTORS, 1.0))
    trend_timeframe: Literal["M5", "M15", "H1"] = "H1"
    trend_period: int = Field(20, ge=2, le=500)
    atr_timeframe: Literal["M1", "M5", "M15", "H1"] = "M5"
    atr_period: int = Field(14, ge=1, le=500)
    atr_band_pips: tuple[float, float] = (4.0, 15.0)  # forex; other classes: ATR_BANDS_BPS
    sessions: dict[str, list[str]] = Field(default_factory=lambda: dict(DEFAULT_SESSIONS))
    off_session_score: float = Field(0.25, ge=0, le=1)
    max_spread_atr: float = Field(0.5, gt=0, le=10)
    record_trades: int = Field(20, ge=1, le=10_000)
    record_min_trades: int = Field(5, ge=1, le=10_000)

    @field_validator("weights", mode="before")
    @classmethod
    def _weights_over_defaults(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        for key, weight in value.items():
            if key not in SCORE_FACTORS:
                close = difflib.get_close_matches(str(key), SCORE_FACTORS, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ValueError(
                    f"orchestrator.weights.{key}: not a factor; use {', '.join(SCORE_FACTORS)}"
                    f"{hint}"
                )
            if not isinstance(weight, int | float) or isinstance(weight, bool) or weight < 0:
                raise ValueError(
                    f"orchestrator.weights.{key}: a weight is a number >= 0 (0 leaves the "
                    f"factor out), got {weight!r}"
                )
        return {**dict.fromkeys(SCORE_FACTORS, 1.0), **value}

    @field_validator("sessions", mode="before")
    @classmethod
    def _sessions_over_defaults(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        for key, names in value.items():
            if str(key) == str(key).lower() and key not in ASSET_CLASSES:
                raise ValueError(
                    f"orchestrator.sessions.{key}: not an asset class; use one of "
                    f"{', '.join(ASSET_CLASSES)} or a symbol in capitals, e.g. EURUSD"
                )
            bad = [n for n in names if n not in SESSIONS] if isinstance(names, list) else names
            if bad:
                raise ValueError(
                    f"orchestrator.sessions.{key}: {bad!r} is not a list of sessions; use "
                    f'{", ".join(SESSIONS)} ("any": every hour scores full)'
                )
        return {**DEFAULT_SESSIONS, **value}

    @model_validator(mode="after")
    def _thresholds_and_band(self) -> Self:
        if self.refuse_below >= self.approve_at:
            raise ValueError(
                f"orchestrator.refuse_below ({self.refuse_below:g}) must be below "
                f"orchestrator.approve_at ({self.approve_at:g}): between the two a signal's "
                "risk is scaled down"
            )
        low, high = self.atr_band_pips
        if not 0 <= low < high:
            raise ValueError(
                f"orchestrator.atr_band_pips: [{low:g}, {high:g}] needs 0 <= low < high, "
                "e.g. [4, 15]"
            )
        if sum(self.weights.values()) <= 0:
            raise ValueError("orchestrator.weights: at least one factor needs a weight above 0")
        return self

    def sessions_for(self, symbol: str, asset_class: str) -> list[str]:
        """The sessions a symbol trades well in: its own entry, else its asset class's."""
        return self.sessions.get(symbol) or self.sessions.get(asset_class) or ["any"]


# Lots shown at the touch and a typical volume in lots per minute, per asset class (crypto lots
# are base units: 2 BTC at the touch).
DEFAULT_LIQUIDITY: dict[str, dict[str, float]] = {
    "forex": {"touch_lots": 10.0, "typical_lots": 200.0},
    "forex_jpy": {"touch_lots": 10.0, "typical_lots": 200.0},
    "metals": {"touch_lots": 5.0, "typical_lots": 50.0},
    "indices": {"touch_lots": 10.0, "typical_lots": 100.0},
    "energies": {"touch_lots": 5.0, "typical_lots": 50.0},
    "crypto": {"touch_lots": 2.0, "typical_lots": 50.0},
}
# Points (tick_size units) per lot per night, MT5 style, of the order a retail broker charged
# with US rates near 4.5% (check your broker's symbol specification); other symbols: 0.
DEFAULT_SWAP: dict[str, dict[str, float]] = {
    "EURUSD": {"long": -6.5, "short": 1.2},
    "GBPUSD": {"long": -4.0, "short": -0.5},
    "USDJPY": {"long": 14.0, "short": -30.0},
    "XAUUSD": {"long": -35.0, "short": 15.0},
}
DEFAULT_LEVERAGE: dict[str, float] = {
    "forex": 30.0,
    "forex_jpy": 30.0,
    "metals": 20.0,
    "indices": 20.0,
    "energies": 10.0,
    "crypto": 1.0,
}


def _check_key(table: str, key: str, *, classes: bool = True) -> None:
    """A key of [paper.<table>] is an asset class (lower case) or a symbol (upper case); the
    symbols are checked against the configured venues by Settings."""
    if not isinstance(key, str) or not key.strip():
        raise ValueError(f"paper.{table}: a key is empty; use an asset class or a symbol")
    if key != key.lower():
        return
    if not classes:
        raise ValueError(
            f"paper.{table}.{key}: {table} is set per symbol, not per asset class; name a "
            f"symbol in capitals, e.g. [paper.{table}.EURUSD]"
        )
    if key in ASSET_CLASSES:
        return
    close = difflib.get_close_matches(key, ASSET_CLASSES, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(
        f"paper.{table}.{key}: not an asset class; use one of {', '.join(ASSET_CLASSES)} or a "
        f"symbol in capitals, e.g. EURUSD{hint}"
    )


class LiquiditySettings(_Section):
    """`[paper.liquidity.<asset class or symbol>]`: a key left out keeps its default."""

    touch_lots: float = Field(gt=0, le=1e9)  # lots shown at the best price
    typical_lots: float = Field(gt=0, le=1e12)  # a typical volume, lots per minute


class SwapSettings(_Section):
    """`[paper.swap.<symbol>]`: points per lot per night; > 0 is paid to the account."""

    long: float = Field(0.0, ge=-1e6, le=1e6)
    short: float = Field(0.0, ge=-1e6, le=1e6)


class PaperSettings(_Section):
    latency_ms: float = Field(50.0, ge=0, le=10_000)
    latency_model: Literal["fixed", "uniform", "lognormal"] = "uniform"
    latency_max_ms: float = Field(200.0, ge=0, le=60_000)
    latency_sigma: float = Field(0.5, gt=0, le=5)
    latency_seed: int = Field(7, ge=0, description="numpy's SeedSequence takes no negative seed")
    touch_fills: bool = False
    slippage_spread: float = Field(0.1, ge=0, le=10)
    slippage_volatility: float = Field(0.05, ge=0, le=10)
    impact_k: float = Field(0.5, ge=0, le=100)
    liquidity: dict[str, LiquiditySettings] = Field(
        default_factory=lambda: {k: LiquiditySettings(**v) for k, v in DEFAULT_LIQUIDITY.items()}
    )
    swap: dict[str, SwapSettings] = Field(
        default_factory=lambda: {k: SwapSettings(**v) for k, v in DEFAULT_SWAP.items()}
    )
    leverage: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_LEVERAGE))

    @field_validator("liquidity", mode="before")
    @classmethod
    def _liquidity_over_defaults(cls, value: Any) -> Any:
        """Tables given are laid over the defaults, key by key: `[paper.liquidity.forex]` with
        only touch_lots keeps forex's typical_lots, and a symbol starts from its asset class."""
        if not isinstance(value, dict):
            return value
        catalogue = default_instruments()
        merged: dict[str, Any] = {k: dict(v) for k, v in DEFAULT_LIQUIDITY.items()}
        for key, table in value.items():
            _check_key("liquidity", key)
            if isinstance(table, LiquiditySettings):
                table = table.model_dump()
            if not isinstance(table, dict):
                merged[key] = table  # pydantic names the key and the type it wants
                continue
            base = merged.get(key)
            if base is None and key in catalogue:
                base = merged[catalogue[key].asset_class.value]
            if base is None and not {"touch_lots", "typical_lots"} <= table.keys():
                raise ValueError(
                    f"paper.liquidity.{key}: give both touch_lots and typical_lots (a symbol "
                    "outside the built-in catalogue has no asset-class default to start from)"
                )
            merged[key] = {**(base or {}), **table}
        return merged

    @field_validator("swap", mode="before")
    @classmethod
    def _swap_over_defaults(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        merged: dict[str, Any] = {k: dict(v) for k, v in DEFAULT_SWAP.items()}
        for key, table in value.items():
            _check_key("swap", key, classes=False)
            if isinstance(table, SwapSettings):
                table = table.model_dump()
            merged[key] = {**merged.get(key, {}), **table} if isinstance(table, dict) else table
        return merged

    @field_validator("leverage", mode="before")
    @classmethod
    def _leverage_over_defaults(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        for key in value:
            _check_key("leverage", key)
        return {**DEFAULT_LEVERAGE, **value}

    @field_validator("leverage")
    @classmethod
    def _positive_leverage(cls, value: dict[str, float]) -> dict[str, float]:
        for key, lev in value.items():
            if not 0 < lev <= 10_000:
                raise ValueError(
                    f"paper.leverage.{key} = {lev:g}: leverage is above 0 and at most 10000 "
                    "(30 means 1:30)"
                )
        return value

    @model_validator(mode="after")
    def _latency_bounds(self) -> Self:
        if self.latency_model == "fixed" or self.latency_max_ms >= self.latency_ms:
            return self
        if "latency_max_ms" not in self.model_fields_set:
            # an existing config with only latency_ms above 200 keeps working: no spread
            self.latency_max_ms = self.latency_ms
            return self
        raise ValueError(
            f"paper.latency_max_ms ({self.latency_max_ms:g}) is below paper.latency_ms "
            f"({self.latency_ms:g}), the {self.latency_model} model's lower bound: raise "
            'latency_max_ms, lower latency_ms or set latency_model = "fixed"'
        )

    def symbol_keys(self) -> dict[str, list[str]]:
        """The symbols named in liquidity, swap and leverage (asset classes left out)."""
        tables = {"liquidity": self.liquidity, "swap": self.swap, "leverage": self.leverage}
        return {
            name: [k for k in table if k not in ASSET_CLASSES] for name, table in tables.items()
        }


class AccountSettings(_Section):
    name: str = Field(min_length=1, max_length=24, pattern=r"^[A-Za-z0-9_\-]+$")
    balance: float = Field(10_000.0, gt=0)
    currency: str = Field("USD", min_length=3, max_length=4)
    strategy: Literal["ema_cross", "bos_retest", "rsi_reversion", "ema_tick_cross"] = "ema_cross"
    params: dict[str, float | str] = {}  # str: a trained model's name (bos_retest's model)
    leverage: float | None = Field(None, gt=0, le=10_000)  # None: [paper.leverage] per class
    oms: Literal["hedging", "netting"] = "hedging"
    margin_call_level: float = Field(100.0, gt=0, le=10_000)  # percent margin level
    stop_out_level: float = Field(50.0, gt=0, le=10_000)
    commission_per_lot: float = Field(7.0, ge=0, le=10_000)  # round turn, account currency
    maker_bps: float = Field(10.0, ge=-100, le=1_000)  # below 0: a rebate
    taker_bps: float = Field(10.0, ge=0, le=1_000)

    @model_validator(mode="after")
    def _stop_out_below_margin_call(self) -> Self:
        if self.stop_out_level >= self.margin_call_level:
            raise ValueError(
                f"stop_out_level ({self.stop_out_level:g}) must be below margin_call_level "
                f"({self.margin_call_level:g}): the margin call warns before the stop-out "
                "closes positions; lower stop_out_level or raise margin_call_level"
            )
        return self


class ABSettings(_Section):
    """Two accounts compared: the experiment "ab" when no [[experiments]] is configured."""

    a: str = "A"
    b: str = "B"
    bandit: bool = True  # Thompson sampling shares the risk budget between the two


class ExperimentSettings(_Section):
    """One [[experiments]] table: variants compared on one metric (paper/ab.py), and with
    `bandit` their risk budget shared by Thompson sampling (paper/bandit.py).

    Every account trades on the engine's one feed (engine.feed), so variants always see the
    same market; the first variant is the control the others are compared with.
    """

    name: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_\-]+$")
    variants: list[str]  # account names, the control first
    metric: Literal["r", "return_pct"] = "r"  # per-trade R multiple, or return on equity
    min_trades: int = Field(100, ge=2, le=1_000_000)  # per variant, before a verdict
    alpha: float = Field(0.05, gt=0, lt=0.5)
    bandit: bool = True
    seed: int = Field(7, ge=0)  # the bootstrap's seed

    @field_validator("variants")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(value) < 2:
            raise ValueError(
                f"an experiment compares two or more accounts, got {len(value)}; list them, "
                'the control first, e.g. variants = ["A", "B"]'
            )
        twice = sorted({v for v in value if value.count(v) > 1})
        if twice:
            raise ValueError(f"{twice} listed twice; name each account once")
        return value


def _venue_symbols(value: list[str]) -> list[str]:
    if not value:
        raise ValueError("needs at least one symbol")
    return _symbol_names(value)


def _symbol_names(value: list[str]) -> list[str]:
    bad = [s for s in value if not s.isascii() or not s.isalnum() or s != s.upper()]
    if bad:
        raise ValueError(f"symbols are upper-case letters and digits, e.g. BTCUSDT; got {bad}")
    if len(set(value)) != len(value):
        raise ValueError(f"a symbol is listed twice: {value}")
    return value


class BinanceSettings(_Section):
    symbols: list[str] = ["BTCUSDT", "ETHUSDT"]
    stream_url: str = "wss://stream.binance.com:9443"
    fallback_urls: list[str] = ["wss://data-stream.binance.vision"]
    rest_url: str = "https://api.binance.com"
    streams: list[Literal["bookTicker", "trade", "depth", "kline"]] = list(BINANCE_STREAMS)
    stale_after_s: float = Field(10.0, gt=0, le=3600)
    rotate_after_h: float = Field(23.0, gt=0, le=23.9)
    api_key: SecretStr | None = None
    api_secret: SecretStr | None = None

    _symbols = field_validator("symbols")(classmethod(lambda cls, v: _venue_symbols(v)))

    @field_validator("streams")
    @classmethod
    def _quotes_drive(cls, value: list[str]) -> list[str]:
        if "bookTicker" not in value:
            raise ValueError("bookTicker is the quote that drives the pipeline: keep it")
        return value


class MT5Settings(_Section):
    symbols: list[str] = ["EURUSD", "GBPUSD", "USDJPY", "XAUUSD"]
    path: Path | None = None
    login: int | None = None
    server: str | None = None
    password: SecretStr | None = None
    bridge: str | None = None  # host:port of an mt5linux RPyC server (Linux)
    server_timezone: str = "America/New_York+7"
    poll_ms: int = Field(100, ge=10, le=10_000)

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("needs at least one symbol")
        return value

    @field_validator("path", "bridge", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("bridge")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is None:
            return value
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"give host:port, e.g. 127.0.0.1:18812; got {value!r}")
        return value

    @field_validator("server_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from mikrobot_tui.domain.timezones import parse_server_zone

        parse_server_zone(value)  # ValueError names what is wrong
        return value


class FeedSpec(_Section):
    """One venue of a mixed feed: `[[feeds]]` with `venue` and `symbols`."""

    venue: Literal["binance", "mt5", "sim"]
    symbols: list[str]

    _symbols = field_validator("symbols")(classmethod(lambda cls, v: _venue_symbols(v)))


class SignalsSettings(_Section):
    """External signals: an expert advisor's JSON file and a webhook for charting alerts."""

    account: str = "A"  # the account external signals trade in, unless a signal names one
    ea_file: Path | None = None
    ea_poll_ms: int = Field(250, ge=20, le=60_000)
    webhook: bool = False
    webhook_host: str = "127.0.0.1"
    webhook_port: int = Field(8787, ge=0, le=65_535)
    webhook_allow: list[str] = ["127.0.0.1", "::1"]
    webhook_per_minute: int = Field(60, ge=1, le=6_000)
    webhook_max_age_s: float = Field(30.0, gt=0, le=3_600)
    webhook_secret: SecretStr | None = None

    @field_validator("ea_file", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value


def _default_accounts() -> list[AccountSettings]:
    return [
        AccountSettings(name="A", strategy="bos_retest"),  # the house strategy
        AccountSettings(name="B", params={"fast": 8, "slow": 34}),  # its ema_cross baseline
    ]


SEVERITIES = ("info", "warning", "critical")


class AlertsSettings(_Section):
    """`[alerts]`: where alerts go beside the cockpit, and the engine's own log file.

    `webhook_url` and `webhook_secret` are secrets (a Telegram or Slack URL holds the bot's
    token): read from the environment or .env only, never logged.
    """

    webhook_url: SecretStr | None = None  # empty: no webhook
    webhook_format: Literal["json", "slack", "discord", "telegram"] = "json"
    telegram_chat_id: str = ""  # the chat a telegram-format alert goes to
    min_severity: Literal["info", "warning", "critical"] = "warning"
    webhook_secret: SecretStr | None = None  # HMAC-SHA256 key of X-Mikrobot-Signature
    retries: int = Field(5, ge=0, le=20)
    timeout_s: float = Field(5.0, gt=0, le=60)
    queue: int = Field(100, ge=1, le=10_000)
    log_dir: Path = Path("logs")  # relative to the database's folder unless absolute
    log_max_mb: float = Field(10.0, gt=0, le=10_000)
    log_backups: int = Field(5, ge=0, le=1_000)

    @field_validator("webhook_url", "webhook_secret", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @model_validator(mode="after")
    def _telegram_needs_a_chat(self) -> Self:
        if self.webhook_format == "telegram" and self.webhook_url and not self.telegram_chat_id:
            raise ValueError(
                'alerts.telegram_chat_id: webhook_format = "telegram" needs the chat id to '
                "post to (ask @userinfobot, or read getUpdates)"
            )
        return self
