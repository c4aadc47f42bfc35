"""Reads for the cockpit and the CLI: one snapshot of everything on screen.

Both faces read SQLite only, so they work the same against an engine in this process or in
another one. An engine counts as running while its heartbeat is fresh.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mikrobot_tui.store import liveness

HEARTBEAT_STALE_NS = 3_000_000_000


@dataclass(frozen=True, slots=True)
class EngineStatus:
    running: bool
    mode: str  # SIMULATED, REPLAY, LIVE, or "-" when no engine ever ran on this file
    feed: str
    trading_state: str  # ACTIVE, REDUCING or HALTED
    pid: int | None
    started_ts: int | None
    heartbeat_ts: int | None
    db_problem: str | None = None  # why the engine cannot write the database right now


@dataclass(frozen=True, slots=True)
class SymbolRow:
    symbol: str
    bid: float
    ask: float
    spread_pips: float
    change_pct: float
    ts: int
    quality: float | None
    spark: list[float]


@dataclass(frozen=True, slots=True)
class QualityRow:
    symbol: str
    score: float
    ticks: int
    rejects: int
    spikes: int
    gaps: int
    latency_ms: float
    last_problem: str
    last_problem_ts: int | None
    # the score's parts (score = their product, data/quality/score.py); None on rows an
    # engine before them wrote
    validity: float | None = None
    spikes_part: float | None = None
    gaps_part: float | None = None
    latency_part: float | None = None
    completeness: float | None = None
    expected_ticks: float | None = None  # over the score's window, from the symbol's rate
    window_ticks: int | None = None  # received over the window
    # latency's process capability against quality.latency_limit_ms; None when not known
    latency_cp: float | None = None
    latency_cpk: float | None = None
    # the M1 bars' completeness over the last hour (its part of `completeness`)
    bar_completeness: float | None = None
    expected_bars: float | None = None
    window_bars: int | None = None


@dataclass(frozen=True, slots=True)
class WorkingOrderRow:
    """An order resting at the paper venue (`status --json`'s `working_orders`; the names are
    a contract: the `working_orders` table's columns)."""

    account: str
    order_id: str
    symbol: str
    side: str  # BUY or SELL
    type: str  # market, limit, stop, stop_limit
    lots: float
    filled_lots: float
    price: float | None  # the limit price (limit, stop_limit)
    trigger: float | None  # the stop price (stop, stop_limit)
    tif: str  # GTC, IOC, FOK, GTD
    expire_ts: int | None  # GTD
    reduce_only: bool
    parent_id: str | None  # a bracket child: its entry
    oco_id: str | None  # one cancels the other
    ts_submitted: int


@dataclass(frozen=True, slots=True)
class AccountRow:
    """One account (`status --json`'s `accounts`; the names are a contract)."""

    name: str
    currency: str
    strategy: str
    balance: float
    equity: float
    realized_pnl: float
    unrealized_pnl: float
    open_positions: int
    trades: int
    used_margin: float = 0.0
    free_margin: float = 0.0
    margin_level: float | None = None  # percent; None while no margin is used
    margin_call: bool = False
    margin_call_level: float | None = None  # percent
    leverage: float | None = None
    oms: str | None = None  # hedging or netting
    # the account limits (None on a file written before them); these four names are a contract
    trading_state: str | None = None  # ACTIVE, REDUCING or HALTED
    daily_loss_limit: float | None = None  # what a day may lose, account currency
    daily_loss_used: float | None = None  # the day's starting balance minus equity, >= 0
    heat: float | None = None  # open risk at the stops, percent of equity
    daily_floor: float | None = None  # equity below it breaches the daily loss limit
    overall_floor: float | None = None  # equity below it breaches the overall loss limit
    trades_today: int | None = None
    working_orders: list[WorkingOrderRow] = field(default_factory=list)

    @property
    def in_margin_call(self) -> bool:
        """In margin call by the engine's word, or by the figures against the account's level."""
        below = (
            self.margin_level is not None
            and self.margin_call_level is not None
            and self.margin_level < self.margin_call_level
        )
        return self.margin_call or below


@dataclass(frozen=True, slots=True)
class PositionRow:
    position_id: str
    account: str
    symbol: str
    side: str
    quantity: float
    entry_price: float
    mark: float | None  # None while the feed carries no price for the symbol
    unrealized_pnl: float
    ts_opened: int


@dataclass(frozen=True, slots=True)
class BreakerRow:
    name: str
    state: str  # CLOSED, OPEN, HALF_OPEN
    failures: int
    retry_ts: int | None  # when an OPEN breaker turns HALF_OPEN


@dataclass(frozen=True, slots=True)
class ABRow:
    """One variant of an experiment (`status --json`'s `ab`, `mikrobot ab --json`)."""

    variant: str  # A is the control, then B, C ...
    account: str
    params: str
    trades: int
    wins: int
    win_rate: float | None
    mean_return: float | None
    p_value: float | None  # Welch's, against the control (fixed sample size)
    test: str  # welch_t, or n/a: why
    experiment: str = "ab"
    metric: str = "r"
    mean_low: float | None = None  # the mean's percentile-bootstrap interval
    mean_high: float | None = None
    diff: float | None = None  # mean - the control's; None on the control's row
    diff_low: float | None = None
    diff_high: float | None = None
    ci_method: str | None = None
    ci_level: float | None = None
    ci_seed: int | None = None
    ci_resamples: int | None = None
    always_valid_p: float | None = None  # mSPRT, valid at every look
    alpha: float | None = None  # the level each comparison is judged at
    share: float | None = None  # of the experiment's risk budget
    bandit: bool = False
    verdict: str = ""  # control, collecting, inconclusive or "<account> better"
    reason: str = ""


@dataclass(frozen=True, slots=True)
class FeedRow:
    """One connection's health (`status --json`'s `feeds`; the names are a contract)."""

    name: str
    venue: str  # binance, mt5, sim or replay
    state: str  # CONNECTING, LIVE, STALE, DOWN or STOPPED
    reconnects: int
    last_message_age_s: float | None  # seconds since its last message, as of the read
    msgs_per_s: float
    latency_ms_p50: float | None
    latency_ms_p99: float | None
    conflated: int
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ModelRow:
    """A model an account trades by (`status --json`'s `models`; the names are a contract):
    the batch model's out-of-sample score from its training beside the online model's over
    the outcomes taught since the engine started (None while it cannot be told)."""

    account: str
    model: str
    version: int
    kind: str
    label: str
    batch_auc: float | None
    batch_log_loss: float | None
    online_updates: int
    online_auc: float | None
    online_log_loss: float | None
    skipped: int  # entries the strategy skipped: rated below its threshold
    drifted: list[str]  # features past [models] psi_alert; [] when none


def read_models(conn: sqlite3.Connection) -> list[ModelRow]:
    """The served models by account (none on a file from before them)."""
    rows = []
    for *r, drifted in _rows(
        conn,
        "SELECT account, model, version, kind, label, batch_auc, batch_log_loss, "
        "online_updates, online_auc, online_log_loss, skipped, drifted FROM models "
        "ORDER BY account",
    ):
        try:
            names = json.loads(drifted) if drifted else []
        except ValueError:
            names = []  # a damaged row must not blank the pane
        names = [str(n) for n in names] if isinstance(names, list) else []
        rows.append(ModelRow(*r, drifted=names))
    return rows


@dataclass(frozen=True, slots=True)
class DecisionRow:
    """A signal the orchestrator decided on: an entry submitted or refused, and why."""

    seq: int
    ts: int
    account: str
    symbol: str
    side: str
    submitted: bool
    outcome: str  # approved (full risk), resized (risk scaled down by the score) or refused
    verdict: str | None  # the score's: approve, resize or refuse; None when not scored
    confidence: float | None  # None: not scored (an engine before scoring, a breaker first)
    lots: float | None  # the order's, None when refused
    reason: str  # the refusal's reason, or the strategy's for an order
    strategy: str
    factors: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Snapshot:
    engine: EngineStatus
    symbols: list[SymbolRow] = field(default_factory=list)
    quality: list[QualityRow] = field(default_factory=list)
    accounts: list[AccountRow] = field(default_factory=list)
    positions: list[PositionRow] = field(default_factory=list)
    breakers: list[BreakerRow] = field(default_factory=list)
    ab: list[ABRow] = field(default_factory=list)
    feeds: list[FeedRow] = field(default_factory=list)
    decisions: list[DecisionRow] = field(default_factory=list)
    models: list[ModelRow] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def read_ab(conn: sqlite3.Connection) -> list[ABRow]:
    """Every experiment's variants, by experiment then variant (the control first)."""
    return [
        ABRow(*r[:-2], bandit=bool(r[-2]), verdict=r[-1] or "", reason=reason or "")
        for *r, reason in conn.execute(
            "SELECT variant, account, params, trades, wins, win_rate, mean_return, p_value, "
            "test, experiment, metric, mean_low, mean_high, diff, diff_low, diff_high, "
            "ci_method, ci_level, ci_seed, ci_resamples, always_valid_p, alpha, share, bandit, "
            "verdict, reason FROM ab ORDER BY experiment, LENGTH(variant), variant"
        )
    ]


def _spark(text: str | None) -> list[float]:
    """A damaged sparkline must not blank the screen: show none instead."""
    try:
        values = json.loads(text) if text else []
        return [float(v) for v in values]
    except (ValueError, TypeError):
        return []


def _pid_alive(pid: int | None, host: str | None) -> bool:
    if not pid or host != socket.gethostname():
        return True  # cannot tell for another host; trust the heartbeat
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def engine_status(conn: sqlite3.Connection, now_ns: int) -> EngineStatus:
    r = conn.execute(
        "SELECT pid, host, mode, feed, trading_state, running, started_ts, heartbeat_ts "
        "FROM engine WHERE id = 1"
    ).fetchone()
    side = _liveness(conn)
    if r is None and side is None:
        return EngineStatus(False, "-", "-", "-", None, None, None)
    pid, host, mode, feed, state, running, started, heartbeat = r or (None,) * 8
    problem = None
    if side is not None and (pid is None or side.get("pid") == pid):
        # the engine could not write its row: its pulse and its trouble come from the file
        pid, host = side.get("pid"), side.get("host")
        heartbeat = max(heartbeat or 0, int(side.get("heartbeat_ts") or 0))
        running = 1
        problem = side.get("problem")
        mode, feed = mode or side.get("mode", "-"), feed or side.get("feed", "-")
        state = side.get("trading_state") or state
    fresh = heartbeat is not None and abs(now_ns - heartbeat) <= HEARTBEAT_STALE_NS
    alive = bool(running) and fresh and _pid_alive(pid, host)
    return EngineStatus(
        alive, mode, feed, state, pid, started, heartbeat, problem if alive else None
    )


def _liveness(conn: sqlite3.Connection) -> dict[str, Any] | None:
    """The engine's pulse file for this connection's database, if it has one now."""
    row = conn.execute("PRAGMA database_list").fetchone()
    if not row or not row[2]:
        return None
    return liveness.read(row[2])


# bracket children and closing orders are order_submitted events too: read enough to find
# the entries among them
_SUBMITTED_PER_DECISION = 4


def read_decisions(conn: sqlite3.Connection, limit: int = 20) -> list[DecisionRow]:
    """The last `limit` decisions, newest first. Each kind is read backwards along its
    (kind, seq) index, so the cost does not grow with the log."""
    rows: list[DecisionRow] = []
    for kind, n in (("order_refused", limit), ("order_submitted", limit * _SUBMITTED_PER_DECISION)):
        for seq, ts, account, text in conn.execute(
            "SELECT seq, ts, account, payload FROM events WHERE kind = ? ORDER BY seq DESC LIMIT ?",
            (kind, n),
        ):
            try:
                p = json.loads(text)
            except ValueError:
                continue  # a damaged row must not blank the pane
            if not isinstance(p, dict):
                continue
            submitted = kind == "order_submitted"
            if submitted and (p.get("intent") != "open" or p.get("parent_id")):
                continue  # a bracket's stop or target, a close: not a decision
            score = p.get("score") if isinstance(p.get("score"), dict) else {}
            verdict = score.get("verdict")
            if not submitted:
                outcome = "refused"  # by the score, or by a breaker or a check after it
            else:
                outcome = "resized" if verdict == "resize" else "approved"
            rows.append(
                DecisionRow(
                    seq=seq,
                    ts=ts,
                    account=account or "",
                    symbol=str(p.get("symbol", "")),
                    side=str(p.get("side", "")),
                    submitted=submitted,
                    outcome=outcome,
                    verdict=None if verdict is None else str(verdict),
                    confidence=score.get("confidence"),
                    lots=p.get("lots") if submitted else None,
                    reason=str(p.get("reason") or ""),
                    strategy=str(p.get("strategy") or ""),
                    factors=[f for f in score.get("factors", []) if isinstance(f, dict)],
                )
            )
    rows.sort(key=lambda r: r.seq, reverse=True)
    return rows[:limit]


def read_snapshot(conn: sqlite3.Connection, now_ns: int) -> Snapshot:
    q = {
        r[0]: r
        for r in conn.execute(
            "SELECT symbol, score, ticks, rejects, spikes, gaps, latency_ms, last_problem, "
            "last_problem_ts, validity, spikes_part, gaps_part, latency_part, completeness, "
            "expected_ticks, window_ticks, latency_cp, latency_cpk, bar_completeness, "
            "expected_bars, window_bars FROM quality ORDER BY symbol"
        )
    }
    pip = dict(conn.execute("SELECT symbol, pip_size FROM instruments").fetchall())
    symbols = []
    for sym, ts, bid, ask, open_mid, spark in conn.execute(
        "SELECT symbol, ts_event, bid, ask, open_mid, spark FROM latest ORDER BY rowid"
    ):
        mid = (bid + ask) / 2
        symbols.append(
            SymbolRow(
                symbol=sym,
                bid=bid,
                ask=ask,
                spread_pips=(ask - bid) / pip.get(sym, 1.0),
                change_pct=(mid / open_mid - 1) * 100 if open_mid else 0.0,
                ts=ts,
                quality=q[sym][1] if sym in q else None,
                spark=_spark(spark),
            )
        )
    quality = [QualityRow(*r) for r in q.values()]
    accounts = _accounts(conn)
    positions = [
        PositionRow(*r)
        for r in conn.execute(
            "SELECT position_id, account, symbol, side, lots, entry_price, mark, "
            "unrealized_pnl, ts_opened FROM positions ORDER BY account, ts_opened, position_id"
        )
    ]
    breakers = [
        BreakerRow(name, state, failures, retry_ts if state == "OPEN" else None)
        for name, state, failures, retry_ts in conn.execute(
            "SELECT name, state, failures, retry_ts FROM breakers ORDER BY name"
        )
    ]
    ab = read_ab(conn)
    decisions = read_decisions(conn)
    feeds = [
        FeedRow(
            name,
            venue,
            state,
            reconnects,
            None if last is None else max(0.0, (now_ns - last) / 1e9),
            rate,
            p50,
            p99,
            conflated,
            detail or "",
        )
        for name, venue, state, reconnects, last, rate, p50, p99, conflated, detail in _rows(
            conn,
            "SELECT name, venue, state, reconnects, last_message_ts, msgs_per_s, latency_ms_p50, "
            "latency_ms_p99, conflated, detail FROM feeds ORDER BY name",
        )
    ]
    return Snapshot(
        engine=engine_status(conn, now_ns),
        symbols=symbols,
        quality=quality,
        accounts=accounts,
        positions=positions,
        breakers=breakers,
        ab=ab,
        feeds=feeds,
        decisions=decisions,
        models=read_models(conn),
    )


_ACCOUNT_SQL = (
    "SELECT name, currency, strategy, balance, equity, realized_pnl, unrealized_pnl, "
    "open_positions, trades{margin} FROM accounts ORDER BY name"
)
_MARGIN_COLUMNS = (
    ", COALESCE(used_margin, 0.0), COALESCE(free_margin, 0.0), margin_level, "
    "COALESCE(margin_call, 0), margin_call_level, leverage, oms"
)
_LIMIT_COLUMNS = (
    ", trading_state, daily_loss_limit, daily_loss_used, heat, daily_floor, overall_floor, "
    "trades_today"
)


def _accounts(conn: sqlite3.Connection) -> list[AccountRow]:
    """Each account with its margin figures and working orders (none on an older file)."""
    working: dict[str, list[WorkingOrderRow]] = {}
    for r in _rows(conn, f"{_WORKING_SQL} ORDER BY account, ts_submitted, order_id"):
        row = _working(r)
        working.setdefault(row.account, []).append(row)
    rows = _rows(conn, _ACCOUNT_SQL.format(margin=_MARGIN_COLUMNS + _LIMIT_COLUMNS))
    if not rows:  # a file from before the account limits
        rows = [r + (None,) * 7 for r in _rows(conn, _ACCOUNT_SQL.format(margin=_MARGIN_COLUMNS))]
    if rows:
        return [
            AccountRow(*r[:12], bool(r[12]), *r[13:], working_orders=working.get(r[0], []))
            for r in rows
        ]
    return [AccountRow(*r) for r in conn.execute(_ACCOUNT_SQL.format(margin=""))]


_WORKING_SQL = (
    "SELECT account, order_id, symbol, side, type, lots, filled_lots, price, trigger, tif, "
    "expire_ts, reduce_only, parent_id, oco_id, ts_submitted FROM working_orders"
)


def _working(r: tuple[Any, ...]) -> WorkingOrderRow:
    return WorkingOrderRow(*r[:11], bool(r[11]), *r[12:])


def working_order(conn: sqlite3.Connection, order_id: str) -> WorkingOrderRow | None:
    """One working order as the last snapshot shows it; None once it is no longer working."""
    rows = _rows(conn, f"{_WORKING_SQL} WHERE order_id = ?", [order_id])
    return _working(rows[0]) if rows else None


def _rows(conn: sqlite3.Connection, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """A table an older database may not have yet reads as empty."""
    try:
        return conn.execute(sql, list(args)).fetchall()
    except sqlite3.OperationalError:
        return []


def read_only(path: str) -> sqlite3.Connection:
    """A reader's connection: WAL lets it read while the engine writes."""
    conn = sqlite3.connect(path, timeout=5.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


def _from_file(path: Path, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Rows of one query on a database file, none when there is no file or no such table
    yet (a new or half-made database): for decisions taken before the engine opens it."""
    if not path.exists():
        return []
    conn = read_only(str(path))
    try:
        return conn.execute(sql, list(args)).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def last_event_ts(path: Path) -> int:
    """Event time of the newest event in a database file, 0 when there is none (or no file)."""
    rows = _from_file(path, "SELECT COALESCE(MAX(ts), 0) FROM events")
    return int(rows[0][0]) if rows else 0


def last_mids(path: Path, symbols: list[str]) -> dict[str, float]:
    """The last mid of each of `symbols` that the file's `latest` table holds."""
    rows = _from_file(path, "SELECT symbol, (bid + ask) / 2 FROM latest")
    return {s: m for s, m in rows if s in symbols and m is not None and m > 0}


def last_quote_ts(path: Path, symbols: list[str]) -> int:
    """Event time of the newest stored quote among `symbols` (the `latest` table), 0 if none."""
    marks = ", ".join("?" * len(symbols))
    sql = f"SELECT COALESCE(MAX(ts_event), 0) FROM latest WHERE symbol IN ({marks})"
    rows = _from_file(path, sql, symbols)
    return int(rows[0][0]) if rows else 0


def replay_checkpoint(path: Path) -> tuple[str, int] | None:
    """(fingerprint of the replayed file, ticks processed) of a replay stopped midway."""
    rows = _from_file(path, "SELECT fingerprint, position FROM replay_checkpoint WHERE id = 1")
    return (rows[0][0], int(rows[0][1])) if rows else None


ALERT_SEVERITIES = ("info", "warning", "critical")


@dataclass(frozen=True, slots=True)
class AlertRow:
    seq: int
    ts: int
    severity: str
    source: str
    title: str
    text: str


def read_alerts(
    conn: sqlite3.Connection, limit: int = 20, min_severity: str = "info"
) -> list[AlertRow]:
    """The last `limit` alerts of at least `min_severity`, newest first, read backwards
    along the events' (kind, seq) index."""
    wanted = ALERT_SEVERITIES[ALERT_SEVERITIES.index(min_severity) :]
    rows: list[AlertRow] = []
    for seq, ts, text in conn.execute(
        "SELECT seq, ts, payload FROM events WHERE kind = 'alert' ORDER BY seq DESC"
    ):
        try:
            p = json.loads(text)
        except ValueError:
            continue  # a damaged row must not hide the others
        if not isinstance(p, dict) or p.get("severity") not in wanted:
            continue
        rows.append(
            AlertRow(
                seq=seq,
                ts=ts,
                severity=str(p["severity"]),
                source=str(p.get("source", "")),
                title=str(p.get("title", "")),
                text=str(p.get("text", "")),
            )
        )
        if len(rows) >= limit:
            break
    return rows
