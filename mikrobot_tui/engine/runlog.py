"""The engine's own log: one JSON-lines file per run, rotated by size, secrets redacted.

`logs/mikrobot-<UTC start>-<pid>.jsonl` beside the database (`alerts.log_dir`), written with the
stdlib `logging` module through a RotatingFileHandler (`alerts.log_max_mb` x
`alerts.log_backups`): the start and stop (feed, mode, db), every alert, webhook deliveries
that failed, the database problems the runner reports and exceptions the engine caught. Each
line is one JSON object: ts (UTC, ISO 8601), level, msg, and the record's fields.

Every record passes `Redact`, which replaces the value of each secret the settings hold
(SecretStr values: API keys, passwords, the webhook URL and its key) with "***" in the
message, the fields and an exception's text, so no secret reaches the file (invariant 5).
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr

from mikrobot_tui.config import Settings

MIB = 1024 * 1024
MASK = "***"


def secret_values(settings: BaseModel) -> list[str]:
    """Every SecretStr value the settings hold (nested sections and lists too), longest first."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, SecretStr):
            if value.get_secret_value():
                found.add(value.get_secret_value())
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name))
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)

    walk(settings)
    return sorted(found, key=len, reverse=True)  # a secret inside another goes after it


class Redact(logging.Filter):
    """Replaces each secret's value with "***" in a record's message, fields and traceback."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def text(self, value: str) -> str:
        for secret in self.secrets:
            value = value.replace(secret, MASK)
        return value

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.text(record.getMessage())
        record.args = None
        fields = getattr(record, "fields", None)
        if fields is not None:
            record.fields = self.value(fields)
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = self.text(record.exc_text)
        return True


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            doc.update({k: v for k, v in fields.items() if k not in doc})
        if record.exc_text:
            doc["exception"] = record.exc_text
        return json.dumps(doc, ensure_ascii=True, default=str)


def log_path(settings: Settings, db: Path, start_ns: int, pid: int | None = None) -> Path:
    folder = Path(settings.alerts.log_dir)
    if not folder.is_absolute():
        folder = Path(db).parent / folder
    stamp = datetime.fromtimestamp(start_ns / 1e9, tz=UTC).strftime("%Y%m%dT%H%M%SZ")
    return folder / f"mikrobot-{stamp}-{pid if pid is not None else os.getpid()}.jsonl"


class RunLog:
    """The run's logger and its file; `close` detaches it. Never raises on a full disk: the
    logging module reports a failed write on stderr and the engine goes on."""

    def __init__(self, settings: Settings, db: Path, start_ns: int) -> None:
        self.path = log_path(settings, db, start_ns)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        a = settings.alerts
        self.handler = logging.handlers.RotatingFileHandler(
            self.path,
            maxBytes=max(1, round(a.log_max_mb * MIB)),
            backupCount=a.log_backups,
            encoding="utf-8",
        )
        self.handler.setFormatter(JsonLines())
        self.handler.addFilter(Redact(secret_values(settings)))
        # one logger per run (and file): two engines in one process never share a handler
        self.logger = logging.getLogger(f"mikrobot.run.{self.path.stem}")
        self.logger.setLevel(logging.INFO)
        self.logger.propagate = False
        self.logger.addHandler(self.handler)

    def info(self, msg: str, /, **fields: Any) -> None:
        self.logger.info(msg, extra={"fields": fields})

    def warning(self, msg: str, /, **fields: Any) -> None:
        self.logger.warning(msg, extra={"fields": fields})

    def error(self, msg: str, /, **fields: Any) -> None:
        self.logger.error(msg, extra={"fields": fields})

    def exception(self, msg: str, /, **fields: Any) -> None:
        self.logger.exception(msg, extra={"fields": fields})

    def close(self) -> None:
        self.logger.removeHandler(self.handler)
        self.handler.close()
