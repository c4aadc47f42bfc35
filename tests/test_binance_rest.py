"""Binance instruments through python-binance's REST client, against a loopback HTTP server."""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Iterator

import pytest
from fake_binance import FakeRest, spot_symbols

from mikrobot_tui.clock import LiveClock
from mikrobot_tui.config import ConfigError, Settings
from mikrobot_tui.data.feeds import binance
from mikrobot_tui.data.feeds.binance_rest import (
    RestUnavailable,
    RestWeight,
    exchange_symbols,
    fetch_instruments,
    make_client,
)
from mikrobot_tui.domain.instruments import AssetClass, default_instruments


@pytest.fixture
def rest() -> Iterator[FakeRest]:
    table = spot_symbols(["BTCUSDT", "ETHUSDT"])
    table["SOLUSDT"] = ("SOL", "USDT", "0.01000000", "0.00100000", "0.00200000", "5.00000000")
    table["PEPEUSDT"] = ("PEPE", "USDT", "0.00000001", "1.00000000", "1.00000000", "1.00000000")
    with FakeRest(table) as server:
        yield server


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def dead_url() -> str:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_instruments_come_from_exchange_info(rest: FakeRest) -> None:
    got, notes = fetch_instruments(rest.url, ["SOLUSDT", "PEPEUSDT"])
    assert notes == []
    sol = got["SOLUSDT"]
    assert sol.asset_class is AssetClass.CRYPTO and (sol.base, sol.quote) == ("SOL", "USDT")
    assert sol.tick_size == sol.pip_size == 0.01 and sol.contract_size == 1.0
    assert (sol.lot_step, sol.min_lot, sol.min_notional) == (0.001, 0.002, 5.0)
    assert sol.round_lots(0.12345) == 0.123
    pepe = got["PEPEUSDT"]
    assert pepe.tick_size == 1e-8 and pepe.round_price(0.0000123456) == 0.00001235
    assert len(rest.requests) == 1 and "symbols=" in rest.requests[0]
    assert "SOLUSDT" in rest.requests[0] and rest.requests[0].startswith("/api/v3/exchangeInfo")


def test_429_is_retried_after_retry_after(rest: FakeRest) -> None:
    rest.throttle = [(429, "2")]
    sleeps = Sleeps()
    weight = RestWeight(sleep=sleeps)
    got, _ = fetch_instruments(rest.url, ["BTCUSDT"], weight=weight)
    assert sleeps.calls == [2.0] and len(rest.requests) == 2
    assert got["BTCUSDT"].min_notional == 5.0  # Binance's figure, not the catalogue's 10
    assert weight.used == rest.used_weight


def test_a_long_429_or_a_418_falls_back_to_the_catalogue(
    rest: FakeRest, caplog: pytest.LogCaptureFixture
) -> None:
    rest.throttle = [(429, "600")]
    with caplog.at_level(logging.WARNING, "mikrobot_tui.binance"):
        got, notes = fetch_instruments(rest.url, ["BTCUSDT"], weight=RestWeight(sleep=Sleeps()))
    assert got["BTCUSDT"] == default_instruments()["BTCUSDT"]
    assert "HTTP 429" in notes[0] and "built-in catalogue" in notes[0]
    assert any("built-in catalogue" in r.message for r in caplog.records)
    rest.throttle = [(418, "300")]
    weight = RestWeight(sleep=Sleeps())
    with pytest.raises(RestUnavailable, match="418"):
        exchange_symbols(make_client(rest.url), ["BTCUSDT"], weight)
    with pytest.raises(RestUnavailable, match="banned"):  # no second try while banned
        exchange_symbols(make_client(rest.url), ["BTCUSDT"], weight)
    assert len(rest.requests) == 2


def test_unreachable_rest_uses_the_catalogue_and_refuses_unknown_symbols() -> None:
    url = dead_url()
    got, notes = fetch_instruments(url, ["BTCUSDT", "ETHUSDT"], timeout_s=2)
    assert set(got) == {"BTCUSDT", "ETHUSDT"} and url in notes[0]
    with pytest.raises(ConfigError, match=r"binance.symbols: SOLUSDT cannot be described") as e:
        fetch_instruments(url, ["BTCUSDT", "SOLUSDT"], timeout_s=2)
    assert "BTCUSDT" in str(e.value) and "rest_url" in str(e.value)


def test_a_symbol_binance_does_not_list_is_refused_by_name(rest: FakeRest) -> None:
    with pytest.raises(ConfigError, match=r"binance.symbols: NOPEUSDT not listed on Binance"):
        fetch_instruments(rest.url, ["BTCUSDT", "NOPEUSDT"])
    assert len(rest.requests) == 2 and "symbols=" not in rest.requests[1]  # asked for all


def test_a_heavily_used_weight_waits_for_the_next_minute() -> None:
    sleeps = Sleeps()
    weight = RestWeight(sleep=sleeps, clock=lambda: 1_000_000_040.0)
    weight.after({"X-MBX-USED-WEIGHT-1M": "5900"})
    weight.before(max_wait_s=60)
    assert sleeps.calls == [40.0] and weight.used is None
    weight.after({"X-MBX-USED-WEIGHT-1M": "5900"})
    with pytest.raises(RestUnavailable, match="5900/6000"):
        weight.before(max_wait_s=10)


def test_from_settings_reads_binance_rest_url(rest: FakeRest) -> None:
    settings = Settings(binance={"rest_url": rest.url, "symbols": ["SOLUSDT", "BTCUSDT"]})
    feed = binance.from_settings(settings, LiveClock(), None)
    assert feed.symbols == ["SOLUSDT", "BTCUSDT"] and feed.mode == "LIVE"
    assert feed.instruments()["SOLUSDT"].lot_step == 0.001
    mixed = binance.from_settings(settings, LiveClock(), ["ETHUSDT"])
    assert mixed.symbols == ["ETHUSDT"] and list(mixed.instruments()) == ["ETHUSDT"]
    assert [h.venue for h in mixed.health()] == ["binance"]
