"""The MetaTrader 5 feed against a stand-in module with the real dtypes (tests/fake_mt5.py)."""

from __future__ import annotations

import asyncio
import random
import threading
from datetime import UTC, datetime

import numpy as np
import pytest
from fake_mt5 import (
    QUOTE,
    TICK_FLAG_ASK,
    TICK_FLAG_BUY,
    TICK_FLAG_LAST,
    TICK_FLAG_SELL,
    TICK_FLAG_VOLUME,
    FakeMT5,
    cfd,
    fx,
)

from mikrobot_tui.config import ConfigError, ConfigWarning
from mikrobot_tui.data.feeds import build_feed, mt5, mt5_ticks
from mikrobot_tui.data.feeds.mt5_terminal import ConnectionLost
from mikrobot_tui.data.feeds.mt5_ticks import FETCH, FLAG_ASK, FLAG_BID, fx_weekend
from mikrobot_tui.domain.instruments import AssetClass
from mikrobot_tui.domain.market import NS_PER_MS, NS_PER_SECOND, TICK_DTYPE
from mikrobot_tui.store.tickstore import count_ticks

SECRET = "hunter2-mt5-secret"


class Wall:
    """A wall clock the test sets."""

    def __init__(self, ns: int) -> None:
        self.ns = ns

    def now_ns(self) -> int:
        return self.ns


def server_ms(*when: int) -> int:
    """A broker server clock reading (its wall time, written as if it were UTC), in ms."""
    return int(datetime(*when, tzinfo=UTC).timestamp() * 1000)  # type: ignore[misc]


def utc_ns(*when: int) -> int:
    return int(datetime(*when, tzinfo=UTC).timestamp()) * NS_PER_SECOND  # type: ignore[misc]


# a Wednesday in the northern winter: New York + 7 is UTC+2
T0 = server_ms(2026, 1, 14, 12, 0, 0)
WED = utc_ns(2026, 1, 14, 10, 0, 5)
SYMBOLS = ["EURUSD", "USDJPY", "XAUUSD"]


def infos() -> list:
    return [
        fx("EURUSD"),
        fx("USDJPY", digits=3),
        cfd("XAUUSD", "Metals", 2, 100.0, base="XAU"),
    ]


@pytest.fixture
def settings(make_settings):
    def make(**mt5_keys):
        keys = {"symbols": SYMBOLS, "poll_ms": 10, **mt5_keys}
        return make_settings(engine={"feed": "mt5"}, mt5=keys)

    return make


def open_feed(settings, fake: FakeMT5, wall: Wall | None = None, **keys) -> mt5.MT5Feed:
    feed = mt5.from_settings(settings(**keys), wall or Wall(WED), None, module=fake)
    feed.backoff_s = (0.005, 0.02)
    return feed


def seed(fake: FakeMT5, at: int = T0) -> None:
    fake.add("EURUSD", at, 1.10000, 1.10010)
    fake.add("USDJPY", at, 150.000, 150.010)
    fake.add("XAUUSD", at, 2400.00, 2400.30)


def delivered(feed: mt5.MT5Feed) -> np.ndarray:
    return feed._take_ticks()


async def run_until(feed, done, timeout: float = 10.0, during=None) -> np.ndarray:
    """Consume the feed until done(ticks so far) or the timeout; `during(stop)` runs beside."""
    stop = asyncio.Event()
    got: list[np.ndarray] = []

    async def consume() -> None:
        async for batch in feed.batches(stop):
            got.append(batch)
            if done(np.concatenate(got)):
                stop.set()

    tasks = [asyncio.create_task(consume())]
    if during is not None:
        tasks.append(asyncio.create_task(during(stop)))
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), timeout)
    finally:
        stop.set()
    return np.concatenate(got) if got else np.zeros(0, dtype=TICK_DTYPE)


def expected_bids(fake: FakeMT5, symbol: str, from_ms: int = T0) -> list[float]:
    script = fake.script(symbol)
    return script["bid"][script["time_msc"] >= from_ms].tolist()


# ---------------------------------------------------------------- normal flow


