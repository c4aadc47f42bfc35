"""`mikrobot history import` and `export`: what a trader brings, what they get back.

Every file is written here, the CLI runs through typer's runner on a real SQLite file, and the
database is read back with sqlite3.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mikrobot_tui.cli import app
from mikrobot_tui.domain.market import TIMEFRAMES
from mikrobot_tui.store.tickstore import decode

runner = CliRunner()
NS = 1_000_000_000
KEYS = ["file", "format", "symbols", "rows", "imported", "rejected", "first_ts", "last_ts"]


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def ns(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()) * NS


def run_import(db: Path, path: Path, *extra: str) -> dict:
    result = invoke("--db", str(db), "history", "import", str(path), "--json", *extra)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert list(out) == KEYS
    assert out["rows"] == out["imported"] + len(out["rejected"])
    return out


def rejects(out: dict) -> dict[int, str]:
    return {r["line"]: r["reason"] for r in out["rejected"]}


def ohlc(db: Path, timeframe: str) -> list[tuple]:
    """(ts_open, open, high, low, close, ticks) of every stored bar of `timeframe`, in time."""
    return rows(
        db,
        "SELECT ts_open, open, high, low, close, ticks FROM bars WHERE timeframe = ? "
        "ORDER BY ts_open",
        timeframe,
    )


def rows(db: Path, sql: str, *args) -> list[tuple]:
    """Rows of `sql`; its `ticks` is a temporary table of every stored tick: the legacy rows,
    then those decoded from the tick blocks in the order they were written."""
    with sqlite3.connect(db) as conn:
        if "FROM ticks" in sql:
            _ticks_as_rows(conn)
        return conn.execute(sql, args).fetchall()


def _ticks_as_rows(conn: sqlite3.Connection) -> None:
    conn.execute(
        "CREATE TEMP TABLE ticks (ts_event INTEGER, ts_recv INTEGER, symbol TEXT, bid REAL, "
        "ask REAL, last REAL, volume REAL)"
    )
    conn.execute("INSERT INTO temp.ticks SELECT * FROM main.ticks ORDER BY rowid")  # legacy rows
    blocks = conn.execute("SELECT symbol, n, data FROM tick_blocks ORDER BY id").fetchall()
    for symbol, n, data in blocks:
        t = decode(data, n)
        conn.executemany(
            "INSERT INTO temp.ticks VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    int(r["ts_event"]),
                    int(r["ts_recv"]),
                    symbol,
                    float(r["bid"]),
                    float(r["ask"]),
                    *(None if np.isnan(r[c]) else float(r[c]) for c in ("last", "volume")),
                )
                for r in t
            ],
        )


# ---------------------------------------------------------------- generic CSV


GENERIC = (
    "ts,symbol,bid,ask,last,volume\r\n"  # 1 header, CRLF
    "1704067200000,EURUSD,1.1,1.1002,,\r\n"  # 2 ms
    "\n"  # 3 blank: not a reject
    "2024-01-01T00:00:01Z,EURUSD,1.1001,1.1003,,\n"  # 4 ISO
    "1704067202,EURUSD,abc,1.1,,\n"  # 5 not a number
    "1704067203000000,EURUSD,1,1,2,3,4\n"  # 6 decimal comma splits a cell
    "1704067204000000000,EURUSD,1.2,1.1,,\n"  # 7 bid above ask
    "1704067205000,EURUSD,NaN,1.1,,\n"  # 8 NaN
    "1704067199000,EURUSD,1.1,1.1002,,\n"  # 9 backwards
    "1704067206000,GBPUSD,1.3,1.3002,1.3001,5\r"  # 10 lone CR ending
    "1704067206000,GBPUSD,1.3,1.3002,1.3001,5\n"  # 11 exact duplicate
    "1704067207,GBPUSD,1.3,1.3002\n"  # 12 missing columns
    "1704067208,GBPUSD,0,1.3002,,\n"  # 13 zero price
    "1704067209,GBPUSD,1.3,Infinity,,\n"  # 14 infinity
    "1704067210.5,GBPUSD,1.3,1.3004,,\n"  # 15 decimal seconds
)


def test_generic_csv_imports_good_rows_and_names_each_bad_line(tmp_path, db_path) -> None:
    f = tmp_path / "ticks.csv"
    f.write_bytes(b"\xef\xbb\xbf" + GENERIC.encode())
    out = run_import(db_path, f)
    assert out["format"] == "generic" and out["symbols"] == ["EURUSD", "GBPUSD"]
    assert out["rows"] == 13 and out["imported"] == 4
    found = rejects(out)
    assert sorted(found) == [5, 6, 7, 8, 9, 11, 12, 13, 14]
    assert "not a number" in found[5] and "decimal comma" in found[6]
    assert found[7] == "bid above ask" and "finite" in found[8] and "finite" in found[14]
    assert found[9] == "time goes backwards" and "duplicate" in found[11]
    assert "columns" in found[12] and "above zero" in found[13]
    assert out["first_ts"] == 1704067200 * NS and out["last_ts"] == 1704067210 * NS + NS // 2
    query = "SELECT symbol, ts_event, bid, ask, last, volume FROM ticks ORDER BY rowid"
    stored = rows(db_path, query)
    assert stored == [
        ("EURUSD", 1704067200 * NS, 1.1, 1.1002, None, None),
        ("EURUSD", 1704067201 * NS, 1.1001, 1.1003, None, None),
        ("GBPUSD", 1704067206 * NS, 1.3, 1.3002, 1.3001, 5.0),
        ("GBPUSD", 1704067210 * NS + NS // 2, 1.3, 1.3004, None, None),
    ]
    m1 = rows(db_path, "SELECT symbol, ts_open, open, ticks FROM bars WHERE timeframe='M1'")
    assert sorted(m1) == [
        ("EURUSD", ns("2024-01-01T00:00:00"), 1.1001, 2),
        ("GBPUSD", ns("2024-01-01T00:00:00"), 1.3001, 2),
    ]
    assert {r[0] for r in rows(db_path, "SELECT DISTINCT timeframe FROM bars")} == set(TIMEFRAMES)


def test_reimporting_a_file_duplicates_nothing(tmp_path, db_path) -> None:
    f = tmp_path / "ticks.csv"
    f.write_text(GENERIC)
    first = run_import(db_path, f)
    before = (
        rows(db_path, "SELECT * FROM ticks ORDER BY rowid"),
        rows(db_path, "SELECT * FROM bars ORDER BY symbol, timeframe, ts_open"),
    )
    again = run_import(db_path, f)
    assert again == first
    after = (
        rows(db_path, "SELECT * FROM ticks ORDER BY rowid"),
        rows(db_path, "SELECT * FROM bars ORDER BY symbol, timeframe, ts_open"),
    )
    assert after == before


def test_a_file_that_continues_the_stored_ticks_completes_the_open_bar(tmp_path, db_path) -> None:
    head = "ts,symbol,bid,ask\n"
    a = tmp_path / "a.csv"
    a.write_text(head + "1704067200,X,1.0,1.0\n1704067210,X,2.0,2.0\n")
    b = tmp_path / "b.csv"  # overlaps a's last tick, then goes on in the same minute
    b.write_text(head + "1704067210,X,2.0,2.0\n1704067220,X,0.5,0.5\n1704067260,X,3.0,3.0\n")
    run_import(db_path, a)
    out = run_import(db_path, b)
    assert out["imported"] == 3
    assert rows(db_path, "SELECT COUNT(*) FROM ticks")[0][0] == 4
    m1 = ohlc(db_path, "M1")
    assert m1 == [
        (1704067200 * NS, 1.0, 2.0, 0.5, 0.5, 3),
        (1704067260 * NS, 3.0, 3.0, 3.0, 3.0, 1),
    ]
    h1 = rows(db_path, "SELECT open, high, low, close, ticks FROM bars WHERE timeframe='H1'")
    assert h1 == [(1.0, 3.0, 0.5, 3.0, 4)]


def test_a_generic_file_without_symbol_column_takes_the_symbol_option(tmp_path, db_path) -> None:
    f = tmp_path / "t.csv"
    f.write_text("ts_event,bid,ask\n1704067200000000000,1.0,1.1\n")
    result = invoke("--db", str(db_path), "history", "import", str(f))
    assert result.exit_code == 2 and "--symbol" in result.output
    assert run_import(db_path, f, "--symbol", "EURUSD")["symbols"] == ["EURUSD"]


# ---------------------------------------------------------------- MT5

MT5_TICKS = (
    "<DATE>\t<TIME>\t<BID>\t<ASK>\t<LAST>\t<VOLUME>\t<FLAGS>\r\n"  # 1
    "2024.01.15\t10:00:00.100\t1.10450\t1.10452\t\t\t6\r\n"  # 2
    "2024.01.15\t10:00:00.200\t\t1.10455\t\t\t4\r\n"  # 3 bid carried
    "2024.01.15\t10:00:00.300\t1.10451\t\t\t\t2\r\n"  # 4 ask carried
    "2024.01.15\t10:00:00.400\t1,10451\t1.10460\t\t\t6\r\n"  # 5 decimal comma
    "2024.01.15\t10:00:00.500\t1.10470\t1.10460\t\t\t6\r\n"  # 6 bid above ask
    "2024.01.15\t10:00:00.050\t1.10450\t1.10452\t\t\t6\r\n"  # 7 backwards
    "2024.13.15\t10:00:00.600\t1.10450\t1.10452\t\t\t6\r\n"  # 8 bad date
    "\r\n"  # 9
    "2024.07.15\t10:00:01.000\t1.10450\t1.10452\t\t\t6\r\n"  # 10 summer
)


def test_mt5_ticks_in_utf16_carry_empty_sides_forward_and_convert_server_time(
    tmp_path, db_path
) -> None:
    f = tmp_path / "EURUSD_ticks.csv"
    f.write_bytes(b"\xff\xfe" + MT5_TICKS.encode("utf-16-le"))
    out = run_import(db_path, f, "--symbol", "EURUSD", "--server-timezone", "America/New_York+7")
    assert out["format"] == "mt5-ticks" and out["symbols"] == ["EURUSD"]
    found = rejects(out)
    assert sorted(found) == [5, 6, 7, 8]
    assert "decimal comma" in found[5] and found[6] == "bid above ask"
    assert found[7] == "time goes backwards" and "date and time" in found[8]
    stored = rows(db_path, "SELECT ts_event, bid, ask, last FROM ticks ORDER BY ts_event")
    winter = ns("2024-01-15T08:00:00")  # server UTC+2 in January
    summer = ns("2024-07-15T07:00:01")  # server UTC+3 in July
    assert stored == [
        (winter + 100_000_000, 1.1045, 1.10452, None),
        (winter + 200_000_000, 1.1045, 1.10455, None),
        (winter + 300_000_000, 1.10451, 1.10455, None),
        (summer, 1.1045, 1.10452, None),
    ]


def test_mt5_ticks_default_to_the_configured_server_zone(tmp_path, db_path) -> None:
    f = tmp_path / "t.csv"
    f.write_text(MT5_TICKS.split("\r\n", 1)[0] + "\n2024.01.15\t10:00:00\t1.1\t1.2\t\t\t6\n")
    cfg = tmp_path / "c.toml"
    cfg.write_text('[mt5]\nserver_timezone = "UTC+1"\n')
    out = run_import(db_path, f, "--symbol", "EURUSD", "--config", str(cfg))
    assert out["first_ts"] == ns("2024-01-15T09:00:00")


def test_a_first_tick_with_nothing_to_carry_forward_is_rejected(tmp_path, db_path) -> None:
    f = tmp_path / "t.csv"
    f.write_text(
        "<DATE>\t<TIME>\t<BID>\t<ASK>\t<LAST>\t<VOLUME>\t<FLAGS>\n"
        "2024.01.15\t10:00:00\t\t1.2\t\t\t4\n2024.01.15\t10:00:01\t1.1\t1.2\t\t\t6\n"
    )
    out = run_import(db_path, f, "--symbol", "EURUSD", "--server-timezone", "UTC")
    assert list(rejects(out)) == [2] and "carry forward" in rejects(out)[2]


MT5_BARS = (
    "<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>\n"  # 1
    "2024.01.15\t10:00:00\t1.1000\t1.1010\t1.0990\t1.1005\t120\t0\t5\n"  # 2
    "2024.01.15\t10:01:00\t1.1005\t1.1020\t1.1000\t1.1015\t80\t0\t5\n"  # 3
    "2024.01.15\t10:02:00\t1.1015\t1.1000\t1.1030\t1.1015\t80\t0\t5\n"  # 4 high below low
    "2024.01.15\t10:03:00\t1.1015\tx\t1.1000\t1.1015\t80\t0\t5\n"  # 5 not a number
    "2024.01.15\t10:04:00\t1.1015\t1.1040\t1.1010\t1.1030\t50\t0\t5\n"  # 6
)


def test_mt5_bars_go_in_as_m1_and_build_the_higher_timeframes(tmp_path, db_path) -> None:
    f = tmp_path / "bars.csv"
    f.write_text(MT5_BARS)
    out = run_import(db_path, f, "--symbol", "EURUSD", "--server-timezone", "UTC")
    assert out["format"] == "mt5-bars" and out["imported"] == 3
    assert sorted(rejects(out)) == [4, 5] and rejects(out)[4] == "high below low"
    assert out["first_ts"] == ns("2024-01-15T10:00:00")
    assert out["last_ts"] == ns("2024-01-15T10:04:00")
    m5 = ohlc(db_path, "M5")
    assert m5 == [(ns("2024-01-15T10:00:00"), 1.1, 1.104, 1.099, 1.103, 250)]
    assert len(rows(db_path, "SELECT * FROM bars WHERE timeframe='M1'")) == 3
    run_import(db_path, f, "--symbol", "EURUSD", "--server-timezone", "UTC")
    assert len(rows(db_path, "SELECT * FROM bars")) == 3 + 1 + 1 + 1 + 1 + 1  # M1 to D1


def test_bars_of_a_timeframe_the_database_does_not_keep_are_refused(tmp_path, db_path) -> None:
    f = tmp_path / "m30.csv"
    f.write_text(
        MT5_BARS.splitlines()[0] + "\n2024.01.15\t00:00:00\t1\t1\t1\t1\t1\t0\t5\n"
        "2024.01.15\t00:30:00\t1\t1\t1\t1\t1\t0\t5\n"
    )
    result = invoke("--db", str(db_path), "history", "import", str(f), "--symbol", "X")
    assert result.exit_code == 2 and "30m" in result.output
    assert "M1, M5, M15, H1, H4 and D1" in result.output


MT5_DAYS = MT5_BARS.splitlines()[0] + "".join(
    f"\n2024.01.{d:02d}\t00:00:00\t1.1\t1.2\t1.0\t1.15\t9000\t0\t5" for d in (15, 16, 17)
)


def test_mt5_d1_bars_open_at_17_00_new_york_and_a_utc_days_file_is_refused_row_by_row(
    tmp_path, db_path
) -> None:
    """An MT5 server on New York close time (UTC+2, +3 in US summer) opens its days at
    17:00 New York: they import as the engine's EURUSD days. The same file read as UTC
    puts the days at midnight, where EURUSD's do not open: each row says so."""
    f = tmp_path / "days.csv"
    f.write_text(MT5_DAYS + "\n")
    out = run_import(db_path, f, "--symbol", "EURUSD", "--server-timezone", "America/New_York+7")
    assert out["imported"] == 3 and out["rejected"] == []
    stored = rows(db_path, "SELECT ts_open FROM bars WHERE timeframe = 'D1' ORDER BY 1")
    assert stored == [(ns(f"2024-01-{d}T22:00:00"),) for d in (14, 15, 16)]

    result = invoke(
        "--db", str(db_path), "history", "import", str(f), "--symbol", "EURUSD",
        "--server-timezone", "UTC",
    )  # fmt: skip
    assert result.exit_code == 2
    for line in (2, 3, 4):
        assert (
            f"line {line}: time is not on the D1 grid of EURUSD's trading day (17:00 New York)"
            in (result.output)
        )
    # a crypto symbol's days are UTC's
    out = run_import(db_path, f, "--symbol", "BTCUSDT", "--server-timezone", "UTC")
    assert out["imported"] == 3


