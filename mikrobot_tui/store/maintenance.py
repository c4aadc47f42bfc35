"""Keeping the database: online backups, an integrity check in words, and tick retention.

- `backup(source, target)` copies a live file with SQLite's online backup API in one step,
  inside one read transaction: in WAL mode a reader never blocks the engine's writes, and a
  copy made step by step would start over each time the engine wrote between two steps (it
  writes every 50 ms). The copy is written under a temporary name and renamed when whole, so
  a backup interrupted (kill -9, a full disk) never leaves a file that looks complete.
  `rotate` keeps the newest N of a folder's scheduled backups.
- `check(conn)` runs SQLite's integrity check and the file's own invariants (the event log
  numbered without gaps, every tick block decodable and of the size its row says) and says
  what is wrong in sentences.
- `retain(conn, older_than_ns, drop)` works on tick blocks older than a moment: it merges an
  hour's leftover chunks into one block and recompresses every old block at a high zstandard
  level (`drop`: deletes them; the bars stay), and reports the bytes before and after.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mikrobot_tui.store.tickstore import CODEC, CODECS, decode, encode

RETAIN_LEVEL = 19  # zstandard level for old blocks: 2-3x slower reads, about 20% smaller

Progress = Callable[[int, int], None]  # pages copied, pages in all


@dataclass(frozen=True, slots=True)
class BackupResult:
    path: Path
    bytes: int
    seconds: float


def backup(source: Path, target: Path, progress: Progress | None = None) -> BackupResult:
    """Copy the database at `source` to `target` (a new file) while it may be in use."""
    target = Path(target)
    if target.exists():
        raise FileExistsError(f"{target} exists; give a new file name")
    if not target.parent.is_dir():
        raise FileNotFoundError(f"{target.parent} is not a folder")
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    t0 = time.monotonic()
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    dst = sqlite3.connect(partial)
    try:

        def step(status: int, remaining: int, total: int) -> None:
            if progress is not None:
                progress(total - remaining, total)

        src.backup(dst, pages=-1, progress=step)
        dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside
    except BaseException:
        dst.close()
        partial.unlink(missing_ok=True)
        raise
    finally:
        src.close()
    dst.close()
    os.replace(partial, target)
    return BackupResult(target, target.stat().st_size, time.monotonic() - t0)


def scheduled_name(db: Path, now_ns: int) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now_ns / 1e9))
    return f"{Path(db).stem}-{stamp}.db"


def rotate(folder: Path, db: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` scheduled backups of `db` in `folder`; the deleted."""
    mine = sorted(Path(folder).glob(f"{Path(db).stem}-*T*Z.db"))
    gone = mine[: max(0, len(mine) - keep)]
    for path in gone:
        path.unlink(missing_ok=True)
    return gone


@dataclass
class CheckReport:
    problems: list[str] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check(conn: sqlite3.Connection, *, full: bool = True) -> CheckReport:
    """What is wrong with the file, in words (nothing: `ok`). `full` also decodes every tick
    block (a quick check reads only their rows)."""
    report = CheckReport()
    rows = conn.execute("PRAGMA integrity_check" if full else "PRAGMA quick_check").fetchall()
    if [r[0] for r in rows] != ["ok"]:
        shown = "; ".join(r[0] for r in rows[:5])
        more = f" (and {len(rows) - 5} more)" if len(rows) > 5 else ""
        report.problems.append(
            f"SQLite finds the file damaged: {shown}{more}. Restore the newest backup "
            "(`mikrobot db backup` makes them), or copy out what is readable with the sqlite3 "
            "shell's .recover"
        )
        return report  # the rest would read damaged pages
    first, last, count = conn.execute("SELECT MIN(seq), MAX(seq), COUNT(*) FROM events").fetchone()
    if count:
        report.facts.append(f"{count:,} events, numbered {first} to {last}")
        if (first, last) != (1, count):
            report.problems.append(
                f"the event log has gaps: {count:,} events numbered {first} to {last}; "
                "the accounts folded from it may be wrong"
            )
    blocks = bad = ticks = 0
    for block_id, symbol, n, codec, data in conn.execute(
        "SELECT id, symbol, n, codec, data FROM tick_blocks ORDER BY id"
    ):
        blocks += 1
        ticks += n
        if not full:
            continue
        why = _block_problem(n, codec, data)
        if why is not None:
            bad += 1
            if bad <= 5:
                report.problems.append(f"tick block {block_id} of {symbol}: {why}")
    if bad > 5:
        report.problems.append(f"... and {bad - 5} more tick blocks that do not decode")
    report.facts.append(
        f"{ticks:,} ticks in {blocks:,} blocks" + ("" if full else " (not decoded)")
    )
    return report


def _block_problem(n: int, codec: str, data: bytes) -> str | None:
    if codec not in CODECS:
        return f"unknown codec {codec!r}"
    try:
        ticks = decode(data, n, codec=codec)
    except Exception as exc:  # zstandard's and numpy's errors alike: the block is unreadable
        return f"does not decode ({exc})"
    if len(ticks) != n:
        return f"holds {len(ticks)} ticks where its row says {n}"
    return None


@dataclass(frozen=True, slots=True)
class RetainResult:
    blocks_before: int
    blocks_after: int
    bytes_before: int
    bytes_after: int
    ticks: int


def retain(conn: sqlite3.Connection, older_than_ns: int, *, drop: bool = False) -> RetainResult:
    """Compact (or, `drop`, delete) the tick blocks wholly older than `older_than_ns`, in one
    transaction: a symbol's rows of one hour become one block at RETAIN_LEVEL."""
    import zstandard

    rows = conn.execute(
        "SELECT id, symbol, ts_min, ts_max, n, codec, data FROM tick_blocks "
        "WHERE ts_max < ? ORDER BY symbol, id",
        (older_than_ns,),
    ).fetchall()
    before = sum(len(r[6]) for r in rows)
    ticks = sum(r[4] for r in rows)
    if not rows:
        return RetainResult(0, 0, 0, 0, 0)
    hour = 3_600 * 1_000_000_000
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany("DELETE FROM tick_blocks WHERE id = ?", [(r[0],) for r in rows])
        kept: list[tuple] = []
        if not drop:
            # consecutive rows (id order, which is arrival order) of one symbol and hour make
            # one block, under the first one's id: reading back keeps the ticks' order
            groups: list[list[tuple]] = []
            for r in rows:
                last = groups[-1][-1] if groups else None
                if last is not None and (last[1], last[2] // hour) == (r[1], r[2] // hour):
                    groups[-1].append(r)
                else:
                    groups.append([r])
            squeeze = zstandard.ZstdCompressor(level=RETAIN_LEVEL)
            for group in groups:
                symbol = group[0][1]
                parts = [decode(r[6], r[4], codec=r[5]) for r in group]
                merged = np.concatenate(parts) if len(parts) > 1 else parts[0]
                ts = merged["ts_event"]
                data = encode(merged, compressor=squeeze)
                kept.append(
                    (group[0][0], symbol, int(ts.min()), int(ts.max()), len(merged), CODEC, data)
                )
            conn.executemany(
                "INSERT INTO tick_blocks (id, symbol, ts_min, ts_max, n, codec, data) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                kept,
            )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return RetainResult(len(rows), len(kept), before, sum(len(k[6]) for k in kept), ticks)