async def test_polls_several_symbols_into_tick_rows(settings) -> None:
    fake = FakeMT5(infos())
    seed(fake)
    wall = Wall(WED)
    feed = open_feed(settings, fake, wall)
    assert (feed.mode, feed.name, feed.symbols) == ("LIVE", "mt5", SYMBOLS)
    assert fake.selected == set(SYMBOLS)
    for k in range(1, 40):
        fake.add("EURUSD", T0 + 25 * k, 1.10000 + k * 1e-5, 1.10010 + k * 1e-5)
        if k % 2:
            fake.add("USDJPY", T0 + 25 * k, 150.0 + k * 1e-3, 150.01 + k * 1e-3)
    fake.add("XAUUSD", T0 + 999, 2401.00, 2401.30)

    got = await run_until(feed, lambda t: len(t) >= 1 + 39 + 1 + 20 + 2)
    for i, sym in enumerate(SYMBOLS):
        rows = got[got["sym"] == i]
        script = fake.script(sym)
        assert rows["bid"].tolist() == script["bid"].tolist()
        assert rows["ask"].tolist() == script["ask"].tolist()
        # the server clock is New York + 7, UTC+2 in January
        assert rows["ts_event"].tolist() == [
            (ms - 2 * 3600 * 1000) * NS_PER_MS for ms in script["time_msc"].tolist()
        ]
    assert (got["ts_recv"] == WED).all()
    assert np.isnan(got["last"]).all() and np.isnan(got["volume"]).all()
    assert (np.diff(got["ts_event"]) >= 0).all()  # one batch across symbols in time order
    (health,) = feed.health()
    assert (health.venue, health.name, health.reconnects) == ("mt5", "mt5", 0)
    assert feed.take_failures() == [] and fake.overlaps == 0


def test_instruments_come_from_symbol_info(settings) -> None:
    fake = FakeMT5(
        [
            fx("EURUSD"),
            fx("USDJPY", digits=3),
            fx("GBPUSD", digits=4),
            cfd("XAUUSD", "Forex\\Metals", 2, 100.0, base="XAU"),  # gold filed under Forex
            cfd("US30", "Indices\\Cash", 1, 1.0, tick_size=0.5),
            cfd("BTCUSD", "Crypto", 2, 1.0, base="BTC"),
            cfd("UKOIL", "Energies", 3, 1000.0),
            cfd("EURUSD.m", "Suffix", 5, 100_000.0, base="EUR"),
            cfd("WEIRD", "Other", 2, 10.0),
        ]
    )
    names = list(fake.infos)
    for name in names:
        fake.add(name, T0, 1.0, 1.1)
    feed = open_feed(settings, fake, symbols=names)
    got = feed.instruments()
    eur, jpy, gbp = got["EURUSD"], got["USDJPY"], got["GBPUSD"]
    assert (eur.asset_class, eur.pip_size, eur.tick_size) == (AssetClass.FOREX, 0.0001, 0.00001)
    assert (eur.base, eur.quote, eur.contract_size, eur.lot_step, eur.min_lot) == (
        "EUR", "USD", 100_000.0, 0.01, 0.01,
    )  # fmt: skip
    assert eur.commission_per_lot == 3.5  # brokers do not publish it: the catalogue's
    assert (jpy.asset_class, jpy.pip_size, jpy.tick_size) == (AssetClass.FOREX_JPY, 0.01, 0.001)
    assert (gbp.pip_size, gbp.tick_size) == (0.0001, 0.0001)  # 4 digits: the pip is the point
    assert (got["XAUUSD"].asset_class, got["XAUUSD"].base) == (AssetClass.METALS, "XAU")
    us30 = got["US30"]
    assert (us30.asset_class, us30.base, us30.tick_size, us30.pip_size) == (
        AssetClass.INDICES, "US30", 0.5, 0.1,
    )  # fmt: skip
    assert got["BTCUSD"].asset_class is AssetClass.CRYPTO
    assert (got["UKOIL"].asset_class, got["UKOIL"].base) == (AssetClass.ENERGIES, "UKOIL")
    assert got["EURUSD.m"].asset_class is AssetClass.FOREX
    assert got["EURUSD.m"].commission_per_lot == 3.5  # the catalogue knows it by its prefix
    assert got["WEIRD"].asset_class is AssetClass.INDICES
    assert feed.specs["EURUSD"].tick_value == 1.0 and feed.specs["US30"].volume_max == 50.0