# ---------------------------------------------------------------- Binance

KLINE = "{t},42000.0,42010.5,41990.0,42005.0,12.5,{c},525000.0,{n},6.0,252000.0,0\n"


def kline(t: int, n: int = 100, scale: int = 1) -> str:
    return KLINE.format(t=t * scale, c=(t + 59_999) * scale, n=n)


def test_binance_klines_take_symbol_and_interval_from_the_name_and_mix_ms_and_us(
    tmp_path, db_path
) -> None:
    t0 = 1735689600000  # 2025-01-01 00:00 UTC, ms
    f = tmp_path / "BTCUSDT-1m-2025-01-01.csv"
    f.write_text(
        kline(t0)  # 1 ms
        + kline(t0 + 60_000, scale=1000)  # 2 us
        + "1735689720000,42000.0,41000.0,43000.0,42005.0,1,1,1,1,1,1,0\n"  # 3 high below low
        + kline(t0 + 180_000, n=7)  # 4
    )
    out = run_import(db_path, f)
    assert out["format"] == "binance-klines" and out["symbols"] == ["BTCUSDT"]
    assert list(rejects(out)) == [3]
    assert out["first_ts"] == t0 * 1_000_000 and out["last_ts"] == (t0 + 180_000) * 1_000_000
    m1 = rows(
        db_path, "SELECT ts_open, ticks, volume FROM bars WHERE timeframe='M1' ORDER BY ts_open"
    )
    assert m1 == [
        (t0 * 10**6, 100, 12.5),
        ((t0 + 60_000) * 10**6, 100, 12.5),
        ((t0 + 180_000) * 10**6, 7, 12.5),
    ]
    h1 = rows(db_path, "SELECT ticks, volume FROM bars WHERE timeframe='H1'")
    assert h1 == [(207, 37.5)]


