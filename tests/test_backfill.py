"""`mikrobot history backfill`: Binance klines from FakeRest, MT5 rates from the stand-in.

The CLI runs through typer's runner on a real SQLite file; the venue adapters' waits
(`backfill.pause`) are recorded instead of slept.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
from fake_binance import FakeRest, spot_symbols
from fake_mt5 import RATES_DTYPE, FakeMT5, fx
from typer.testing import CliRunner

from mikrobot_tui.cli import app
from mikrobot_tui.data import backfill
from mikrobot_tui.data.history import aggregate
from mikrobot_tui.domain.market import BAR_DTYPE, TIMEFRAMES

runner = CliRunner()
NS = 1_000_000_000
MIN = 60 * NS
KEYS = [
    "symbol",
    "venue",
    "start_ts",
    "end_ts",
    "fetched",
    "stored",
    "gaps_repaired",
    "requests",
    "resumed_from_ts",
]
T0 = "2024-03-04T00:00:00"  # a Monday


def ns(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()) * NS


def iso(t: int) -> str:
    return datetime.fromtimestamp(t // NS, UTC).strftime("%Y-%m-%dT%H:%M:%S")


@pytest.fixture
def pauses(monkeypatch) -> list[float]:
    waited: list[float] = []
    monkeypatch.setattr(backfill, "pause", waited.append)
    return waited


@pytest.fixture
def rest():
    with FakeRest(spot_symbols(["BTCUSDT", "ETHUSDT"])) as fake:
        yield fake


def config(tmp_path: Path, rest_url: str = "http://127.0.0.1:9") -> Path:
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f'[binance]\nrest_url = "{rest_url}"\nsymbols = ["BTCUSDT"]\n\n'
        '[mt5]\nsymbols = ["EURUSD"]\nserver_timezone = "America/New_York+7"\n'
    )
    return cfg


def run(tmp_path: Path, cfg: Path, *args: str):
    db = tmp_path / "m.db"
    return runner.invoke(
        app,
        ["--config", str(cfg), "--db", str(db), "history", "backfill", *args],
        catch_exceptions=False,
    )


def run_json(tmp_path: Path, cfg: Path, *args: str) -> dict:
    result = run(tmp_path, cfg, *args, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert list(out) == KEYS
    return out


def bars(tmp_path: Path, symbol: str, tf: str) -> list[tuple]:
    with sqlite3.connect(tmp_path / "m.db") as conn:
        return conn.execute(
            "SELECT ts_open, open, high, low, close, ticks, volume FROM bars "
            "WHERE symbol = ? AND timeframe = ? ORDER BY ts_open",
            [symbol, tf],
        ).fetchall()


def klines_starts(rest: FakeRest) -> list[int]:
    """startTime (ms) of every klines request, in order."""
    out = []
    for path in rest.requests:
        url = urlparse(path)
        if url.path == "/api/v3/klines":
            out.append(int(parse_qs(url.query)["startTime"][0]))
    return out


def as_bars(rows: list[tuple], period: int) -> np.ndarray:
    out = np.zeros(len(rows), dtype=BAR_DTYPE)
    for k, name in enumerate(("ts_open", "open", "high", "low", "close", "ticks", "volume")):
        out[name] = [r[k] for r in rows]
    out["period_ns"] = period
    return out


def assert_aggregates_match(tmp_path: Path, symbol: str, ny_close: bool = False) -> None:
    """Every longer timeframe stored is its M1 bars rolled up (H4 and D1 on New York's
    trading day when `ny_close`)."""
    m1 = as_bars(bars(tmp_path, symbol, "M1"), MIN)
    for tf, period in TIMEFRAMES.items():
        if tf == "M1":
            continue
        want = aggregate(m1, period, ny_close)
        got = as_bars(bars(tmp_path, symbol, tf), period)
        assert len(got) == len(want), tf
        for name in ("ts_open", "open", "high", "low", "close", "ticks"):
            assert got[name].tolist() == want[name].tolist(), (tf, name)
        assert np.allclose(got["volume"], want["volume"]), tf


# ---------------------------------------------------------------- Binance


def test_pages_are_stitched_exactly_and_a_second_run_fetches_nothing(
    tmp_path, rest, pauses
) -> None:
    t0 = ns(T0)
    rest.add_klines("BTCUSDT", t0 // 1_000_000 - 10 * 60_000, 2520)  # 10 before, 10 after
    cfg = config(tmp_path, rest.url)
    end = iso(t0 + 2500 * MIN)
    out = run_json(tmp_path, cfg, "--symbol", "BTCUSDT", "--start", T0, "--end", end)
    assert out["venue"] == "binance" and out["start_ts"] == t0
    assert (out["fetched"], out["stored"], out["requests"]) == (2500, 2500, 3)
    assert out["gaps_repaired"] == 0 and out["resumed_from_ts"] is None
    ms0 = t0 // 1_000_000
    assert klines_starts(rest) == [ms0, ms0 + 1000 * 60_000, ms0 + 2000 * 60_000]
    m1 = bars(tmp_path, "BTCUSDT", "M1")
    assert [r[0] for r in m1] == [t0 + i * MIN for i in range(2500)]  # no hole, no overlap
    first = rest.klines["BTCUSDT"][10]
    assert m1[0][1:] == (float(first[1]), float(first[2]), float(first[3]), float(first[4]), 3, 1.5)
    assert len(bars(tmp_path, "BTCUSDT", "M5")) == 500
    assert len(bars(tmp_path, "BTCUSDT", "H1")) == 42  # 2500 minutes: 41 h 40 min
    assert_aggregates_match(tmp_path, "BTCUSDT")
    assert pauses == []

    again = run_json(tmp_path, cfg, "--symbol", "BTCUSDT", "--start", T0, "--end", end)
    assert (again["fetched"], again["stored"], again["requests"]) == (0, 0, 0)
    assert len(klines_starts(rest)) == 3


def test_a_429_waits_its_retry_after_and_a_5xx_is_retried_with_backoff(
    tmp_path, rest, pauses
) -> None:
    t0 = ns(T0)
    rest.add_klines("BTCUSDT", t0 // 1_000_000, 1500)
    rest.throttle = [(429, "3"), (503, "")]
    cfg = config(tmp_path, rest.url)
    out = run_json(
        tmp_path, cfg, "--symbol", "BTCUSDT", "--start", T0, "--end", iso(t0 + 1500 * MIN)
    )
    assert (out["stored"], out["requests"]) == (1500, 4)  # 2 pages + the 2 refused
    assert pauses == [3.0, 1.0]  # Retry-After, then the second attempt's backoff
    assert len(bars(tmp_path, "BTCUSDT", "M1")) == 1500


def test_the_request_weight_is_respected(tmp_path, rest, pauses, monkeypatch) -> None:
    t0 = ns(T0)
    rest.add_klines("BTCUSDT", t0 // 1_000_000, 4000)
    rest.used_weight = 5396  # two pages bring it to 5400, 90% of 6000
    at_pause: list[int] = []

    def new_minute(seconds: float) -> None:
        pauses.append(seconds)
        at_pause.append(len(rest.requests))
        rest.used_weight = 0  # the minute has turned

    monkeypatch.setattr(backfill, "pause", new_minute)
    cfg = config(tmp_path, rest.url)
    out = run_json(
        tmp_path, cfg, "--symbol", "BTCUSDT", "--start", T0, "--end", iso(t0 + 4000 * MIN)
    )
    assert (out["stored"], out["requests"]) == (4000, 4)
    assert len(pauses) == 1 and 0 < pauses[0] <= 60  # up to the next minute
    assert at_pause == [2]  # after the answer that reported 5400, before the third request


def test_a_backfill_that_fails_midway_resumes_without_refetching(tmp_path, rest, pauses) -> None:
    t0 = ns(T0)
    rest.add_klines("BTCUSDT", t0 // 1_000_000, 2500)
    rest.fail_klines_after = 2  # the server goes away after two pages
    cfg = config(tmp_path, rest.url)
    end = iso(t0 + 2500 * MIN)
    result = run(tmp_path, cfg, "--symbol", "BTCUSDT", "--start", T0, "--end", end, "--json")
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "HTTP 502" in lines[0] and "2000 bars stored" in lines[0]
    assert len(pauses) == backfill.ATTEMPTS  # a backoff after each failed attempt
    assert len(bars(tmp_path, "BTCUSDT", "M1")) == 2000  # whole pages only
    assert_aggregates_match(tmp_path, "BTCUSDT")

    rest.fail_klines_after = None
    before = len(klines_starts(rest))
    out = run_json(tmp_path, cfg, "--symbol", "BTCUSDT", "--start", T0, "--end", end)
    assert out["resumed_from_ts"] == t0 + 2000 * MIN
    assert (out["fetched"], out["stored"], out["requests"], out["gaps_repaired"]) == (
        500,
        500,
        1,
        0,
    )
    assert klines_starts(rest)[before:] == [(t0 + 2000 * MIN) // 1_000_000]
    assert [r[0] for r in bars(tmp_path, "BTCUSDT", "M1")] == [t0 + i * MIN for i in range(2500)]
    assert_aggregates_match(tmp_path, "BTCUSDT")


def test_ctrl_c_leaves_whole_pages_and_the_next_run_goes_on(tmp_path, rest, monkeypatch) -> None:
    t0 = ns(T0)
    rest.add_klines("BTCUSDT", t0 // 1_000_000, 2500)
    rest.fail_klines_after = 1

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(backfill, "pause", interrupted)
    cfg = config(tmp_path, rest.url)
    end = iso(t0 + 2500 * MIN)
    result = run(tmp_path, cfg, "--symbol", "BTCUSDT", "--start", T0, "--end", end)
    assert result.exit_code == 130 and "interrupted" in result.stderr
    assert len(bars(tmp_path, "BTCUSDT", "M1")) == 1000
    rest.fail_klines_after = None
    out = run_json(tmp_path, cfg, "--symbol", "BTCUSDT", "--start", T0, "--end", end)
    assert (out["stored"], out["requests"], out["resumed_from_ts"]) == (1500, 2, t0 + 1000 * MIN)


def test_missing_bars_inside_are_repaired_and_only_they_are_fetched(tmp_path, rest, pauses) -> None:
    t0 = ns(T0)
    rest.add_klines("BTCUSDT", t0 // 1_000_000, 2000)
    cfg = config(tmp_path, rest.url)
    end = iso(t0 + 2000 * MIN)
    run_json(tmp_path, cfg, "--symbol", "BTCUSDT", "--start", T0, "--end", end)
    whole = bars(tmp_path, "BTCUSDT", "M1")
    hours = bars(tmp_path, "BTCUSDT", "H1")
    gone = [*range(100, 110), 1500]
    with sqlite3.connect(tmp_path / "m.db") as conn:
        conn.executemany(
            "DELETE FROM bars WHERE symbol = 'BTCUSDT' AND timeframe = 'M1' AND ts_open = ?",
            [(t0 + i * MIN,) for i in gone],
        )
    before = len(klines_starts(rest))
    out = run_json(tmp_path, cfg, "--symbol", "BTCUSDT", "--start", T0, "--end", end)
    assert (out["fetched"], out["stored"], out["gaps_repaired"], out["requests"]) == (11, 11, 11, 2)
    assert out["resumed_from_ts"] is None
    ms0 = t0 // 1_000_000
    assert klines_starts(rest)[before:] == [ms0 + 100 * 60_000, ms0 + 1500 * 60_000]
    assert bars(tmp_path, "BTCUSDT", "M1") == whole
    assert bars(tmp_path, "BTCUSDT", "H1") == hours


def test_bad_input_exits_2_in_one_line(tmp_path, rest) -> None:
    cfg = config(tmp_path, rest.url)
    cases = [
        (["--symbol", "NOPE", "--start", T0], "neither binance.symbols nor mt5.symbols"),
        (["--symbol", "BTCUSDT", "--start", "2024-03-05", "--end", "2024-03-04"], "not before"),
        (["--symbol", "BTCUSDT", "--start", "yesterday"], "not an ISO-8601 time"),
        (["--symbol", "BTCUSDT", "--start", "2999-01-01", "--end", "3000-01-01"], "future"),
        (["--symbol", "NOPEUSDT", "--venue", "binance", "--start", T0, "--end", "2024-03-05"],
         "Binance does not list"),
    ]  # fmt: skip
    for args, words in cases:
        result = run(tmp_path, cfg, *args)
        assert result.exit_code == 2, (args, result.output)
        assert len(result.stderr.strip().splitlines()) == 1 and words in result.stderr, args


# ---------------------------------------------------------------- MetaTrader 5


def server_rates(utc_minutes: list[int], offset_h: int) -> np.ndarray:
    """M1 rates at these UTC minutes (ns), stamped on a server clock `offset_h` ahead."""
    rates = np.zeros(len(utc_minutes), dtype=RATES_DTYPE)
    rates["time"] = [t // NS + offset_h * 3600 for t in utc_minutes]
    k = np.arange(len(utc_minutes))
    rates["open"] = 1.1 + k * 1e-5
    rates["close"] = rates["open"] + 2e-5
    rates["high"] = rates["close"] + 1e-5
    rates["low"] = rates["open"] - 1e-5
    rates["tick_volume"] = 7
    rates["spread"] = 3
    rates["real_volume"] = 0
    return rates


@pytest.fixture
def mt5(monkeypatch) -> FakeMT5:
    fake = FakeMT5([fx("EURUSD")])
    monkeypatch.setattr(backfill, "load_module", lambda settings: lambda: fake)
    return fake


def test_mt5_summer_server_time_is_converted_to_utc(tmp_path, mt5, pauses) -> None:
    start = ns("2024-07-10T08:00:00")
    minutes = [start + i * MIN for i in range(120)]
    mt5.add_rates("EURUSD", server_rates(minutes, 3))  # UTC+3 while the US keeps DST
    cfg = config(tmp_path)
    out = run_json(tmp_path, cfg, "--symbol", "EURUSD", "--start", iso(start), "--end",
                   "2024-07-10T10:00:00")  # fmt: skip
    assert (out["venue"], out["fetched"], out["stored"], out["requests"]) == ("mt5", 120, 120, 1)
    server = ns("2024-07-10T11:00:00") // NS
    assert mt5.rate_requests == [("EURUSD", server, server + 2 * 3600 - 1)]
    m1 = bars(tmp_path, "EURUSD", "M1")
    assert [r[0] for r in m1] == minutes
    assert m1[0][1] == pytest.approx(1.1) and m1[0][5] == 7 and m1[0][6] == 0.0
    assert_aggregates_match(tmp_path, "EURUSD", ny_close=True)


def test_mt5_winter_and_the_weekend_is_not_a_gap(tmp_path, mt5, pauses) -> None:
    start, end = ns("2024-01-12T12:00:00"), ns("2024-01-15T12:00:00")  # Friday to Monday
    closes, opens = ns("2024-01-12T22:00:00"), ns("2024-01-14T22:00:00")  # 17:00 New York
    minutes = [t for t in range(start, end, MIN) if not closes <= t < opens]
    mt5.add_rates("EURUSD", server_rates(minutes, 2))  # UTC+2 in the northern winter
    cfg = config(tmp_path)
    out = run_json(tmp_path, cfg, "--symbol", "EURUSD", "--start", iso(start), "--end", iso(end))
    assert (out["fetched"], out["stored"]) == (len(minutes), len(minutes))
    assert out["requests"] == 3  # Friday until the close; Sunday from the open; Monday
    assert [r[0] for r in bars(tmp_path, "EURUSD", "M1")] == minutes
    # EURUSD's days open at 17:00 New York: 22:00 UTC in winter
    assert {r[0] % (24 * 3600 * NS) for r in bars(tmp_path, "EURUSD", "D1")} == {22 * 3600 * NS}
    assert mt5.rate_requests[0] == ("EURUSD", (start // NS) + 7200, closes // NS + 7200 - 1)

    again = run_json(tmp_path, cfg, "--symbol", "EURUSD", "--start", iso(start), "--end", iso(end))
    assert (again["requests"], again["gaps_repaired"], again["stored"]) == (0, 0, 0)

    gone = [minutes[5], minutes[700], minutes[701]]
    with sqlite3.connect(tmp_path / "m.db") as conn:
        conn.executemany(
            "DELETE FROM bars WHERE symbol = 'EURUSD' AND timeframe = 'M1' AND ts_open = ?",
            [(t,) for t in gone],
        )
    fixed = run_json(tmp_path, cfg, "--symbol", "EURUSD", "--start", iso(start), "--end", iso(end))
    assert (fixed["gaps_repaired"], fixed["requests"]) == (3, 2)
    assert [r[0] for r in bars(tmp_path, "EURUSD", "M1")] == minutes
    assert_aggregates_match(tmp_path, "EURUSD", ny_close=True)


def test_mt5_resumes_after_the_last_stored_bar(tmp_path, mt5, pauses) -> None:
    start = ns("2024-01-08T00:00:00")  # Monday to Wednesday: open throughout
    minutes = [start + i * MIN for i in range(3 * 1440)]
    mt5.add_rates("EURUSD", server_rates(minutes, 2))
    cfg = config(tmp_path)
    mt5.fail(times=backfill.ATTEMPTS, calls={"copy_rates_range"})
    first = run(
        tmp_path, cfg, "--symbol", "EURUSD", "--start", iso(start), "--end", iso(minutes[-1] + MIN)
    )
    assert first.exit_code == 1 and "IPC" in first.stderr
    assert bars(tmp_path, "EURUSD", "M1") == []
    # a lost connection is re-initialized: one failure is retried within the run
    mt5.fail(times=1, calls={"copy_rates_range"})
    out = run_json(tmp_path, cfg, "--symbol", "EURUSD", "--start", iso(start), "--end",
                   iso(start + 1440 * MIN))  # fmt: skip
    assert (out["stored"], out["requests"]) == (1440, 2)
    out = run_json(tmp_path, cfg, "--symbol", "EURUSD", "--start", iso(start), "--end",
                   iso(minutes[-1] + MIN))  # fmt: skip
    assert out["resumed_from_ts"] == start + 1440 * MIN
    assert (out["stored"], out["requests"]) == (2 * 1440, 2)


def test_mt5_unknown_symbol_is_bad_input(tmp_path, mt5) -> None:
    result = run(tmp_path, config(tmp_path), "--symbol", "GBPUSD", "--venue", "mt5", "--start",
                 "2024-01-10", "--end", "2024-01-11")  # fmt: skip
    assert result.exit_code == 2 and "no such symbol" in result.stderr


def test_mt5_without_a_module_on_this_machine_says_what_to_install(tmp_path) -> None:
    result = run(tmp_path, config(tmp_path), "--symbol", "EURUSD", "--start", "2024-01-10")
    assert result.exit_code == 2 and "MetaTrader5 package" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_progress_counts_every_minute_asked_for(tmp_path, rest, pauses) -> None:
    from mikrobot_tui.data.feeds.binance_rest import make_client
    from mikrobot_tui.store.schema import open_db

    class Recorder:
        def __init__(self) -> None:
            self.total: int | None = None
            self.done = 0

        def stage(self, what: str, total: int | None = None) -> None:
            self.total = total

        def advance(self, n: int) -> None:
            self.done += n

    t0 = ns(T0)
    rest.add_klines("BTCUSDT", t0 // 1_000_000, 2300)
    conn = open_db(tmp_path / "m.db").conn
    try:
        seen = Recorder()
        venue = backfill.BinanceVenue(make_client(rest.url))
        report = backfill.backfill(conn, venue, "BTCUSDT", t0, t0 + 2400 * MIN, seen)
    finally:
        conn.close()
    assert (seen.total, seen.done) == (2400, 2400)  # the last 100 minutes have no kline
    assert (report.stored, report.requests) == (2300, 3)


def test_a_connection_that_cannot_be_made_is_retried_then_exit_1(tmp_path, pauses) -> None:
    cfg = config(tmp_path, "http://127.0.0.1:9")  # nothing listens there
    result = run(tmp_path, cfg, "--symbol", "BTCUSDT", "--start", T0, "--end", "2024-03-05")
    assert result.exit_code == 1 and "ConnectionError" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert pauses == [0.5, 1.0, 2.0, 4.0, 8.0]


def test_the_venue_comes_from_a_mixed_feed_table_too() -> None:
    from mikrobot_tui.config import Settings

    s = Settings(feeds=[{"venue": "mt5", "symbols": ["GBPUSD"]}])
    assert backfill.venue_of(s, "GBPUSD") == "mt5"
    assert backfill.venue_of(s, "BTCUSDT") == "binance"
    assert backfill.venue_of(s, "NOPE") is None


def test_mt5_a_refused_login_is_a_venue_failure_not_retried(tmp_path, monkeypatch, pauses) -> None:
    fake = FakeMT5([fx("EURUSD")], password="the-right-one")
    monkeypatch.setattr(backfill, "load_module", lambda settings: lambda: fake)
    result = run(tmp_path, config(tmp_path), "--symbol", "EURUSD", "--start", "2024-01-10")
    assert result.exit_code == 1 and "Authorization failed" in result.stderr
    assert len(fake.initialize_calls) == 1 and pauses == []
