"""The database layout, built by numbered migrations.

One file, WAL mode, synchronous=NORMAL and a busy timeout, so the engine writes while the
cockpit and the CLI read from other processes. `meta.schema_version` records the last migration
applied; a migration is never edited once released, a new one is appended.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import sqlite_utils

BUSY_TIMEOUT_MS = 5_000


def connect(
    path: Path | str, busy_timeout_ms: int = BUSY_TIMEOUT_MS, *, handed_over: bool = False
) -> sqlite3.Connection:
    """A connection with the project's pragmas; autocommit, transactions are explicit.
    `handed_over`: made in one thread and then used in another, never in two at once (the
    cockpit starts its engine in a worker thread and runs it on the event loop)."""
    conn = sqlite3.connect(
        str(path),
        timeout=busy_timeout_ms / 1000,
        isolation_level=None,
        check_same_thread=not handed_over,
    )
    # Switching a new file to WAL needs it to itself and SQLite does not wait for that: a
    # second engine starting at the same instant would fail here instead of being told that
    # another engine holds the database. Wait as the busy timeout would.
    deadline = time.monotonic() + busy_timeout_ms / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.02)
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    return conn


def open_db(path: Path | str, *, handed_over: bool = False) -> sqlite_utils.Database:
    """Open (creating if needed) and migrate the database; returns a sqlite-utils handle."""
    db = sqlite_utils.Database(connect(path, handed_over=handed_over))
    migrate(db)
    return db


def _v1(db: sqlite_utils.Database) -> None:
    db["instruments"].create(
        {
            "symbol": str,
            "asset_class": str,
            "base": str,
            "quote": str,
            "pip_size": float,
            "tick_size": float,
            "contract_size": float,
            "lot_step": float,
            "min_lot": float,
        },
        pk="symbol",
    )
    db["ticks"].create(
        {
            "ts_event": int,
            "ts_recv": int,
            "symbol": str,
            "bid": float,
            "ask": float,
            "last": float,
            "volume": float,
        }
    )
    db["ticks"].create_index(["symbol", "ts_event"])
    db["bars"].create(
        {
            "symbol": str,
            "timeframe": str,
            "ts_open": int,
            "open": float,
            "high": float,
            "low": float,
            "close": float,
            "ticks": int,
            "volume": float,
        },
        pk=("symbol", "timeframe", "ts_open"),
    )
    db["latest"].create(
        {
            "symbol": str,
            "ts_event": int,
            "ts_recv": int,
            "bid": float,
            "ask": float,
            "last": float,
            "open_mid": float,  # first mid of the session: the base of the change column
            "spark": str,  # JSON list of recent mids, oldest first, one per snapshot
        },
        pk="symbol",
    )
    db["quality"].create(
        {
            "symbol": str,
            "ts": int,
            "score": float,
            "ticks": int,
            "rejects": int,
            "spikes": int,
            "gaps": int,
            "latency_ms": float,
            "last_problem": str,
            "last_problem_ts": int,
        },
        pk="symbol",
    )
    db["events"].create(
        {"seq": int, "ts": int, "kind": str, "account": str, "payload": str}, pk="seq"
    )
    db["events"].create_index(["account", "seq"])
    db["events"].create_index(["kind", "seq"])
    db["breakers"].create(
        {
            "name": str,
            "state": str,
            "failures": int,
            "successes": int,
            "opened_ts": int,
            "retry_ts": int,
            "ts": int,
        },
        pk="name",
    )
    db["commands"].create(
        {
            "id": int,
            "ts": int,
            "command": str,
            "args": str,
            "status": str,  # pending, done, failed
            "result": str,
            "done_ts": int,
        },
        pk="id",
    )
    db["commands"].create_index(["status", "id"])
    db["rejects"].create(
        {
            "id": int,
            "ts": int,
            "ts_event": int,
            "source": str,
            "symbol": str,
            "reason": str,
            "raw": str,
        },
        pk="id",
    )
    db["rejects"].create_index(["symbol", "id"])
    db["accounts"].create(
        {
            "name": str,
            "currency": str,
            "strategy": str,
            "params": str,
            "balance": float,
            "equity": float,
            "realized_pnl": float,
            "unrealized_pnl": float,
            "open_positions": int,
            "trades": int,
            "ts": int,
        },
        pk="name",
    )
    db["positions"].create(
        {
            "position_id": str,
            "account": str,
            "symbol": str,
            "side": str,
            "lots": float,
            "entry_price": float,
            "mark": float,
            "unrealized_pnl": float,
            "stop_loss": float,
            "take_profit": float,
            "ts_opened": int,
        },
        pk="position_id",
    )
    db["trades"].create(
        {
            "position_id": str,
            "account": str,
            "strategy": str,
            "symbol": str,
            "side": str,
            "lots": float,
            "entry_price": float,
            "exit_price": float,
            "ts_opened": int,
            "ts_closed": int,
            "pnl": float,
            "commission": float,
            "return_pct": float,
            "r_multiple": float,
            "reason": str,
        },
        pk="position_id",
    )
    db["trades"].create_index(["account", "ts_closed"])
    db["ab"].create(
        {
            "variant": str,
            "account": str,
            "params": str,
            "trades": int,
            "wins": int,
            "win_rate": float,
            "mean_return": float,
            "std_return": float,
            "t_stat": float,
            "p_value": float,
            "test": str,
            "ts": int,
        },
        pk="variant",
    )
    db["engine"].create(
        {
            "id": int,
            "pid": int,
            "host": str,
            "mode": str,
            "feed": str,
            "trading_state": str,
            "running": int,
            "started_ts": int,
            "heartbeat_ts": int,
            "version": str,
        },
        pk="id",
    )


def _v2(db: sqlite_utils.Database) -> None:
    # What a replay needs to resume exactly where it stopped: the file it replays, how many
    # of its ticks the stored rows account for, and the pipeline's memory at that point,
    # written in the same transaction as those rows (engine/checkpoint.py).
    db["replay_checkpoint"].create(
        {"id": int, "fingerprint": str, "file": str, "position": int, "state": bytes, "ts": int},
        pk="id",
    )


def _v3(db: sqlite_utils.Database) -> None:
    # Real venues: each connection's health, trades as records of their own (never copies of
    # quotes), and the venue's minimum order value for each instrument.
    db["feeds"].create(
        {
            "name": str,
            "venue": str,
            "state": str,
            "reconnects": int,
            "last_message_ts": int,
            "msgs_per_s": float,
            "latency_ms_p50": float,
            "latency_ms_p99": float,
            "conflated": int,
            "detail": str,
            "ts": int,
        },
        pk="name",
    )
    db["market_trades"].create(
        {
            "ts_event": int,
            "ts_recv": int,
            "symbol": str,
            "price": float,
            "size": float,
            "side": int,
        }
    )
    db["market_trades"].create_index(["symbol", "ts_event"])
    db["instruments"].add_column("min_notional", float)


def _v4_external_signals(db: sqlite_utils.Database) -> None:
    # External signals (data/signals, engine/external.py): the keys of the signals acted on
    # (an id, or a hash of an id-less signal's fields), per channel ("ea", "webhook"), so a
    # signal rewritten into the EA's file or posted again is acted on once, across restarts.
    db["signal_ids"].create(
        {"channel": str, "key": str, "source": str, "ts": int}, pk=("channel", "key")
    )


def _v5_margin_and_working_orders(db: sqlite_utils.Database) -> None:
    # The richer paper venue (issue 7). `equity`: one point per account per minute of market
    # time, written by the ledger (balance, equity, used margin; margin_level NULL while no
    # margin is used), for the analytics and the equity chart. `working_orders`: the read
    # side's copy of each account's working orders (limits, stops, bracket children), written
    # with every snapshot like `positions`. `accounts` gains the margin figures and how the
    # account books (`oms`: hedging or netting) at what leverage; `margin_call` is 0/1.
    db["equity"].create(
        {
            "account": str,
            "ts": int,  # start of the minute, ns
            "balance": float,
            "equity": float,
            "used_margin": float,
            "margin_level": float,  # percent; NULL while no margin is used
        },
        pk=("account", "ts"),
        not_null={"account", "ts"},
    )
    db["working_orders"].create(
        {
            "account": str,
            "order_id": str,
            "symbol": str,
            "side": str,
            "type": str,  # market, limit, stop, stop_limit
            "lots": float,
            "filled_lots": float,
            "price": float,  # limit price (limit, stop_limit)
            "trigger": float,  # stop price (stop, stop_limit)
            "tif": str,  # GTC, IOC, FOK, GTD
            "expire_ts": int,
            "reduce_only": int,
            "parent_id": str,
            "oco_id": str,
            "ts_submitted": int,
        },
        pk="order_id",
    )
    db["working_orders"].create_index(["account", "ts_submitted"])
    accounts = db["accounts"]
    accounts.add_column("used_margin", float)
    accounts.add_column("free_margin", float)
    accounts.add_column("margin_level", float)  # percent; NULL while no margin is used
    accounts.add_column("margin_call", int)
    accounts.add_column("margin_call_level", float)  # percent: below it, the pane turns red
    accounts.add_column("leverage", float)
    accounts.add_column("oms", str)  # hedging or netting


def _v6_account_limits(db: sqlite_utils.Database) -> None:
    # The account limits enforced (issue 8): each account's trading state (ACTIVE, REDUCING,
    # HALTED) and the figures `status --json` shows, in the account currency: the day's loss
    # allowance and how much of it equity has used, the floors equity may not go below, heat
    # (open risk at the stops, percent of equity) and the entries of the day.
    accounts = db["accounts"]
    accounts.add_column("trading_state", str)
    accounts.add_column("daily_loss_limit", float)
    accounts.add_column("daily_loss_used", float)
    accounts.add_column("daily_floor", float)
    accounts.add_column("overall_floor", float)
    accounts.add_column("heat", float)
    accounts.add_column("trades_today", int)


_ISO = "strftime('%Y-%m-%dT%H:%M:%fZ', {col} / 1e9, 'unixepoch') AS {name}"


def _v7_tick_blocks(db: sqlite_utils.Database) -> None:
    # Ticks as compressed column blocks (store/tickstore.py) instead of a row each: a block is
    # one symbol's ticks of one UTC hour, at most 8,192 of them. The `ticks` table stays for
    # files written before. The views let the sqlite3 shell or Datasette read the file: what
    # the blocks hold, and the events, trades and bars with ISO-8601 UTC times beside the
    # integer nanoseconds.
    db["tick_blocks"].create(
        {
            "id": int,
            "symbol": str,
            "ts_min": int,
            "ts_max": int,
            "n": int,
            "codec": str,
            "data": bytes,
        },
        pk="id",
    )
    db["tick_blocks"].create_index(["symbol", "ts_min"])
    iso = _ISO.format
    db.execute(
        "CREATE VIEW tick_blocks_info AS SELECT id, symbol, n, "
        f"{iso(col='ts_min', name='first_utc')}, {iso(col='ts_max', name='last_utc')}, "
        "ts_min, ts_max, LENGTH(data) AS bytes, codec FROM tick_blocks"
    )
    db.execute(f"CREATE VIEW events_utc AS SELECT {iso(col='ts', name='utc')}, * FROM events")
    db.execute(
        f"CREATE VIEW trades_utc AS SELECT {iso(col='ts_opened', name='opened_utc')}, "
        f"{iso(col='ts_closed', name='closed_utc')}, * FROM trades"
    )
    db.execute(f"CREATE VIEW bars_utc AS SELECT {iso(col='ts_open', name='open_utc')}, * FROM bars")


def _v8_quality_parts(db: sqlite_utils.Database) -> None:
    # The quality score's parts (data/quality/score.py: score = validity x spikes x gaps x
    # latency x completeness) and the ticks completeness compares, so the cockpit and
    # `status --json` say why a symbol sits where it does. NULL on rows written before.
    table = db["quality"]
    for name, kind in (
        ("validity", float),
        ("spikes_part", float),
        ("gaps_part", float),
        ("latency_part", float),
        ("completeness", float),
        ("expected_ticks", float),
        ("window_ticks", int),
    ):
        table.add_column(name, kind)


def _v9_latency_capability(db: sqlite_utils.Database) -> None:
    # Process capability of feed latency against quality.latency_limit_ms (data/quality/
    # flags.py): Cp and Cpk over the last 64 ticks; NULL when not known.
    db["quality"].add_column("latency_cp", float)
    db["quality"].add_column("latency_cpk", float)


def _v10_bar_completeness(db: sqlite_utils.Database) -> None:
    # The bars' completeness (data/quality/score.py): of the last 60 whole minutes, those
    # that made an M1 bar against those the symbol's rate expects; the score's completeness
    # part is the lesser of it and the ticks'. NULL on rows written before.
    table = db["quality"]
    table.add_column("bar_completeness", float)
    table.add_column("expected_bars", float)
    table.add_column("window_bars", int)


def _v11_experiments(db: sqlite_utils.Database) -> None:
    # A/B as experiments of two or more variants (issue 10): one row per (experiment,
    # variant), the control first (`variant` A, then B, C ...). Beside Welch's p: each
    # variant's mean with its percentile-bootstrap interval, the difference from the control
    # with its own (method, level, seed and resamples named), the always-valid (mSPRT)
    # p-value, the bandit's share of the risk budget, and the verdict with the numbers behind
    # it. The table is a snapshot the engine rewrites, so the old one is dropped, not copied.
    db["ab"].drop()
    db["ab"].create(
        {
            "experiment": str,
            "variant": str,  # A is the control, then B, C ... in the order configured
            "account": str,
            "params": str,
            "metric": str,  # r or return_pct
            "trades": int,
            "wins": int,
            "win_rate": float,
            "mean_return": float,
            "std_return": float,
            "mean_low": float,  # the mean's bootstrap interval
            "mean_high": float,
            "diff": float,  # mean - the control's mean; NULL on the control's row
            "diff_low": float,
            "diff_high": float,
            "ci_method": str,  # percentile_bootstrap
            "ci_level": float,
            "ci_seed": int,
            "ci_resamples": int,
            "t_stat": float,  # Welch, this variant against the control
            "p_value": float,  # Welch's (fixed sample size)
            "test": str,  # welch_t, or n/a: why
            "always_valid_p": float,  # mSPRT: valid at every look
            "alpha": float,  # the level each comparison is judged at (alpha / (N - 1))
            "share": float,  # the bandit's share of the risk budget; 1/N without one
            "bandit": int,
            "verdict": str,  # control, collecting, inconclusive or "<account> better"
            "reason": str,
            "ts": int,
        },
        pk=("experiment", "variant"),
    )


def _v12_served_models(db: sqlite_utils.Database) -> None:
    # The models accounts trade by (issue 12, engine/models.py): one row per such account,
    # rewritten with every snapshot. The batch model's out-of-sample metrics from its
    # training beside the online model's rolling score over the outcomes taught so far (NULL
    # while it cannot be told), the entries the strategy skipped on the model's word, and the
    # features drifted past [models] psi_alert (a JSON list, [] when none).
    db["models"].create(
        {
            "account": str,
            "model": str,
            "version": int,
            "kind": str,  # logistic, gbm ...
            "label": str,  # what it predicts: tp_first ...
            "batch_auc": float,
            "batch_log_loss": float,
            "online_updates": int,  # outcomes taught since the engine started
            "online_auc": float,
            "online_log_loss": float,
            "skipped": int,  # entries rated below the strategy's threshold
            "drifted": str,  # JSON list of feature names
            "ts": int,
        },
        pk="account",
    )


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _v1,
    _v2,
    _v3,
    _v4_external_signals,
    _v5_margin_and_working_orders,
    _v6_account_limits,
    _v7_tick_blocks,
    _v8_quality_parts,
    _v9_latency_capability,
    _v10_bar_completeness,
    _v11_experiments,
    _v12_served_models,
]
SCHEMA_VERSION = len(MIGRATIONS)


def _columns() -> dict[str, tuple[str, ...]]:
    """Every table's columns in order, read from a database migrated in memory."""
    db = sqlite_utils.Database(memory=True)
    migrate(db)
    return {name: tuple(c.name for c in db[name].columns) for name in db.table_names()}


def schema_version(db: sqlite_utils.Database) -> int:
    if "meta" not in db.table_names():
        return 0
    row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else 0


def migrate(db: sqlite_utils.Database) -> int:
    """Apply every migration newer than the file's version, all under one write lock.

    Two processes opening a new file at the same instant: the second waits for the first's
    lock, then finds the schema in place. An up-to-date file is only read, never locked.
    """
    if _current(db) == SCHEMA_VERSION:
        return SCHEMA_VERSION
    conn = db.conn
    conn.execute("BEGIN IMMEDIATE")
    try:
        db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        current = schema_version(db)
        if current > SCHEMA_VERSION:
            raise RuntimeError(
                f"database schema version {current} is newer than this program's "
                f"{SCHEMA_VERSION}; upgrade mikrobot_tui"
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            with db.atomic():  # a savepoint inside the lock
                MIGRATIONS[version - 1](db)
                db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                    [str(version)],
                )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return SCHEMA_VERSION


def _current(db: sqlite_utils.Database) -> int:
    try:
        return schema_version(db)
    except sqlite3.DatabaseError:
        return -1


# Writers name their columns through this, so a row's order always matches its table.
COLUMNS: dict[str, tuple[str, ...]] = _columns()