def test_a_futures_header_line_is_tolerated(tmp_path, db_path) -> None:
    f = tmp_path / "ETHUSDT-5m-2024-01-01.csv"
    f.write_text(
        "open_time,open,high,low,close,volume,close_time,quote_volume,count,"
        "taker_buy_volume,taker_buy_quote_volume,ignore\n" + kline(1704067200000)
    )
    out = run_import(db_path, f)
    assert out["imported"] == 1 and out["rejected"] == []
    assert rows(db_path, "SELECT DISTINCT timeframe FROM bars ORDER BY 1") == [
        ("D1",),
        ("H1",),
        ("H4",),
        ("M15",),
        ("M5",),
    ]


def test_binance_trades_and_aggtrades_become_ticks_on_the_trade_price(tmp_path, db_path) -> None:
    trades = tmp_path / "BTCUSDT-trades-2025-01-01.csv"
    trades.write_text(
        "1,42000.5,0.010,420.0,1735689600000,True,True\n"  # 1 ms
        "2,42001.0,0.020,840.0,1735689600500123,False,True\n"  # 2 us
        "3,abc,0.020,840.0,1735689600600000,False,True\n"  # 3 bad price
        "2,42001.0,0.020,840.0,1735689600500123,False,True\n"  # 4 exact duplicate
    )
    out = run_import(db_path, trades)
    assert out["format"] == "binance-trades" and out["symbols"] == ["BTCUSDT"]
    assert sorted(rejects(out)) == [3, 4]
    stored = rows(db_path, "SELECT ts_event, bid, ask, last, volume FROM ticks ORDER BY rowid")
    assert stored == [
        (1735689600000 * 10**6, 42000.5, 42000.5, 42000.5, 0.01),
        (1735689600500123 * 10**3, 42001.0, 42001.0, 42001.0, 0.02),
    ]
    agg = tmp_path / "ETHUSDT-aggTrades-2025-01-01.csv"
    agg.write_text(
        "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker\n"
        "10,3300.5,1.5,100,101,1735689600000,true\n"
        "11,3301.0,0.5,102,102,1735689601000,false\n"
    )
    out = run_import(db_path, agg)
    assert out["format"] == "binance-aggtrades" and out["symbols"] == ["ETHUSDT"]
    assert out["imported"] == 2
    bar = rows(
        db_path,
        "SELECT open, close, ticks, volume FROM bars WHERE symbol='ETHUSDT' AND timeframe='M1'",
    )
    assert bar == [(3300.5, 3301.0, 2, 2.0)]


