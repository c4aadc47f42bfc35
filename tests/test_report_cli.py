"""`mikrobot report` and `account_report`: a database written through the store's writer with
figures worked out by hand, and a real replay read back through the command line."""

from __future__ import annotations

import hashlib
import json
import math
import statistics
from pathlib import Path

import numpy as np
import pytest
from engine_data import FAST_ACCOUNTS, replay, waves
from typer.testing import CliRunner

from mikrobot_tui.cli import app
from mikrobot_tui.paper.periods import period_starts
from mikrobot_tui.paper.report import METRIC_KEYS, account_report
from mikrobot_tui.store.schema import COLUMNS, open_db
from mikrobot_tui.store.writer import Writer

runner = CliRunner()
H = 3_600 * 10**9
DAY = 24 * H
T0 = 1_767_571_200 * 10**9  # 2026-01-05 00:00 UTC, a Monday
INSTRUMENTS = [
    ("BTCUSDT", "crypto", "BTC", "USDT", 0.01, 0.01, 1.0, 0.00001, 0.00001, 5.0),
    ("EURUSD", "forex", "EUR", "USD", 0.0001, 0.00001, 100_000, 0.01, 0.01, 0.0),
]
ALL_KEYS = {*METRIC_KEYS, "periods_per_year", "frequency"}


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


class Book:
    """Writes one account's history the way the engine does: events, trades, equity, bars."""

    def __init__(self, path: Path, account: str, currency: str = "USDT") -> None:
        self.conn = open_db(path).conn
        self.w = Writer(self.conn)
        self.account, self.seq, self.n = account, 0, 0
        self.w.upsert("instruments", COLUMNS["instruments"], INSTRUMENTS)
        self.event(0, "account_opened", {"balance": 1000.0, "currency": currency})

    def event(self, ts: int, kind: str, payload: dict) -> None:
        self.seq += 1
        cols = ("seq", "ts", "kind", "account", "payload")
        self.w.append("events", cols, [(self.seq, ts, kind, self.account, json.dumps(payload))])

    def open(self, ts: int, symbol: str, strategy: str, slippage=0.0, lots=0.5) -> str:
        self.n += 1
        oid = f"{self.account}-{self.n:06d}"
        order = {"order_id": oid, "symbol": symbol, "strategy": strategy, "lots": lots}
        self.event(ts, "order_submitted", order)
        fill = {"order_id": oid, "lots": lots, "commission": 5.0, "slippage": slippage}
        self.event(ts, "order_filled", fill)
        pos = {"position_id": oid, "order_id": oid, "symbol": symbol, "side": "BUY"}
        pos |= {"lots": lots, "entry_price": 1.0, "commission": 5.0, "equity_at_open": 1000.0}
        self.event(ts, "position_opened", {**pos, "strategy": strategy, "rate": 1.0})
        return oid

    def close_part(self, pid, ts, symbol, strategy, pnl, r, lots, left=0.0) -> None:
        """Close `lots` of position `pid` (all of it when nothing is `left`)."""
        exit_id = f"{pid}-X{ts}"
        exit_order = {"order_id": exit_id, "symbol": symbol, "position_id": pid, "lots": lots}
        self.event(ts, "order_submitted", {**exit_order, "strategy": strategy})
        fill = {"order_id": exit_id, "lots": lots, "commission": 5.0, "slippage": 0.0}
        self.event(ts, "order_filled", fill)
        closed = {"position_id": pid, "exit_price": 1.0, "reason": "close", "pnl": pnl}
        closed |= {"commission": 5.0, "rate": 1.0, "return_pct": 0.0, "r_multiple": r}
        if left:
            part = {"lots": left, "entry_price": 1.0, "added_lots": 0.0, "closed_lots": lots}
            self.event(ts, "position_changed", {**closed, **part, "order_id": exit_id})
        else:
            self.event(ts, "position_closed", closed)
        # the engine's trades table: one row per position, the last close replaces the first
        row = (pid, self.account, strategy, symbol, "BUY", lots, 1.0, 1.0, ts - H, ts)
        self.w.upsert("trades", COLUMNS["trades"], [(*row, pnl, 10.0, 0.0, r, "close")])

    def trade(self, opened, closed, symbol, strategy, pnl, r, slippage=0.0, lots=0.5) -> str:
        pid = self.open(opened, symbol, strategy, slippage, lots)
        self.close_part(pid, closed, symbol, strategy, pnl, r, lots)
        return pid

    def equity(self, points) -> None:
        rows = [(self.account, ts, e, e, 0.0, None) for ts, e in points]
        self.w.upsert("equity", COLUMNS["equity"], rows)

    def bars(self, symbol: str, closes) -> None:
        rows = [(symbol, "M1", ts, c, c, c, c, 1, 0.0) for ts, c in closes]
        self.w.upsert("bars", COLUMNS["bars"], rows)

    def close(self) -> None:
        self.w.flush()
        self.conn.close()


