"""Backups while the engine runs: every `store.backup_every_h` hours, never in the engine's way.

The copy runs in a worker thread with its own connections (SQLite's online backup in one read
transaction, which in WAL mode never blocks the engine's writes), so the loop keeps taking
ticks; the scheduled files are named after the
database and the UTC time (`mikrobot-20261204T150000Z.db`) and the newest `backup_keep` are
kept. The outcome, a copy or why there is none, lands in the `meta` table (`last_backup`) for
`mikrobot status`; a failed backup is tried again at the next period and never stops trading.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path

from mikrobot_tui.clock import Clock
from mikrobot_tui.config import StoreSettings
from mikrobot_tui.store.maintenance import backup, rotate, scheduled_name
from mikrobot_tui.store.writer import Writer


class BackupSchedule:
    def __init__(self, settings: StoreSettings, db: Path, writer: Writer, wall: Clock) -> None:
        self.every_s = settings.backup_every_h * 3600
        folder = Path(settings.backup_dir)
        self.folder = folder if folder.is_absolute() else Path(db).parent / folder
        self.keep = settings.backup_keep
        self.db = Path(db)
        self._writer = writer
        self._wall = wall
        self.next_at = time.monotonic() + self.every_s
        self.task: asyncio.Task[str] | None = None
        self.on_failure: Callable[[str], None] | None = None  # the run's log hears of it

    def poll(self) -> None:
        """Start a backup when one is due; record the last one's outcome once it is done."""
        if self.task is not None and self.task.done():
            task, self.task = self.task, None
            try:
                outcome = task.result()
            except Exception as exc:  # a full disk, a bad folder: said, tried again later
                outcome = f"failed: {exc}"
                if self.on_failure is not None:
                    self.on_failure(outcome)
            self._writer.upsert(
                "meta",
                ("key", "value"),
                [("last_backup", json.dumps({"ts": self._wall.now_ns(), "outcome": outcome}))],
            )
        if self.every_s <= 0 or self.task is not None or time.monotonic() < self.next_at:
            return
        self.next_at = time.monotonic() + self.every_s
        self.task = asyncio.ensure_future(asyncio.to_thread(self._copy, self._wall.now_ns()))

    def _copy(self, now_ns: int) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        result = backup(self.db, self.folder / scheduled_name(self.db, now_ns))
        rotate(self.folder, self.db, self.keep)
        return f"{result.path} ({result.bytes / 1024 / 1024:.1f} MiB, {result.seconds:.1f} s)"

    async def close(self) -> None:
        """Let a backup under way finish (its file is whole or absent either way)."""
        if self.task is not None:
            with contextlib.suppress(Exception):  # poll() records why
                await self.task
            self.poll()