# ---------------------------------------------------------------- detection, exit codes


@pytest.mark.parametrize(
    ("name", "text", "fmt"),
    [
        ("a.txt", MT5_TICKS, "mt5-ticks"),
        ("a.txt", MT5_BARS, "mt5-bars"),
        ("a.txt", "ts,symbol,bid,ask\n1,X,1,1\n", "generic"),
        ("a.txt", kline(1704067200000), "binance-klines"),
        ("a.txt", "1,42000.5,0.010,420.0,1735689600000,True,True\n", "binance-trades"),
        ("a.txt", "1,42000.5,0.01,5,6,1735689600000,True,True\n", "binance-aggtrades"),
        (
            "SOLUSDT-aggTrades-2024-03.csv",
            "1,2,3,4,5,1704067200000,True,True\n",
            "binance-aggtrades",
        ),
    ],
)
def test_the_format_is_detected(tmp_path, name, text, fmt) -> None:
    from mikrobot_tui.data.importers import detect
    from mikrobot_tui.data.importers.text import normalize

    assert detect(tmp_path / name, normalize(text.encode())) == fmt


def test_files_that_cannot_be_read_exit_2_with_one_line(tmp_path, db_path) -> None:
    cases = {
        "missing": (tmp_path / "nope.csv", "no such file"),
        "unknown": (tmp_path / "x.csv", "unknown format"),
        "no symbol": (tmp_path / "m.csv", "--symbol"),
        "nothing good": (tmp_path / "bad.csv", "no good row"),
    }
    cases["unknown"][0].write_text("hello world\n")
    cases["no symbol"][0].write_text(MT5_TICKS)
    cases["nothing good"][0].write_text("ts,symbol,bid,ask\n1,X,abc,1\n")
    for path, words in cases.values():
        result = invoke("--db", str(db_path), "history", "import", str(path))
        assert result.exit_code == 2, result.output
        assert words in result.output
        assert "Traceback" not in result.output
    bad = invoke("--db", str(db_path), "history", "import", str(path), "--format", "csv")
    assert bad.exit_code == 2