@pytest.fixture
def crypto_db(tmp_path: Path) -> Path:
    """Account C trades BTCUSDT: +10%, -10%, +10% on three UTC days, three trades (a win, a
    loss, a break-even), a swap, a position still open, buy-and-hold +10%."""
    path = tmp_path / "c.db"
    b = Book(path, "C")
    b.equity([(T0, 1000.0), (T0 + 12 * H, 1100.0), (T0 + DAY + 12 * H, 990.0)])
    b.equity([(T0 + 2 * DAY + 12 * H, 1089.0)])
    p1 = b.trade(T0 + H, T0 + 5 * H, "BTCUSDT", "s1", 110.0, 2.0, slippage=2.0)
    b.event(T0 + 4 * H, "swap", {"position_id": p1, "amount": -2.5})
    b.trade(T0 + DAY + H, T0 + DAY + 3 * H, "BTCUSDT", "s1", -100.0, -1.0)
    b.trade(T0 + 2 * DAY + H, T0 + 2 * DAY + 2 * H, "BTCUSDT", "s2", 10.0, 0.0)
    b.open(T0 + 2 * DAY + 11 * H, "BTCUSDT", "s2")
    b.bars("BTCUSDT", [(T0, 100.0), (T0 + DAY, 90.0), (T0 + 2 * DAY + 12 * H, 110.0)])
    b.close()
    return path


def read(path: Path):
    from mikrobot_tui.store.queries import read_only

    return read_only(str(path))


def test_the_account_view_against_hand_worked_figures(crypto_db: Path) -> None:
    rep = account_report(read(crypto_db), "C")
    m = rep.metrics
    assert (m["periods_per_year"], m["frequency"]) == (365, "D")  # only crypto: 365
    assert rep.start_ts == T0 and rep.end_ts == T0 + 2 * DAY + 12 * H
    r = [0.1, -0.1, 0.1]  # each UTC day's last equity against the day before (1000 at start)
    mean, sd = statistics.mean(r), statistics.stdev(r)
    assert m["net_profit"] == pytest.approx(89.0)
    assert m["total_return"] == pytest.approx(0.089)
    assert m["cagr"] == pytest.approx(1.089 ** (365.25 / 2.5) - 1)
    assert m["annualized_volatility"] == pytest.approx(sd * math.sqrt(365))
    assert m["sharpe"] == pytest.approx(mean / sd * math.sqrt(365))
    assert m["sortino"] == pytest.approx(mean / math.sqrt(0.01 / 3) * math.sqrt(365))
    assert m["max_drawdown_pct"] == pytest.approx(10.0)  # 1100 -> 990
    assert m["max_drawdown_amount"] == pytest.approx(110.0)
    assert m["max_drawdown_duration"] == 2 * 86_400  # from 1100 to the end, not recovered
    assert m["calmar"] == pytest.approx(m["cagr"] / 0.1)
    # trades: net +100, -110, 0 (pnl less 10 commission); the break-even is not a win
    assert m["trades"] == 3
    assert m["win_rate"] == pytest.approx(1 / 3)
    assert (m["avg_win"], m["avg_loss"]) == (100.0, -110.0)
    assert m["payoff_ratio"] == pytest.approx(100 / 110)
    assert m["profit_factor"] == pytest.approx(100 / 110)
    assert m["expectancy"] == pytest.approx(-10 / 3)
    assert m["sqn"] == pytest.approx(math.sqrt(3) * (1 / 3) / statistics.stdev([2, -1, 0]))
    assert (m["max_consecutive_wins"], m["max_consecutive_losses"]) == (1, 1)
    assert m["avg_holding_s"] == pytest.approx((4 + 2 + 1) * 3600 / 3)
    # 4 h + 2 h + 1 h closed, 1 h still open at the end, of 60 h
    assert m["exposure"] == pytest.approx(8 / 60)
    assert m["commissions"] == pytest.approx(35.0)  # seven fills at 5
    assert m["swaps"] == pytest.approx(2.5)  # paid
    assert m["slippage"] == pytest.approx(2.0 * 0.5 * 1.0)  # price units x lots x contract
    assert rep.reasons == {}
    bh = rep.buy_and_hold
    assert bh["return"] == pytest.approx(0.1) and bh["excess"] == pytest.approx(0.089 - 0.1)


