"""`mikrobot db backup | check | retain` and the engine's scheduled backups, on real files."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest
from test_cli import invoke
from test_tickstore import SYMBOLS, market, of

from mikrobot_tui.clock import LiveClock
from mikrobot_tui.config import StoreSettings
from mikrobot_tui.domain.events import EventKind
from mikrobot_tui.engine.backups import BackupSchedule
from mikrobot_tui.store.events import EventLog
from mikrobot_tui.store.schema import open_db
from mikrobot_tui.store.tickstore import count_ticks, read_ticks
from mikrobot_tui.store.writer import Writer


def filled(path: Path, n_ticks: int = 30_000, events: int = 50) -> Path:
    db = open_db(path)
    w = Writer(db.conn)
    log = EventLog(w, last_seq=0)
    for i in range(events):
        log.append(i, EventKind.HALTED if i % 2 else EventKind.RESUMED, None, {"source": "t"})
    w.append_ticks(market(n_ticks), SYMBOLS)
    w.flush()
    db.conn.close()
    return path


def test_a_backup_taken_while_the_database_is_written_is_whole(tmp_path) -> None:
    db = filled(tmp_path / "live.db")
    stop = threading.Event()

    def engine() -> None:  # another connection writing events as fast as it can
        conn = open_db(db).conn
        w = Writer(conn)
        log = EventLog(w, last_seq=conn.execute("SELECT MAX(seq) FROM events").fetchone()[0])
        while not stop.is_set():
            log.append(1, EventKind.HALTED, None, {"source": "writer"})
            w.flush()
        conn.close()

    writer = threading.Thread(target=engine)
    writer.start()
    try:
        out = invoke("--db", str(db), "db", "backup", str(tmp_path / "copy.db"), "--json")
    finally:
        stop.set()
        writer.join()
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    copy = sqlite3.connect(doc["file"])
    assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    first, last, n = copy.execute("SELECT MIN(seq), MAX(seq), COUNT(*) FROM events").fetchone()
    assert (first, last) == (1, n) and n >= 50  # a consistent moment of the log
    assert count_ticks(copy) == 30_000
    assert not list(tmp_path.glob("*.partial"))


def test_a_backup_never_overwrites_and_names_a_missing_folder(tmp_path) -> None:
    db = filled(tmp_path / "a.db", n_ticks=100)
    (tmp_path / "taken.db").write_text("x")
    out = invoke("--db", str(db), "db", "backup", str(tmp_path / "taken.db"))
    assert out.exit_code == 2 and "exists" in out.output
    out = invoke("--db", str(db), "db", "backup", str(tmp_path / "nowhere" / "b.db"))
    assert out.exit_code == 2 and "is not a folder" in out.output


def test_check_says_a_sound_file_is_sound_and_what_is_wrong_with_a_broken_one(tmp_path) -> None:
    db = filled(tmp_path / "c.db")
    out = invoke("--db", str(db), "db", "check")
    assert out.exit_code == 0 and out.output.strip().endswith("sound"), out.output
    conn = sqlite3.connect(db)
    (block_id,) = conn.execute("SELECT MIN(id) FROM tick_blocks").fetchone()
    conn.execute("UPDATE tick_blocks SET data = X'00112233' WHERE id = ?", (block_id,))
    conn.execute("DELETE FROM events WHERE seq = 7")
    conn.commit()
    conn.close()
    out = invoke("--db", str(db), "db", "check", "--json")
    assert out.exit_code == 1
    doc = json.loads(out.output)
    assert not doc["ok"]
    assert any("event log has gaps" in p for p in doc["problems"])
    assert any(p.startswith(f"tick block {block_id} of ") for p in doc["problems"])
    quick = json.loads(invoke("--db", str(db), "db", "check", "--quick", "--json").output)
    assert not any("tick block" in p for p in quick["problems"])  # blocks are not decoded


def test_check_says_in_words_when_sqlite_finds_the_file_damaged(tmp_path) -> None:
    db = filled(tmp_path / "d.db", n_ticks=60_000)
    data = bytearray(db.read_bytes())
    page = 4096
    for p in range(3, len(data) // page - 1, 7):  # scribble over every 7th page's header
        data[p * page : p * page + 12] = b"\xa5" * 12
    db.write_bytes(bytes(data))
    out = invoke("--db", str(db), "db", "check")
    assert out.exit_code in (1, 2)
    assert "Traceback" not in out.output
    assert "damaged" in out.output or "cannot be used as the database" in out.output


def test_retain_compacts_old_ticks_losing_none_or_drops_them_keeping_the_bars(tmp_path) -> None:
    db = filled(tmp_path / "r.db", n_ticks=60_000)  # January 2026: older than 30 days
    conn = open_db(db).conn
    conn.execute(
        "INSERT INTO bars (symbol, timeframe, ts_open, open, high, low, close, ticks, volume) "
        "VALUES ('EURUSD', 'M1', 0, 1, 1, 1, 1, 1, 0)"
    )
    conn.commit()
    before = {s: read_ticks(conn, s, sym=i).tobytes() for i, s in enumerate(SYMBOLS)}
    out = invoke("--db", str(db), "db", "retain", "--json")
    doc = json.loads(out.output)
    assert out.exit_code == 0 and doc["mode"] == "compact" and doc["ticks"] == 60_000
    assert doc["blocks_after"] <= doc["blocks_before"]
    assert doc["bytes_after"] < doc["bytes_before"]
    after = {s: read_ticks(conn, s, sym=i).tobytes() for i, s in enumerate(SYMBOLS)}
    assert after == before
    text = invoke("--db", str(db), "db", "retain", "--older-than", "0", "--drop").output
    assert "dropped 60,000 ticks" in text and "smaller" in text
    assert count_ticks(conn) == 0
    assert conn.execute("SELECT COUNT(*) FROM bars").fetchone()[0] == 1


async def test_a_running_engine_backs_up_on_schedule_and_keeps_the_newest(tmp_path) -> None:
    db = filled(tmp_path / "s.db", n_ticks=1000)
    conn = open_db(db).conn
    writer = Writer(conn)
    settings = StoreSettings(backup_every_h=0.05 / 3600, backup_keep=2)  # every 50 ms
    schedule = BackupSchedule(settings, db, writer, LiveClock())
    made = set()
    for _ in range(200):
        schedule.poll()
        await asyncio.sleep(0.02)
        made |= {p.name for p in (tmp_path / "backups").glob("*.db")}
        if len(made) >= 3:
            break
    await schedule.close()
    writer.flush()
    kept = sorted((tmp_path / "backups").glob("s-*T*Z.db"))
    assert len(made) >= 3 and len(kept) == 2  # the newest two
    (value,) = conn.execute("SELECT value FROM meta WHERE key = 'last_backup'").fetchone()
    assert json.loads(value)["outcome"].startswith(str(tmp_path / "backups"))
    out = invoke("--db", str(db), "status")
    assert "last backup" in out.output


def test_ticks_of_a_backup_read_back_bit_for_bit(tmp_path) -> None:
    db = filled(tmp_path / "t.db", n_ticks=20_000)
    invoke("--db", str(db), "db", "backup", str(tmp_path / "t2.db"))
    copy = sqlite3.connect(tmp_path / "t2.db")
    ticks = market(20_000)
    for i, s in enumerate(SYMBOLS):
        assert read_ticks(copy, s, sym=i).tobytes() == of(ticks, i).tobytes()
    assert np.isfinite(ticks["ts_event"]).all()


@pytest.fixture(autouse=True)
def _no_color(monkeypatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")


async def test_a_failed_scheduled_backup_is_told_to_the_runs_log(tmp_path) -> None:
    db = filled(tmp_path / "f.db", n_ticks=100)
    (tmp_path / "not-a-folder").write_text("a file where the backups should go")
    conn = open_db(db).conn
    settings = StoreSettings(backup_every_h=0.05 / 3600, backup_dir=Path("not-a-folder"))
    schedule = BackupSchedule(settings, db, Writer(conn), LiveClock())
    told: list[str] = []
    schedule.on_failure = told.append
    for _ in range(100):
        schedule.poll()
        await asyncio.sleep(0.02)
        if told:
            break
    await schedule.close()
    assert told and told[0].startswith("failed: ")