# ---------------------------------------------------------------- export and round trip


def test_export_bars_and_ticks_as_csv_and_json(tmp_path, db_path) -> None:
    f = tmp_path / "BTCUSDT-1m-2024-01-01.csv"
    f.write_text(kline(1704067200000) + kline(1704067260000, n=3))
    run_import(db_path, f)
    csv = invoke("--db", str(db_path), "history", "export", "--symbol", "BTCUSDT").stdout
    assert csv.splitlines() == [
        "ts_open,open,high,low,close,ticks,volume",
        f"{1704067200 * NS},42000.0,42010.5,41990.0,42005.0,100,12.5",
        f"{1704067260 * NS},42000.0,42010.5,41990.0,42005.0,3,12.5",
    ]
    got = json.loads(
        invoke(
            "--db",
            str(db_path),
            "history",
            "export",
            "--symbol",
            "BTCUSDT",
            "--timeframe",
            "M5",
            "--json",
        ).stdout
    )
    assert got == [
        {
            "ts_open": 1704067200 * NS,
            "open": 42000.0,
            "high": 42010.5,
            "low": 41990.0,
            "close": 42005.0,
            "ticks": 103,
            "volume": 25.0,
        }
    ]
    window = invoke(
        "--db",
        str(db_path),
        "history",
        "export",
        "--symbol",
        "BTCUSDT",
        "--start",
        "2024-01-01T00:01:00",
        "--end",
        "2024-01-01T00:02:00",
        "--csv",
    ).stdout.splitlines()
    assert len(window) == 2 and window[1].startswith(str(1704067260 * NS))
    bad = invoke("--db", str(db_path), "history", "export", "--symbol", "X", "--start", "soon")
    assert bad.exit_code == 2