def test_per_strategy_curves_are_realized_pnl_on_the_account_capital(crypto_db: Path) -> None:
    rep = account_report(read(crypto_db), "C")
    s1, s2 = rep.strategies
    assert (s1.name, s2.name) == ("s1", "s2")
    # s1: +100 at T0+5h, the swap -2.5 at T0+4h, -110 at T0+1d+3h
    assert s1.metrics["net_profit"] == pytest.approx(-12.5)
    assert s1.metrics["total_return"] == pytest.approx(-0.0125)
    assert s1.metrics["swaps"] == pytest.approx(2.5)
    assert s1.metrics["max_drawdown_amount"] == pytest.approx(110.0)
    assert s1.metrics["trades"] == 2 and s1.metrics["win_rate"] == 0.5
    # s2: one break-even: no ratio; its open position counts in its exposure
    assert s2.metrics["profit_factor"] is None
    assert "only break-even" in s2.reasons["profit_factor"]
    assert s2.metrics["exposure"] == pytest.approx(2 / 60)
    assert [v.name for v in rep.symbols] == ["BTCUSDT"]
    assert rep.symbols[0].metrics["trades"] == 3


def test_a_partial_close_is_a_trade_of_its_own(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    b = Book(path, "P")
    b.equity([(T0, 1000.0), (T0 + 3 * H, 1040.0)])
    pid = b.open(T0 + H, "BTCUSDT", "s", lots=1.0)
    b.close_part(pid, T0 + 2 * H, "BTCUSDT", "s", 30.0, 1.0, lots=0.5, left=0.5)
    b.close_part(pid, T0 + 3 * H, "BTCUSDT", "s", -5.0, -0.5, lots=0.5)
    b.close()
    assert read(path).execute("SELECT COUNT(*) FROM trades").fetchone()[0] == 1
    m = account_report(read(path), "P").metrics
    # net: 30 - 5 exit - 2.5 (half the entry commission); -5 - 5 - 2.5
    assert m["trades"] == 2
    assert (m["avg_win"], m["avg_loss"]) == (22.5, -12.5)
    assert m["avg_holding_s"] == pytest.approx(1.5 * 3600)


def test_breakdowns_by_day_week_and_month(crypto_db: Path) -> None:
    rep = account_report(read(crypto_db), "C")
    daily = rep.periods["daily"]
    assert [d["start_ts"] for d in daily] == [T0, T0 + DAY, T0 + 2 * DAY]
    assert [d["pnl"] for d in daily] == pytest.approx([100.0, -110.0, 99.0])
    assert [d["return"] for d in daily] == pytest.approx([0.1, -0.1, 0.1])
    assert [d["trades"] for d in daily] == [1, 1, 1]
    (week,) = rep.periods["weekly"]
    assert week["start"] == "2026-01-05T00:00:00Z" and week["pnl"] == pytest.approx(89.0)
    (month,) = rep.periods["monthly"]
    assert month["start"] == "2026-01-01T00:00:00Z" and month["trades"] == 3


def test_since_starts_from_the_equity_before_it(crypto_db: Path) -> None:
    rep = account_report(read(crypto_db), "C", since_ns=T0 + DAY)
    assert rep.start_equity == 1100.0 and rep.start_ts == T0 + DAY
    assert rep.metrics["net_profit"] == pytest.approx(-11.0)
    assert rep.metrics["trades"] == 2
    assert rep.metrics["commissions"] == pytest.approx(25.0)  # the first trade's fills left out


def test_hourly_frequency_changes_periods_per_year(crypto_db: Path) -> None:
    rep = account_report(read(crypto_db), "C", frequency="H")
    assert (rep.metrics["periods_per_year"], rep.metrics["frequency"]) == (8760, "H")
    r = [0.0, 0.1, -0.1, 0.1]  # four hours with an equity point
    assert rep.metrics["sharpe"] == pytest.approx(
        statistics.mean(r) / statistics.stdev(r) * math.sqrt(8760)
    )


def test_an_fx_account_counts_trading_days_from_five_pm_new_york(tmp_path: Path) -> None:
    path = tmp_path / "f.db"
    b = Book(path, "F", "USD")
    # 21:00 UTC and 23:00 UTC on Monday 5 January: either side of 17:00 New York (22:00 UTC)
    b.equity([(T0 + 21 * H, 1010.0), (T0 + 23 * H, 1020.0)])
    b.trade(T0 + 20 * H, T0 + 21 * H, "EURUSD", "s", 20.0, 1.0)
    b.close()
    rep = account_report(read(path), "F")
    assert rep.metrics["periods_per_year"] == 252
    starts = [d["start"] for d in rep.periods["daily"]]
    assert starts == ["2026-01-04T22:00:00Z", "2026-01-05T22:00:00Z"]
    assert period_starts(np.array([T0 + 21 * H]), "D", True)[0] == T0 - 2 * H
    assert rep.buy_and_hold["return"] is None and "no traded symbol" in rep.buy_and_hold["reason"]


def test_an_account_without_trades_or_equity_says_why(tmp_path: Path) -> None:
    path = tmp_path / "e.db"
    Book(path, "E").close()
    rep = account_report(read(path), "E")
    assert rep.metrics["trades"] == 0
    for key in ("net_profit", "sharpe", "win_rate", "profit_factor", "sqn"):
        assert rep.metrics[key] is None and rep.reasons[key]
    assert "no equity point" in rep.reasons["sharpe"]
    assert rep.notes and "252" in rep.notes[0]


def test_json_has_exactly_the_contract_keys_and_reasons_for_nulls(crypto_db: Path) -> None:
    result = invoke("--db", str(crypto_db), "report", "--json", "--frequency", "H")
    assert result.exit_code == 0
    doc = json.loads(result.output)
    assert isinstance(doc, list) and [a["account"] for a in doc] == ["C"]
    metrics = doc[0]["metrics"]
    assert set(metrics) == ALL_KEYS
    assert (metrics["periods_per_year"], metrics["frequency"]) == (8760, "H")
    for view in (*doc[0]["strategies"], *doc[0]["symbols"]):
        assert set(view["metrics"]) == ALL_KEYS
        nulls = {k for k, v in view["metrics"].items() if v is None}
        assert nulls == set(view["reasons"])
    assert set(doc[0]["periods"]) == {"daily", "weekly", "monthly"}


def test_csv_is_one_row_per_account_under_the_metric_names(crypto_db: Path) -> None:
    result = invoke("--db", str(crypto_db), "report", "--csv")
    assert result.exit_code == 0
    header, row, *rest = result.output.splitlines()
    assert header.split(",") == ["account", *METRIC_KEYS, "periods_per_year", "frequency"]
    assert row.startswith("C,") and row.endswith(",365,D") and rest == []


def test_since_on_the_command_line(crypto_db: Path) -> None:
    result = invoke("--db", str(crypto_db), "report", "--json", "--since", "2026-01-06")
    assert json.loads(result.output)[0]["metrics"]["trades"] == 2


def test_tables_on_a_terminal_are_ascii(crypto_db: Path) -> None:
    result = invoke("--db", str(crypto_db), "report")
    assert result.exit_code == 0
    assert "sharpe" in result.output and "buy-and-hold" in result.output
    result.output.encode("ascii")


def test_usage_errors(tmp_path: Path, crypto_db: Path) -> None:
    missing = invoke("--db", str(tmp_path / "none.db"), "report")
    assert missing.exit_code == 1 and "no database at" in missing.output
    assert len(missing.output.strip().splitlines()) == 1
    bad = invoke("--db", str(crypto_db), "report", "--since", "yesterday")
    assert bad.exit_code == 2 and "--since" in bad.output and "ISO-8601" in bad.output
    both = invoke("--db", str(crypto_db), "report", "--json", "--csv")
    assert both.exit_code == 2
    unknown = invoke("--db", str(crypto_db), "report", "--account", "Z")
    assert unknown.exit_code == 2 and "accounts: C" in unknown.output
    freq = invoke("--db", str(crypto_db), "report", "--frequency", "W")
    assert freq.exit_code == 2


def test_the_report_never_writes_the_database(crypto_db: Path) -> None:
    before = hashlib.sha256(crypto_db.read_bytes()).hexdigest()
    assert invoke("--db", str(crypto_db), "report", "--json").exit_code == 0
    assert hashlib.sha256(crypto_db.read_bytes()).hexdigest() == before


def test_a_replay_with_trades_reports_what_the_log_holds(make_settings, tmp_path, db_path):
    replay(make_settings(accounts=FAST_ACCOUNTS), waves(3000), tmp_path / "r", 1000).close()
    result = invoke("--db", str(db_path), "report", "--json")
    assert result.exit_code == 0
    doc = {a["account"]: a for a in json.loads(result.output)}
    assert set(doc) == {"A", "B"}
    conn = read(db_path)
    for name, a in doc.items():
        m = a["metrics"]
        (n, net) = conn.execute(
            "SELECT COUNT(*), SUM(pnl - commission) FROM trades WHERE account = ?", (name,)
        ).fetchone()
        assert n > 0 and m["trades"] == n
        assert sum(v["metrics"]["trades"] for v in a["symbols"]) == n
        fees = conn.execute(
            "SELECT SUM(json_extract(payload, '$.commission')) FROM events "
            "WHERE account = ? AND kind = 'order_filled'",
            (name,),
        ).fetchone()[0]
        assert m["commissions"] == pytest.approx(fees)
        assert m["slippage"] is not None and m["slippage"] >= 0
        (last,) = conn.execute(
            "SELECT equity FROM equity WHERE account = ? ORDER BY ts DESC LIMIT 1", (name,)
        ).fetchone()
        assert a["start_equity"] == 10_000.0
        assert m["net_profit"] == pytest.approx(last - 10_000.0)
        assert m["periods_per_year"] == 252 and 0 < m["exposure"] <= 1
        strategies_net = sum(v["metrics"]["net_profit"] for v in a["strategies"])
        assert strategies_net == pytest.approx(net)  # no swaps in two hours of January 1st


def test_help_lists_report_with_its_options() -> None:
    assert "report" in invoke("--help").output
    out = invoke("report", "--help").output
    for option in ("--account", "--since", "--frequency", "--json", "--csv"):
        assert option in out
