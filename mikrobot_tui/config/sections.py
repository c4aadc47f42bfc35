"""The sections of config.toml, one model each: every key, its default and what it allows.

config.toml documents each key with a comment; a test holds the two to each other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator

from mikrobot_tui.domain.instruments import default_instruments


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
        AccountSettings(name="A", params={"fast": 5, "slow": 20}),
        AccountSettings(name="B", params={"fast": 8, "slow": 34}),
    ]