def test_exported_generic_ticks_reimport_to_the_same_data(tmp_path, db_path) -> None:
    f = tmp_path / "ticks.csv"
    f.write_text(GENERIC)
    run_import(db_path, f)
    ticks_json = json.loads(
        invoke(
            "--db", str(db_path), "history", "export", "--symbol", "GBPUSD", "--ticks", "--json"
        ).stdout
    )
    assert list(ticks_json[0]) == ["ts_event", "bid", "ask", "last", "volume"]
    assert ticks_json[0]["last"] == 1.3001 and ticks_json[1]["last"] is None
    out = tmp_path / "GBPUSD.csv"
    out.write_text(
        invoke("--db", str(db_path), "history", "export", "--symbol", "GBPUSD", "--ticks").stdout
    )
    other = tmp_path / "other.db"
    again = run_import(other, out, "--symbol", "GBPUSD")
    assert again["rejected"] == [] and again["imported"] == 2
    query = "SELECT ts_event, ts_recv, bid, ask, last, volume FROM ticks WHERE symbol='GBPUSD'"
    assert rows(other, query) == rows(db_path, query)
    bars = "SELECT * FROM bars WHERE symbol='GBPUSD' ORDER BY timeframe, ts_open"
    assert rows(other, bars) == rows(db_path, bars)


