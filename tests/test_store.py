"""The SQLite store on a real file: migrations, the writer, commands, the event log."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from mikrobot_tui.domain.events import EventKind
from mikrobot_tui.domain.market import TICK_DTYPE
from mikrobot_tui.store import commands
from mikrobot_tui.store.events import EventLog, raw_events, read_events
from mikrobot_tui.store.queries import engine_status, read_snapshot
from mikrobot_tui.store.schema import SCHEMA_VERSION, open_db, schema_version
from mikrobot_tui.store.tickstore import read_ticks
from mikrobot_tui.store.writer import Writer


def test_a_new_file_gets_every_table_in_wal_mode_and_reopening_is_a_no_op(db_path: Path) -> None:
    db = open_db(db_path)
    expected = {"meta", "instruments", "ticks", "bars", "latest", "quality", "events"}
    expected |= {"breakers", "commands", "rejects", "accounts", "positions", "trades", "ab"}
    expected |= {"equity", "working_orders"}
    assert expected <= set(db.table_names())
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert schema_version(db) == SCHEMA_VERSION
    db.conn.close()
    assert schema_version(open_db(db_path)) == SCHEMA_VERSION


def test_a_newer_schema_is_refused(db_path: Path) -> None:
    db = open_db(db_path)
    db.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    db.conn.close()
    with pytest.raises(RuntimeError, match="newer"):
        open_db(db_path)


def test_the_writer_lands_everything_in_one_transaction_or_nothing(db_path: Path) -> None:
    db = open_db(db_path)
    w = Writer(db.conn)
    w.append("rejects", ("ts", "reason"), [(1, "crossed quote")])
    w.append("events", ("seq", "ts", "kind", "payload"), [(1, 1, "halted", "{}")])
    w.append("events", ("seq", "ts", "kind", "payload"), [(1, 2, "halted", "{}")])  # dup seq
    with pytest.raises(sqlite3.IntegrityError):
        w.flush()
    assert db.execute("SELECT COUNT(*) FROM rejects").fetchone()[0] == 0
    assert w.pending_rows == 0


def test_ticks_round_trip_with_nan_as_null(db_path: Path) -> None:
    db = open_db(db_path)
    w = Writer(db.conn)
    t = np.zeros(2, dtype=TICK_DTYPE)
    t[0] = (1, 2, 0, 1.1, 1.2, np.nan, np.nan)
    t[1] = (3, 4, 1, 100.0, 100.5, 100.2, 0.5)
    w.append_ticks(t, ["EURUSD", "BTCUSDT"])
    assert w.flush() == 2  # a block per symbol
    eur, btc = read_ticks(db.conn, "EURUSD"), read_ticks(db.conn, "BTCUSDT", sym=1)
    assert eur.tobytes() == t[:1].tobytes() and btc.tobytes() == t[1:].tobytes()
    assert np.isnan(eur["last"][0]) and np.isnan(eur["volume"][0])


def test_events_are_numbered_and_read_back_byte_for_byte(db_path: Path) -> None:
    db = open_db(db_path)
    w = Writer(db.conn)
    log = EventLog(w, last_seq=0)
    log.append(5, EventKind.HALTED, None, {"source": "cli", "b": 1.5})
    log.append(6, EventKind.RESUMED, None, {"source": "cli"})
    w.flush()
    assert raw_events(db.conn)[0] == (1, 5, "halted", None, '{"b":1.5,"source":"cli"}')
    events = list(read_events(db.conn))
    assert [e.seq for e in events] == [1, 2]
    assert events[1].kind is EventKind.RESUMED
    assert EventLog(w, last_seq=2).append(7, EventKind.HALTED, None, {}).seq == 3


def test_a_command_goes_pending_then_done_with_its_result(db_path: Path) -> None:
    conn = open_db(db_path).conn
    cid = commands.send(conn, commands.Command.HALT, ts=1, source="test")
    (row,) = commands.pending(conn)
    assert (row.id, row.command, row.args) == (cid, "halt", {"source": "test"})
    conn.execute("UPDATE commands SET status='done', result='halted' WHERE id=?", [cid])
    assert commands.wait(conn, cid, timeout_s=0.1).result == "halted"
    assert commands.pending(conn) == []


def test_status_says_no_engine_for_a_fresh_file_and_a_stale_heartbeat(db_path: Path) -> None:
    conn = open_db(db_path).conn
    snap = read_snapshot(conn, now_ns=10**18)
    assert snap.engine.running is False and snap.engine.mode == "-"
    conn.execute(
        "INSERT INTO engine (id, pid, host, mode, feed, trading_state, running, started_ts, "
        "heartbeat_ts) VALUES (1, 1, 'elsewhere', 'SIMULATED', 'sim', 'ACTIVE', 1, 0, ?)",
        [10**18],
    )
    assert engine_status(conn, 10**18 + 1_000_000_000).running is True
    assert engine_status(conn, 10**18 + 4_000_000_000).running is False


def test_quality_rows_from_before_the_parts_read_back_without_them(db_path: Path) -> None:
    """Migration 8 adds the score's parts to `quality`; a row an older engine wrote keeps
    None there, and a new row carries them."""
    import sqlite_utils

    from mikrobot_tui.store.schema import MIGRATIONS

    db = sqlite_utils.Database(db_path)
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    for version, step in enumerate(MIGRATIONS[:7], start=1):
        step(db)
        db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [str(version)])
    db["quality"].insert(
        {"symbol": "EURUSD", "ts": 1, "score": 0.8, "ticks": 10, "rejects": 0, "spikes": 0,
         "gaps": 1, "latency_ms": 5.0, "last_problem": "gap 6.0s", "last_problem_ts": 1}
    )  # fmt: skip
    db.conn.commit()
    db.conn.close()
    db = open_db(db_path)
    assert schema_version(db) == SCHEMA_VERSION >= 8
    (old,) = read_snapshot(db.conn, 2).quality
    assert old.score == 0.8 and old.validity is None and old.completeness is None
    db["quality"].upsert(
        {"symbol": "EURUSD", "score": 0.72, "validity": 0.9, "spikes_part": 1.0,
         "gaps_part": 0.8, "latency_part": 1.0, "completeness": 1.0, "expected_ticks": 240.0,
         "window_ticks": 250}, pk="symbol"
    )  # fmt: skip
    (new,) = read_snapshot(db.conn, 2).quality
    assert (new.validity, new.gaps_part, new.window_ticks) == (0.9, 0.8, 250)


def test_a_file_from_before_the_models_table_reads_none_then_gains_it(db_path: Path) -> None:
    """Migration 12 adds `models` (the served models' figures): a file at version 11 reads
    no models instead of failing, and opening it adds the table."""
    import sqlite_utils

    from mikrobot_tui.store.schema import COLUMNS, MIGRATIONS

    db = sqlite_utils.Database(db_path)
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    for version, step in enumerate(MIGRATIONS[:11], start=1):
        step(db)
        db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [str(version)])
    db.conn.commit()
    assert "models" not in db.table_names()
    assert read_snapshot(db.conn, 2).models == []
    db.conn.close()
    db = open_db(db_path)
    assert schema_version(db) == SCHEMA_VERSION >= 12
    assert COLUMNS["models"][-2:] == ("drifted", "ts")
    db["models"].insert(
        {"account": "M", "model": "grab", "version": 3, "kind": "gbm", "label": "tp_first",
         "batch_auc": 0.64, "batch_log_loss": 0.61, "online_updates": 0, "online_auc": None,
         "online_log_loss": None, "skipped": 12, "drifted": '["spread_atr"]', "ts": 1}
    )  # fmt: skip
    (row,) = read_snapshot(db.conn, 2).models
    assert (row.account, row.version, row.online_auc, row.drifted) == ("M", 3, None, ["spread_atr"])
