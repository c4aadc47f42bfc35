"""The engine's pulse outside its database, for when the database cannot take it.

While the database is locked by another process or full, the engine row cannot carry the
heartbeat or say what is wrong. The engine then writes both to a small JSON file in the
system's temporary directory (another filesystem than the database's, usually, so a full disk
there still leaves room here), named after the database's absolute path; `engine_status`
merges it in. The file exists only while there is a problem, and is removed when it clears.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def path_for(db: Path | str) -> Path:
    key = hashlib.sha1(str(Path(db).resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"mikrobot-{key}.json"


def publish(db: Path | str, info: dict[str, Any]) -> bool:
    """Write `info` atomically; False when even that is impossible (never raises)."""
    target = path_for(db)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(info, sort_keys=True), encoding="utf-8")
        os.replace(tmp, target)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        return False
    return True


def clear(db: Path | str) -> None:
    with contextlib.suppress(OSError):
        path_for(db).unlink()


def read(db: Path | str) -> dict[str, Any] | None:
    try:
        info = json.loads(path_for(db).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None