def test_an_import_waits_for_another_writer_and_loses_nothing(tmp_path, db_path) -> None:
    """An engine writing the same database (here: a connection holding the write lock for a
    moment) makes the import wait, not fail; both writers' rows are there afterwards."""
    import threading

    from mikrobot_tui.store.schema import open_db

    open_db(db_path).conn.close()
    engine = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    engine.execute("BEGIN IMMEDIATE")
    engine.execute(
        "INSERT INTO ticks (ts_event, ts_recv, symbol, bid, ask) VALUES (1, 1, 'ENGINE', 1, 1)"
    )
    threading.Timer(0.5, lambda: engine.execute("COMMIT")).start()
    f = tmp_path / "t.csv"
    f.write_text("ts,symbol,bid,ask\n1704067200,X,1.0,1.1\n1704067201,X,1.0,1.1\n")
    out = run_import(db_path, f)
    engine.close()
    assert out["imported"] == 2
    assert rows(db_path, "SELECT symbol, COUNT(*) FROM ticks GROUP BY symbol ORDER BY 1") == [
        ("ENGINE", 1),
        ("X", 2),
    ]


@pytest.mark.parametrize(
    "encode",
    [
        lambda t: t.encode("utf-16-le"),  # UTF-16LE without a BOM
        lambda t: b"\xef\xbb\xbf" + t.encode(),  # UTF-8 with a BOM
        lambda t: t.replace("\r\n", "\r").encode(),  # old Mac line endings
        lambda t: t.replace("\r\n", "\n").encode(),  # Unix line endings
    ],
)
def test_mt5_ticks_read_the_same_in_any_encoding_and_line_ending(tmp_path, db_path, encode):
    f = tmp_path / "t.csv"
    f.write_bytes(encode(MT5_TICKS))
    out = run_import(db_path, f, "--symbol", "EURUSD", "--server-timezone", "UTC")
    assert out["format"] == "mt5-ticks" and out["imported"] == 4
    assert sorted(rejects(out)) == [5, 6, 7, 8]


def test_older_history_imported_after_newer_goes_in_and_joins_the_stored_bar(
    tmp_path, db_path
) -> None:
    head = "ts,symbol,bid,ask\n"
    newer = tmp_path / "newer.csv"
    newer.write_text(head + "1704067230,X,2.0,2.0\n1704067250,X,3.0,3.0\n")
    older = tmp_path / "older.csv"  # ends in the same minute, then overlaps the stored span
    older.write_text(
        head + "1704067140,X,5.0,5.0\n1704067200,X,1.0,1.0\n1704067210,X,4.0,4.0\n"
        "1704067230,X,2.0,2.0\n"
    )
    run_import(db_path, newer)
    out = run_import(db_path, older)
    assert out["imported"] == 4
    assert rows(db_path, "SELECT COUNT(*) FROM ticks")[0][0] == 5
    m1 = ohlc(db_path, "M1")
    assert m1 == [
        (1704067140 * NS, 5.0, 5.0, 5.0, 5.0, 1),
        (1704067200 * NS, 1.0, 4.0, 1.0, 3.0, 4),
    ]
    h1 = rows(
        db_path,
        "SELECT open, high, low, close, ticks FROM bars WHERE timeframe='H1' ORDER BY ts_open",
    )
    assert h1 == [(5.0, 5.0, 5.0, 5.0, 1), (1.0, 4.0, 1.0, 3.0, 4)]  # 23:59, then 00:00