def test_a_symbol_the_broker_does_not_have_is_refused_naming_it(settings) -> None:
    fake = FakeMT5([*infos(), fx("EURUSDm")])
    seed(fake)
    with pytest.raises(ConfigError) as err:
        open_feed(settings, fake, symbols=["EURUSD", "EURUSX"])
    text = str(err.value)
    assert "mt5.symbols" in text and "'EURUSX'" in text and "EURUSDm" in text
    assert not fake.initialized  # shut down again


def test_a_mixed_feed_names_its_own_key(make_settings) -> None:
    fake = FakeMT5(infos())
    seed(fake)
    settings = make_settings(engine={"feed": "mixed"}, feeds=[{"venue": "mt5", "symbols": ["XX"]}])
    with pytest.raises(ConfigError, match=r"feeds \(venue mt5\)\.symbols"):
        mt5.from_settings(settings, Wall(WED), ["XX"], module=fake)


# ---------------------------------------------------------------- exact polls


def test_ticks_sharing_a_millisecond_across_polls_come_once_and_all(settings) -> None:
    fake = FakeMT5(infos())
    seed(fake)
    feed = open_feed(settings, fake)
    feed.poll_once()
    assert len(delivered(feed)) == 3
    m = T0 + 7
    fake.add("EURUSD", m, 1.10001, 1.10011)
    fake.add("EURUSD", m, 1.10002, 1.10012)
    feed.poll_once()
    first = delivered(feed)
    fake.add("EURUSD", m, 1.10003, 1.10013)  # a third tick at the same millisecond, later
    fake.add("EURUSD", m + 1, 1.10004, 1.10014)
    feed.poll_once()
    second = delivered(feed)
    assert first["bid"].tolist() == [1.10001, 1.10002]
    assert second["bid"].tolist() == [1.10003, 1.10004]
    # asked from the second of the last tick: the terminal's date_from is whole seconds
    assert [r for r in fake.requests if r[0] == "EURUSD"][-1] == ("EURUSD", m // 1000, FETCH)


@pytest.mark.parametrize("seed_", range(20))
def test_random_polls_over_shared_milliseconds_deliver_the_script_exactly(
    settings, seed_: int
) -> None:
    rng = random.Random(seed_)
    fake = FakeMT5(infos())
    seed(fake)
    feed = open_feed(settings, fake)
    got = []
    t = T0
    for _ in range(300):
        t += rng.choice([0, 0, 0, 1, 1, 999, 1000, 1001])  # many ticks share a millisecond
        k = len(fake.ticks["EURUSD"])
        fake.add("EURUSD", t, 1.1 + k * 1e-5, 1.1001 + k * 1e-5)
        if rng.random() < 0.3:
            feed.poll_once()
            got.append(delivered(feed))
    feed.poll_once()
    got.append(delivered(feed))
    ticks = np.concatenate(got)
    eur = ticks[ticks["sym"] == 0]
    assert eur["bid"].tolist() == fake.script("EURUSD")["bid"].tolist()


def test_a_backlog_longer_than_one_answer_takes_several_polls(settings, monkeypatch) -> None:
    monkeypatch.setattr(mt5_ticks, "FETCH", 7)
    fake = FakeMT5(infos())
    seed(fake)
    feed = open_feed(settings, fake)
    feed._cursors[0].fetch = 7
    for k in range(1, 50):
        fake.add("EURUSD", T0 + k // 4, 1.1 + k * 1e-5, 1.1001 + k * 1e-5)
    got = []
    for _ in range(30):
        feed.poll_once()
        got.append(delivered(feed))
    eur = np.concatenate(got)
    eur = eur[eur["sym"] == 0]
    assert eur["bid"].tolist() == fake.script("EURUSD")["bid"].tolist()


def test_overlapping_polls_never_deliver_twice_nor_call_the_module_at_once(settings) -> None:
    fake = FakeMT5(infos(), delay_s=0.002)
    seed(fake)
    feed = open_feed(settings, fake)
    done = threading.Event()

    def writer() -> None:
        for k in range(1, 300):
            fake.add("EURUSD", T0 + k // 3, 1.1 + k * 1e-5, 1.1001 + k * 1e-5)
        done.set()

    def poller() -> None:
        while not done.is_set():
            feed.poll_once()

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=poller) for _ in "abc"]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    feed.poll_once()
    ticks = delivered(feed)
    eur = ticks[ticks["sym"] == 0]
    assert sorted(eur["bid"].tolist()) == fake.script("EURUSD")["bid"].tolist()
    assert fake.overlaps == 0


def test_a_symbol_whose_poll_is_under_way_is_skipped_by_the_next_poll(settings) -> None:
    entered, gate = threading.Event(), threading.Event()

    class Gated(FakeMT5):
        def copy_ticks_from(self, symbol, *args):
            if symbol == "EURUSD" and not gate.is_set():
                entered.set()
                gate.wait(5)
            return super().copy_ticks_from(symbol, *args)

    fake = Gated(infos())
    seed(fake)
    feed = open_feed(settings, fake)
    fake.add("EURUSD", T0 + 1, 1.2, 1.2001)
    first = threading.Thread(target=feed.poll_once)
    first.start()
    assert entered.wait(5)  # the first poll is inside EURUSD's call
    second = threading.Thread(target=feed.poll_once)
    second.start()
    second.join(0.1)
    gate.set()
    first.join(5)
    second.join(5)
    asked = [r[0] for r in fake.requests]
    assert asked.count("EURUSD") == 1  # the second poll left it to the first
    assert asked.count("USDJPY") >= 1 and asked.count("XAUUSD") >= 1
    ticks = delivered(feed)
    assert ticks[ticks["sym"] == 0]["bid"].tolist() == [1.1, 1.2]


async def test_a_slow_terminal_makes_polls_wait_not_overlap(settings) -> None:
    fake = FakeMT5(infos(), delay_s=0.01)  # a round takes ~30 ms against a 10 ms poll
    seed(fake)
    feed = open_feed(settings, fake)

    async def market(stop: asyncio.Event) -> None:
        for k in range(1, 120):
            fake.add("EURUSD", T0 + k * 3, 1.1 + k * 1e-5, 1.1001 + k * 1e-5)
            await asyncio.sleep(0.002)

    got = await run_until(feed, lambda t: (t["sym"] == 0).sum() >= 120, during=market)
    eur = got[got["sym"] == 0]
    assert eur["bid"].tolist() == fake.script("EURUSD")["bid"].tolist()
    assert fake.overlaps == 0


# ---------------------------------------------------------------- conversion


def test_a_side_that_did_not_change_carries_and_trades_are_their_own_records(settings) -> None:
    fake = FakeMT5([cfd("DE40", "Indices", 1, 1.0, base="EUR", quote="EUR")])
    fake.add("DE40", T0, 18000.0, 18001.0)
    feed = open_feed(settings, fake, symbols=["DE40"])
    fake.add("DE40", T0 + 1, 0.0, 18001.5, flags=TICK_FLAG_ASK)  # the bid did not change
    trade = TICK_FLAG_LAST | TICK_FLAG_VOLUME
    fake.add("DE40", T0 + 2, 0.0, 0.0, 18001.5, 2, trade | TICK_FLAG_BUY, 2.0)
    fake.add("DE40", T0 + 2, 0.0, 0.0, 18001.5, 2, trade | TICK_FLAG_BUY, 2.0)  # the same again
    fake.add("DE40", T0 + 3, 0.0, 0.0, 18000.0, 1, trade | TICK_FLAG_SELL, 0.0)
    feed.poll_once()
    ticks = delivered(feed)
    assert ticks["bid"].tolist() == [18000.0, 18000.0, 18000.0, 18000.0]
    assert ticks["ask"].tolist() == [18001.0, 18001.5, 18001.5, 18001.5]
    assert np.isnan(ticks["last"][:2]).all()
    assert ticks["last"][2:].tolist() == [18001.5, 18000.0]
    assert ticks["volume"][2:].tolist() == [2.0, 1.0]  # volume_real, else volume
    trades = feed.take_trades()
    assert trades["price"].tolist() == [18001.5, 18001.5, 18000.0]  # two trades stay two
    assert trades["side"].tolist() == [1, 1, -1]
    assert trades["size"].tolist() == [2.0, 2.0, 1.0]
    assert (trades["ts_event"] == ticks["ts_event"][[2, 2, 3]]).all()
    assert len(feed.take_trades()) == 0


@pytest.mark.parametrize(
    ("zone", "friday_utc_h", "monday_utc_h"),
    [
        ("America/New_York+7", 10, 9),  # US daylight saving from Sunday 8 March 2026
        ("Europe/Athens", 10, 10),  # Europe changes on 29 March
        ("UTC+2", 10, 10),  # a fixed clock
    ],
)
def test_server_time_becomes_utc_across_a_us_dst_switch(
    settings, zone: str, friday_utc_h: int, monday_utc_h: int
) -> None:
    fake = FakeMT5([fx("EURUSD")])
    friday = server_ms(2026, 3, 6, 12, 0, 0)
    fake.add("EURUSD", friday, 1.1, 1.1001)
    feed = open_feed(settings, fake, symbols=["EURUSD"], server_timezone=zone)
    monday = server_ms(2026, 3, 9, 12, 0, 0)
    fake.add("EURUSD", monday, 1.1002, 1.1003)
    fake.add("EURUSD", monday + 1, 1.1003, 1.1004)
    feed.poll_once()
    ts = delivered(feed)["ts_event"].tolist()
    assert ts == [
        utc_ns(2026, 3, 6, friday_utc_h, 0, 0),
        utc_ns(2026, 3, 9, monday_utc_h, 0, 0),
        utc_ns(2026, 3, 9, monday_utc_h, 0, 0) + NS_PER_MS,
    ]


# ---------------------------------------------------------------- closed markets


def test_the_fx_weekend_runs_from_friday_22_to_sunday_22_utc() -> None:
    assert not fx_weekend(utc_ns(2026, 1, 16, 21, 59, 59))  # Friday
    assert fx_weekend(utc_ns(2026, 1, 16, 22, 0, 0))
    assert fx_weekend(utc_ns(2026, 1, 17, 12, 0, 0))  # Saturday
    assert fx_weekend(utc_ns(2026, 1, 18, 21, 59, 59))  # Sunday
    assert not fx_weekend(utc_ns(2026, 1, 18, 22, 0, 0))
    assert not fx_weekend(utc_ns(2026, 1, 14, 12, 0, 0))  # Wednesday


async def test_the_weekend_is_closed_not_a_gap_nor_a_failure(settings) -> None:
    fake = FakeMT5(infos())
    seed(fake, server_ms(2026, 1, 16, 23, 59, 58))  # Friday's last quotes, 21:59:58 UTC
    saturday = Wall(utc_ns(2026, 1, 17, 12, 0, 0))
    feed = open_feed(settings, fake, saturday)

    seen = []

    async def later(stop: asyncio.Event) -> None:
        await asyncio.sleep(0.3)
        seen.append(feed.health()[0])
        saturday.ns = utc_ns(2026, 1, 19, 12, 0, 0)  # the same silence on a weekday is stale
        seen.append(feed.health()[0])
        stop.set()

    got = await run_until(feed, lambda t: False, during=later)
    assert len(got) == 3  # the standing quotes, once
    closed, weekday = seen
    assert closed.state == "CLOSED" and "market closed" in closed.detail
    assert weekday.state == "STALE"
    assert feed.take_failures() == []


def test_silence_on_a_weekday_is_stale_after_a_while_and_never_a_failure(settings) -> None:
    fake = FakeMT5(infos())
    seed(fake)
    wall = Wall(WED)
    feed = open_feed(settings, fake, wall)
    feed.poll_once()
    assert feed.health()[0].state == "LIVE"  # just connected: the first tick may take a moment
    wall.ns += 31 * NS_PER_SECOND
    feed.poll_once()
    assert feed.health()[0].state == "STALE"
    fake.add("EURUSD", T0 + 31_000, 1.2, 1.2001)
    feed.poll_once()
    assert feed.health()[0].state == "LIVE"
    assert feed.take_failures() == []


def test_a_market_with_trading_disabled_is_closed(settings) -> None:
    fake = FakeMT5([fx("EURUSD", trade_mode=0)])
    fake.add("EURUSD", T0, 1.1, 1.1001)
    feed = open_feed(settings, fake, symbols=["EURUSD"])
    feed.poll_once()
    (health,) = feed.health()
    assert health.state == "CLOSED" and "trading disabled" in health.detail


# ---------------------------------------------------------------- a terminal that fails


@pytest.mark.parametrize(
    ("code", "message", "delay_s"),
    [(-10004, "IPC send failed", 0.0), (-10005, "IPC timeout", 0.05)],
)
async def test_an_ipc_failure_mid_run_reinitializes_and_continues_without_a_hole(
    settings, code: int, message: str, delay_s: float
) -> None:
    fake = FakeMT5(infos(), password=SECRET)
    seed(fake)
    wall = Wall(WED)
    feed = open_feed(settings, fake, wall, password=SECRET)
    n = 200

    async def market(stop: asyncio.Event) -> None:
        for k in range(1, n):
            fake.add("EURUSD", T0 + k * 2, 1.1 + k * 1e-5, 1.1001 + k * 1e-5)
            if k == 60:
                fake.fail(code, message, calls={"copy_ticks_from"}, delay_s=delay_s)
                fake.fail(code, message, times=2, calls={"initialize"})
            await asyncio.sleep(0.001)

    got = await run_until(feed, lambda t: (t["sym"] == 0).sum() >= n, during=market)
    eur = got[got["sym"] == 0]
    assert eur["bid"].tolist() == fake.script("EURUSD")["bid"].tolist()  # no hole, no copy
    (health,) = feed.health()
    assert health.reconnects == 1
    assert f"error {code}" in health.detail and health.state == "STOPPED"
    failures = feed.take_failures()
    assert [ts for ts, _ in failures] == [WED] * 3
    assert all(
        SECRET not in why for _, why in failures
    )  # the failed poll and two failed initializations
    assert feed.take_failures() == []
    assert len(fake.initialize_calls) == 1 + 3
    assert all(c["password"] == SECRET for c in fake.initialize_calls)
    assert SECRET not in repr(feed.health())
    assert fake.overlaps == 0


async def test_a_terminal_not_answering_at_start_starts_down_from_the_catalogue(settings) -> None:
    fake = FakeMT5(infos())
    seed(fake)
    fake.fail(-10004, "No IPC connection", calls={"initialize"})
    with pytest.warns(ConfigWarning, match="built-in catalogue"):
        feed = open_feed(settings, fake)
    assert feed.health()[0].state == "DOWN"
    assert feed.instruments()["USDJPY"].pip_size == 0.01
    assert len(feed.take_failures()) == 1
    got = await run_until(feed, lambda t: len(t) >= 3)
    assert sorted(got["sym"].tolist()) == [0, 1, 2]
    assert feed.health()[0].reconnects == 1


def test_a_terminal_that_cannot_be_found_says_so(settings) -> None:
    fake = FakeMT5(infos())
    fake.fail(-10003, "IPC initialize failed, MetaTrader 5 x64 not found", calls={"initialize"})
    with pytest.raises(ConfigError, match=r"mt5\.path: the MetaTrader 5 terminal was not found"):
        open_feed(settings, fake)


def test_a_refused_login_names_the_keys_and_never_the_password(settings) -> None:
    fake = FakeMT5(infos(), password="the-right-one")
    seed(fake)
    with pytest.raises(ConfigError) as err:
        open_feed(settings, fake, password=SECRET, login=1234, server="Broker-Demo")
    text = str(err.value)
    assert "mt5.login" in text and "MIKROBOT_MT5__PASSWORD" in text and SECRET not in text
    assert fake.initialize_calls[0] == {
        "path": None, "login": 1234, "password": SECRET, "server": "Broker-Demo",
    }  # fmt: skip


def test_a_bridge_error_quoting_the_password_is_scrubbed(settings) -> None:
    class Leaky(FakeMT5):
        def copy_ticks_from(self, *args, **kw):
            raise EOFError(f"connection closed while eval mt5.initialize(password='{SECRET}')")

    fake = Leaky(infos())
    seed(fake)
    feed = open_feed(settings, fake, password=SECRET)
    with pytest.raises(ConnectionLost) as err:
        feed.poll_once()
    assert SECRET not in str(err.value) and "**********" in str(err.value)
    feed._down(err.value)
    assert SECRET not in repr(feed.health())


# ---------------------------------------------------------------- finding the module


def test_no_metatrader_module_is_a_config_error_naming_the_alternatives(
    settings, monkeypatch
) -> None:
    monkeypatch.setitem(__import__("sys").modules, "MetaTrader5", None)
    with pytest.raises(ConfigError) as err:
        build_feed(settings(), Wall(WED))
    text = str(err.value)
    assert 'pip install -e ".[mt5]"' in text and "mt5.bridge" in text and '"sim"' in text


def test_a_bridge_without_mt5linux_says_how_to_install_it(settings, monkeypatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "mt5linux", None)
    with pytest.raises(ConfigError, match="pip install mt5linux"):
        build_feed(settings(bridge="127.0.0.1:18812"), Wall(WED))


def test_a_bridge_is_mt5linux_s_client_on_host_and_port(settings, monkeypatch) -> None:
    import types

    fake = FakeMT5(infos())
    seed(fake)
    made = []

    def client(host: str, port: int) -> FakeMT5:
        made.append((host, port))
        return fake

    monkeypatch.setitem(
        __import__("sys").modules, "mt5linux", types.SimpleNamespace(MetaTrader5=client)
    )
    feed = build_feed(settings(bridge="127.0.0.1:18812"), Wall(WED))
    assert made == [("127.0.0.1", 18812)] and feed.name == "mt5"


def test_a_bridge_that_does_not_answer_is_named(settings, monkeypatch) -> None:
    import types

    def client(host: str, port: int) -> FakeMT5:
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setitem(
        __import__("sys").modules, "mt5linux", types.SimpleNamespace(MetaTrader5=client)
    )
    with pytest.raises(ConfigError, match=r"mt5\.bridge: the mt5linux bridge at 127\.0\.0\.1:1"):
        build_feed(settings(bridge="127.0.0.1:18812"), Wall(WED))


async def test_a_mixed_feed_takes_forex_from_mt5_and_crypto_from_the_simulated_market(
    make_settings, monkeypatch
) -> None:
    fake = FakeMT5(infos())
    seed(fake)
    monkeypatch.setitem(__import__("sys").modules, "MetaTrader5", fake)  # as on Windows
    settings = make_settings(
        engine={"feed": "mixed"},
        feeds=[
            {"venue": "mt5", "symbols": ["EURUSD", "USDJPY"]},
            {"venue": "sim", "symbols": ["BTCUSDT"]},
        ],
    )
    feed = build_feed(settings, Wall(WED))
    assert feed.symbols == ["EURUSD", "USDJPY", "BTCUSDT"] and feed.mode == "LIVE"
    assert feed.instruments()["USDJPY"].asset_class is AssetClass.FOREX_JPY
    assert [h.venue for h in feed.health()] == ["mt5", "sim"]
    fake.add("USDJPY", T0 + 5, 150.5, 150.51)
    got = await run_until(feed, lambda t: {0, 1} <= set(t["sym"].tolist()))
    jpy = got[got["sym"] == 1]
    assert jpy["bid"].tolist()[:2] == [150.0, 150.5]


def test_quote_flags_constant_matches_the_module() -> None:
    assert QUOTE == FLAG_BID | FLAG_ASK


# ---------------------------------------------------------------- through the engine


async def test_an_engine_on_the_mt5_feed_writes_ticks_bars_and_its_health(
    make_settings, db_path, capsys, caplog
) -> None:
    import sqlite3

    from mikrobot_tui.clock import LiveClock
    from mikrobot_tui.data.feeds.mt5_ticks import ServerClock
    from mikrobot_tui.domain.timezones import parse_server_zone
    from mikrobot_tui.engine import Engine
    from mikrobot_tui.engine.runner import Runner

    caplog.set_level("DEBUG")
    settings = make_settings(
        engine={"feed": "mt5"},
        mt5={"symbols": ["EURUSD", "USDJPY"], "password": SECRET},
        # the fake market runs 60 times the wall clock: its ticks run minutes ahead of their
        # receipt by design, which the quality monitor would reject as from the future
        quality={"future_tolerance_s": 3600.0},
    )
    fake = FakeMT5([fx("EURUSD"), fx("USDJPY", digits=3)], password=SECRET)
    clock = LiveClock()
    now_server = ServerClock(*parse_server_zone(settings.mt5.server_timezone)).server_ms(
        clock.now_ns()
    )
    fake.live(now_server, speed=60.0)  # three market minutes in three seconds
    feed = mt5.from_settings(settings, clock, None, module=fake)
    engine = Engine(settings, feed=feed, clock=clock)
    try:
        await Runner(engine).run(asyncio.Event(), duration_s=3.5)
    finally:
        engine.close()
    conn = sqlite3.connect(db_path)
    ticks = count_ticks(conn)
    symbols = {s for (s,) in conn.execute("SELECT DISTINCT symbol FROM tick_blocks")}
    (bars,) = conn.execute("SELECT COUNT(*) FROM bars WHERE timeframe = 'M1'").fetchone()
    feeds = conn.execute("SELECT name, venue, state FROM feeds").fetchall()
    pips = dict(conn.execute("SELECT symbol, pip_size FROM instruments"))
    conn.close()
    assert ticks > 1000 and symbols == {"EURUSD", "USDJPY"}
    assert bars >= 2
    assert feeds == [("mt5", "mt5", "STOPPED")]
    assert pips["USDJPY"] == 0.01
    assert fake.overlaps == 0
    everything = b"".join(p.read_bytes() for p in db_path.parent.glob(db_path.name + "*"))
    out = capsys.readouterr()
    assert SECRET.encode() not in everything
    assert SECRET not in out.out + out.err + caplog.text


def test_no_metatrader_through_the_real_cli_exits_2_with_the_alternatives(tmp_path) -> None:
    import importlib.util
    import os
    import subprocess
    import sys

    if importlib.util.find_spec("MetaTrader5") or importlib.util.find_spec("mt5linux"):
        pytest.skip("this machine has a MetaTrader5 module")
    env = {**os.environ, "MIKROBOT_ENGINE__FEED": "mt5", "MIKROBOT_MT5__PASSWORD": SECRET}
    done = subprocess.run(
        [sys.executable, "-m", "mikrobot_tui.cli", "--db", "x.db", "run", "--headless",
         "--duration", "1"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "Traceback" not in done.stderr + done.stdout
    assert "MetaTrader5" in done.stderr and "mt5.bridge" in done.stderr and '"sim"' in done.stderr
    assert SECRET not in done.stderr + done.stdout
    assert not list(tmp_path.glob("x.db*"))
    shown = subprocess.run(
        [sys.executable, "-m", "mikrobot_tui.cli", "config", "show"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert shown.returncode == 0 and SECRET not in shown.stdout + shown.stderr
    assert '"password": "**********"' in shown.stdout


async def test_a_symbol_gone_after_a_reconnect_is_left_out_and_said(settings) -> None:
    fake = FakeMT5(infos())
    seed(fake)
    feed = open_feed(settings, fake)
    feed.poll_once()
    delivered(feed)
    del fake.infos["XAUUSD"]  # the broker dropped it while we were away
    fake.fail(-10004, "IPC send failed", calls={"copy_ticks_from"})
    fake.add("EURUSD", T0 + 10, 1.2, 1.2001)
    got = await run_until(feed, lambda t: (t["sym"] == 0).any())
    assert got["bid"].tolist() == [1.2]
    detail = feed.health()[0].detail
    assert "reconnected after" in detail and "no longer has ['XAUUSD']" in detail
