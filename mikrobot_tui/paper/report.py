"""An account's performance report: the metrics of paper/analytics.py over what the database
holds, for the account and for each strategy and symbol it trades, with daily, weekly and
monthly breakdowns and buy-and-hold of the symbols traded.

`account_report(conn, account)` is what the cockpit calls; `reports(conn)` gives every
account, `report_doc`/`report_json` their JSON (the `mikrobot report --json` contract).

Curves. The account's curve is its stored equity (a point a minute of market time) after the
starting equity: the account's opening balance, or with `since_ns` the last equity point
before it. A strategy or symbol has no equity of its own: its curve is the account's starting
equity plus the cumulative net P&L of its closed trades (at their closing times) and its
swaps, so its returns are its contribution on the account's capital, realized only.

Returns are sampled per period: hourly (UTC hours) or daily. A day is the market's trading
day: 17:00 to 17:00 New York for an account that trades anything but crypto (five a week, as
252 a year assumes), the UTC day for one that trades only crypto (365 a year). Breakdowns use
the same days, and weeks from Monday 00:00 UTC, calendar months in UTC.

Costs and closed trades come from the event log (paper/account_log.py); costs are reported
as paid: positive is a cost.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mikrobot_tui.paper import analytics as an
from mikrobot_tui.paper.account_log import Activity, activity, closed_trades, is_crypto
from mikrobot_tui.paper.analytics import Undefined, Value
from mikrobot_tui.paper.periods import BREAKDOWNS, breakdown, iso, last_per_period, period_starts
from mikrobot_tui.store.performance import account_names, first_last_close
from mikrobot_tui.store.performance import read_account as _read

METRIC_KEYS = (
    "net_profit",
    "total_return",
    "cagr",
    "annualized_volatility",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown_pct",
    "max_drawdown_amount",
    "max_drawdown_duration",
    "trades",
    "win_rate",
    "avg_win",
    "avg_loss",
    "payoff_ratio",
    "profit_factor",
    "expectancy",
    "sqn",
    "max_consecutive_wins",
    "max_consecutive_losses",
    "avg_holding_s",
    "exposure",
    "commissions",
    "swaps",
    "slippage",
)


@dataclass(frozen=True)
class View:
    """The metrics of one strategy or one symbol of an account."""

    name: str
    metrics: dict[str, Any]
    reasons: dict[str, str]


@dataclass(frozen=True)
class Report:
    account: str
    currency: str
    frequency: str
    periods_per_year: int
    since_ns: int | None
    start_ts: int
    end_ts: int
    start_equity: float | None
    metrics: dict[str, Any]  # METRIC_KEYS + periods_per_year + frequency; None when undefined
    reasons: dict[str, str]  # why each None metric is None
    curve: tuple[np.ndarray, np.ndarray]  # (ts ns, equity): the starting point, then each minute
    drawdown: tuple[np.ndarray, np.ndarray]  # (amount, percent below the peak) at each point
    periods: dict[str, list[dict[str, Any]]]  # daily, weekly, monthly
    buy_and_hold: dict[str, Any]
    strategies: list[View] = field(default_factory=list)
    symbols: list[View] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _split(values: dict[str, Value]) -> tuple[dict[str, Any], dict[str, str]]:
    metrics: dict[str, Any] = {}
    reasons: dict[str, str] = {}
    for key in METRIC_KEYS:
        v = values[key]
        if isinstance(v, Undefined):
            metrics[key], reasons[key] = None, v.reason
        else:
            metrics[key] = v
    return metrics, reasons


def metric_values(
    curve: tuple[np.ndarray, np.ndarray] | Undefined,
    returns: np.ndarray,
    ppy: int,
    window: tuple[int, int],
    trades: list[dict[str, Any]],
    open_since: list[int],
    fills: list[dict[str, Any]],
    swaps: list[dict[str, Any]],
    risk_free: float = 0.0,
) -> dict[str, Value]:
    """Every metric of one view: its curve (or why it has none), its sampled returns, the
    period [start, end] in ns, its closed trades, the opening times of its open positions,
    its fills and its swaps."""
    start_ts, end_ts = window
    v: dict[str, Value] = {}
    if isinstance(curve, Undefined):
        for key in METRIC_KEYS[:10]:
            v[key] = curve
    else:
        ts, eq = curve
        start, end = float(eq[0]), float(eq[-1])
        amount, fraction = an.drawdown(eq)
        mdd = float(fraction.max()) if fraction.size else 0.0
        v["net_profit"] = an.net_profit(start, end)
        v["total_return"] = an.total_return(start, end)
        v["cagr"] = an.cagr(start, end, (end_ts - start_ts) / an.NS_PER_DAY)
        v["annualized_volatility"] = an.annualized_volatility(returns, ppy)
        v["sharpe"] = an.sharpe(returns, ppy, risk_free)
        v["sortino"] = an.sortino(returns, ppy, risk_free)
        v["calmar"] = an.calmar(v["cagr"], mdd)
        v["max_drawdown_pct"] = mdd * 100.0
        v["max_drawdown_amount"] = float(amount.max()) if amount.size else 0.0
        v["max_drawdown_duration"] = an.max_drawdown_duration(ts, eq)
    net = np.array([t["pnl"] - t["commission"] for t in trades], dtype=float)
    r = np.array([math.nan if t["r_multiple"] is None else t["r_multiple"] for t in trades])
    opened = np.array([t["ts_opened"] for t in trades], dtype=np.int64)
    closed = np.array([t["ts_closed"] for t in trades], dtype=np.int64)
    v["trades"] = len(trades)
    for key, fn in an.TRADE_METRICS.items():
        v[key] = fn(net)
    v["sqn"] = an.sqn(r)
    v["max_consecutive_wins"] = an.max_consecutive(net, 1)
    v["max_consecutive_losses"] = an.max_consecutive(net, -1)
    v["avg_holding_s"] = an.avg_holding_s(opened, closed)
    held_from = np.concatenate([opened, np.asarray(open_since, dtype=np.int64)])
    held_to = np.concatenate([closed, np.full(len(open_since), end_ts, dtype=np.int64)])
    v["exposure"] = an.exposure(held_from, held_to, start_ts, end_ts)
    v["commissions"] = float(sum(f["commission"] for f in fills))
    v["swaps"] = 0.0 - float(sum(s["amount"] for s in swaps))
    slips = [f["slippage"] for f in fills]
    unknown = sum(1 for s in slips if math.isnan(s))
    v["slippage"] = (
        Undefined(f"{unknown} of {len(slips)} fills have no conversion rate on record")
        if unknown
        else float(sum(slips))
    )
    return v


def buy_and_hold(
    conn: sqlite3.Connection, symbols: Sequence[str], window: tuple[int, int], strategy: Value
) -> dict[str, Any]:
    """Equal-weighted buy-and-hold of the traded symbols: first to last M1 close in the period."""
    legs = []
    for s in sorted(symbols):
        closes = first_last_close(conn, s, *window)
        if closes is not None and closes[0] > 0:
            first, last = closes
            legs.append({"symbol": s, "first_close": first, "last_close": last})
            legs[-1]["return"] = last / first - 1.0
    doc: dict[str, Any] = {"symbols": legs, "return": None, "excess": None, "reason": None}
    if not legs:
        doc["reason"] = "no traded symbol has M1 bars in the period"
        return doc
    doc["return"] = float(np.mean([leg["return"] for leg in legs]))
    if not isinstance(strategy, Undefined):
        doc["excess"] = float(strategy) - doc["return"]
    return doc


def account_report(
    conn: sqlite3.Connection,
    account: str,
    since_ns: int | None = None,
    frequency: str = "D",
    risk_free: float = 0.0,
) -> Report:
    """The performance report of one account (see the module doc for every choice)."""
    record = _read(conn, account, since_ns)
    act = activity(record, since_ns)
    crypto = is_crypto(record, act.symbols)
    ny = not crypto
    ppy = an.periods_per_year(frequency, crypto)
    trades = closed_trades(record, since_ns)
    notes: list[str] = []
    if not act.symbols:
        notes.append("no order on record: periods_per_year assumes 252 trading days")
    # the period starts at the account's first equity point (the minute its market time
    # began: the account_opened event of a replay is stamped before any tick), or at since_ns
    first = record.first_equity_ts
    if first is None:
        first = record.opened_ts if record.opened_ts is not None else 0
    start_ts = first if since_ns is None else max(since_ns, first)
    ends = [start_ts, *record.equity_ts[-1:].tolist()]
    ends += [t["ts_closed"] for t in trades] + [f["ts"] for f in act.fills]
    end_ts = int(max(ends))
    base = record.equity_before if since_ns is not None else None
    if base is None:
        base = record.initial_balance
    if base is None and record.equity.size:
        base = float(record.equity[0])
    window = (int(start_ts), end_ts)
    unit = "H" if frequency == "H" else "D"
    if record.equity.size and base is not None:
        curve_ts = np.concatenate([[start_ts], record.equity_ts]).astype(np.int64)
        curve_eq = np.concatenate([[base], record.equity])
        keys, last = last_per_period(period_starts(record.equity_ts, unit, ny), record.equity)
        returns = an.simple_returns(np.concatenate([[base], last]))
        curve: tuple[np.ndarray, np.ndarray] | Undefined = (curve_ts, curve_eq)
    else:
        curve_ts, curve_eq = np.zeros(0, dtype=np.int64), np.zeros(0)
        keys, returns = np.zeros(0, dtype=np.int64), np.zeros(0)
        curve = Undefined("no equity point in the period")
    open_since = [p["ts_opened"] for p in act.open_positions]
    values = metric_values(
        curve, returns, ppy, window, trades, open_since, act.fills, act.swaps, risk_free
    )
    metrics, reasons = _split(values)
    metrics.update(periods_per_year=ppy, frequency=frequency)
    views = {}
    for by in ("strategy", "symbol"):
        names = sorted({t[by] for t in trades} | {p[by] for p in act.open_positions})
        views[by] = [
            _view(by, name, trades, act, base, keys, unit, ny, ppy, window, risk_free)
            for name in names
        ]
    amount, fraction = an.drawdown(curve_eq)
    closes = np.array([t["ts_closed"] for t in trades], dtype=np.int64)
    periods = {
        name: breakdown(record.equity_ts, record.equity, base or 0.0, closes, u, ny)
        for name, u in BREAKDOWNS.items()
    }
    traded = {t["symbol"] for t in trades} | {p["symbol"] for p in act.open_positions}
    return Report(
        account=account,
        currency=record.currency,
        frequency=frequency,
        periods_per_year=ppy,
        since_ns=since_ns,
        start_ts=window[0],
        end_ts=window[1],
        start_equity=base,
        metrics=metrics,
        reasons=reasons,
        curve=(curve_ts, curve_eq),
        drawdown=(amount, fraction * 100.0),
        periods=periods,
        buy_and_hold=buy_and_hold(conn, sorted(traded), window, values["total_return"]),
        strategies=views["strategy"],
        symbols=views["symbol"],
        notes=notes,
    )


def _view(
    by: str,
    name: str,
    all_trades: list[dict[str, Any]],
    act: Activity,
    base: float | None,
    keys: np.ndarray,
    unit: str,
    ny: bool,
    ppy: int,
    window: tuple[int, int],
    risk_free: float,
) -> View:
    """One strategy's or symbol's metrics, on the curve of its realized P&L (module doc)."""
    trades = [t for t in all_trades if t[by] == name]
    swaps = [s for s in act.swaps if s[by] == name]
    steps = sorted(
        [(t["ts_closed"], t["pnl"] - t["commission"]) for t in trades]
        + [(s["ts"], s["amount"]) for s in swaps]
    )
    step_ts = np.array([s[0] for s in steps], dtype=np.int64)
    if base is None:
        curve: tuple[np.ndarray, np.ndarray] | Undefined = Undefined("no starting equity")
        returns = np.zeros(0)
    else:
        cum = base + np.cumsum([s[1] for s in steps])
        ts = np.concatenate([[window[0]], step_ts, [window[1]]]).astype(np.int64)
        eq = np.concatenate([[base], cum, cum[-1:] if cum.size else [base]])
        at = np.searchsorted(period_starts(step_ts, unit, ny), keys, side="right") - 1
        sampled = np.where(at >= 0, cum[np.maximum(at, 0)] if cum.size else base, base)
        returns = an.simple_returns(np.concatenate([[base], sampled]))
        curve = (ts, eq)
    values = metric_values(
        curve,
        returns,
        ppy,
        window,
        trades,
        [p["ts_opened"] for p in act.open_positions if p[by] == name],
        [f for f in act.fills if f[by] == name],
        swaps,
        risk_free,
    )
    metrics, reasons = _split(values)
    metrics.update(periods_per_year=ppy, frequency=unit)
    return View(name, metrics, reasons)


def reports(
    conn: sqlite3.Connection,
    account: str | None = None,
    since_ns: int | None = None,
    frequency: str = "D",
) -> list[Report]:
    """The report of `account`, or of every account the database knows."""
    names = account_names(conn) if account is None else [account]
    return [account_report(conn, name, since_ns, frequency) for name in names]


def _metrics_doc(metrics: dict[str, Any], reasons: dict[str, str]) -> dict[str, Any]:
    return {"metrics": metrics, "reasons": reasons}


def report_doc(report: Report) -> dict[str, Any]:
    """One account's JSON object (curves and drawdowns left out: `account_report` has them)."""
    return {
        "account": report.account,
        "currency": report.currency,
        "since_ts": report.since_ns,
        "start_ts": report.start_ts,
        "end_ts": report.end_ts,
        "start": iso(report.start_ts),
        "end": iso(report.end_ts),
        "start_equity": report.start_equity,
        **_metrics_doc(report.metrics, report.reasons),
        "strategies": [
            {"strategy": v.name, **_metrics_doc(v.metrics, v.reasons)} for v in report.strategies
        ],
        "symbols": [
            {"symbol": v.name, **_metrics_doc(v.metrics, v.reasons)} for v in report.symbols
        ],
        "periods": report.periods,
        "buy_and_hold": report.buy_and_hold,
        "notes": report.notes,
    }


def report_json(reports: Sequence[Report]) -> str:
    """The `mikrobot report --json` document: a JSON list, one object per account."""
    return json.dumps(
        [report_doc(r) for r in reports], indent=2, ensure_ascii=True, allow_nan=False
    )