# ---------------------------------------------------------------- reading bars back


def test_bars_and_last_bars_read_what_was_stored_as_numpy_bars(tmp_path, db_path) -> None:
    from mikrobot_tui.data.history import bars, last_bars
    from mikrobot_tui.domain.market import BAR_DTYPE, M1
    from mikrobot_tui.store.bars import write_bars
    from mikrobot_tui.store.schema import open_db

    stored = np.zeros(30, dtype=BAR_DTYPE)
    stored["period_ns"] = M1
    stored["ts_open"] = ns("2024-01-15T10:00:00") + np.arange(30) * M1
    stored["open"] = 1.1 + np.arange(30) * 1e-4
    stored["high"], stored["low"] = stored["open"] + 2e-4, stored["open"] - 1e-4
    stored["close"] = stored["open"] + 5e-5
    stored["ticks"] = np.arange(30) + 1
    stored["volume"] = np.arange(30) * 0.5
    conn = open_db(db_path).conn
    write_bars(conn, stored[::-1], ["EURUSD"])  # any order in, time order out
    write_bars(conn, stored[:5], ["GBPUSD"])
    got = bars(conn, "EURUSD", "M1")
    assert got.dtype == BAR_DTYPE and got.tobytes() == stored.tobytes()
    window = bars(conn, "EURUSD", "M1", int(stored["ts_open"][3]), int(stored["ts_open"][7]))
    assert window.tobytes() == stored[3:7].tobytes()  # [start, end)
    assert last_bars(conn, "EURUSD", "M1", 4).tobytes() == stored[-4:].tobytes()
    assert len(last_bars(conn, "GBPUSD", "M1", 100)) == 5  # fewer stored: all of them
    assert len(last_bars(conn, "EURUSD", "M1", 0)) == 0
    assert len(bars(conn, "EURUSD", "H4")) == 0  # none stored: an empty array, not an error
    with pytest.raises(ValueError, match="M1, M5, M15, H1, H4, D1"):
        bars(conn, "EURUSD", "M2")
    with pytest.raises(ValueError, match="0 or more"):
        last_bars(conn, "EURUSD", "M1", -1)
    conn.close()


def test_every_rejected_line_is_kept_in_the_rejects_table_with_its_text(tmp_path, db_path) -> None:
    f = tmp_path / "ticks.csv"
    f.write_bytes(GENERIC.encode())
    out = run_import(db_path, f)
    stored = rows(db_path, "SELECT source, symbol, reason, raw, ts_event FROM rejects ORDER BY id")
    assert [r[2] for r in stored] == [f"line {x['line']}: {x['reason']}" for x in out["rejected"]]
    assert {r[0] for r in stored} == {"import:ticks.csv"}
    assert {r[1] for r in stored} == {None}  # two symbols in the file: a bad row names none
    raw = {int(r[2].split(":")[0][5:]): r[3] for r in stored}
    assert raw[5] == "1704067202,EURUSD,abc,1.1,,"  # the line as it was, without its ending
    assert raw[6] == "1704067203000000,EURUSD,1,1,2,3,4"
    assert raw[12] == "1704067207,GBPUSD,1.3,1.3002"
    assert raw[14] == "1704067209,GBPUSD,1.3,Infinity,,"
    # a one-symbol file names it; an overlong line is cut
    g = tmp_path / "one.csv"
    g.write_text("ts,bid,ask\n1704067200,1.1,1.1002\n1704067201," + "9" * 2000 + ",x\n")
    run_import(db_path, g, "--symbol", "USDJPY")
    (row,) = rows(db_path, "SELECT symbol, raw FROM rejects WHERE source = 'import:one.csv'")
    assert row[0] == "USDJPY" and len(row[1]) == 500 and row[1].startswith("1704067201,999")
