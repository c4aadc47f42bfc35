"""Files the configuration names or comes from: config.toml read once (UTF-8, or UTF-16/32
with a byte-order mark), secrets refused in it, validation errors as one line per key, and
whether a path can be the SQLite database."""

from __future__ import annotations

import codecs
import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mikrobot_tui.config.errors import ConfigError

ENV_PREFIX = "MIKROBOT_"
SECRET_KEYS = {
    ("binance", "api_key"),
    ("binance", "api_secret"),
    ("mt5", "password"),
    ("signals", "webhook_secret"),
    ("alerts", "webhook_url"),  # a Telegram or Slack URL holds the bot's token
    ("alerts", "webhook_secret"),
}
SQLITE_HEADER = b"SQLite format 3\x00"


_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a config file: UTF-8, or UTF-16/32 with a byte-order mark; ConfigError otherwise."""
    try:
        raw = path.read_bytes()
    except IsADirectoryError:
        raise ConfigError(
            f"{path} is a directory, not a file; pass the path of a config.toml"
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot be read ({exc.strerror}); check the path and its permissions"
        ) from None
    encoding = next((enc for bom, enc in _BOMS if raw.startswith(bom)), "utf-8")
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError:
        text = None
    if text is None or (encoding == "utf-8" and "\x00" in text):
        what = "UTF-16 without a byte-order mark" if b"\x00" in raw else "not UTF-8 text"
        raise ConfigError(f"{path}: the file is {what}; save it as UTF-8 and try again")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix the syntax at that line") from None


def _refuse_secrets(data: dict[str, Any], path: Path) -> None:
    for section, key in sorted(SECRET_KEYS):
        if isinstance(data.get(section), dict) and key in data[section]:
            env = f"{ENV_PREFIX}{section.upper()}__{key.upper()}"
            raise ConfigError(
                f"{section}.{key}: secrets are not read from {path}; remove it there and set "
                f"the environment variable {env} (or put it in .env)"
            )


def format_validation_error(exc: ValidationError, source: Path | None) -> str:
    where = f" (from {source}, the environment or .env)" if source else ""
    lines = [f"Invalid configuration{where}:"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(settings)"
        value = err.get("input")
        secret = any(str(p) in {k for _, k in SECRET_KEYS} for p in err["loc"])
        shown = "<redacted>" if secret else repr(value)
        if isinstance(value, dict) and not err["loc"]:
            shown = "(whole file)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key; check the spelling against config.toml's comments"
        lines.append(f"  {key} = {shown}: {msg}")
    return "\n".join(lines)


def db_path_problem(path: Path, *, write: bool) -> str | None:
    """Why `path` cannot be the SQLite database, with the fix; None when it can.

    With `write`, also a file or directory the engine could not write (SQLite in WAL mode
    writes files next to the database). A missing file is fine: the engine creates it.
    """
    path = Path(path)
    parent = path.parent
    if path.is_dir():
        return f"{path} is a directory; give a file in it, e.g. --db {path / 'mikrobot.db'}"
    if not parent.exists():
        return f"directory {parent} does not exist; create it (mkdir -p {parent}) or use another"
    if not parent.is_dir():
        return f"{parent} is not a directory; give a path inside a directory"
    if path.exists():
        try:
            with path.open("rb") as f:
                head = f.read(len(SQLITE_HEADER))
        except OSError as exc:
            return f"{path} cannot be read ({exc.strerror}); check its permissions"
        if head and head != SQLITE_HEADER:
            return (
                f"{path} is not an SQLite database; give the path of a mikrobot database or "
                "of a new file"
            )
        if write and not os.access(path, os.W_OK):
            return f"{path} is read-only; make it writable (chmod u+w) or use another file"
    if write and not os.access(parent, os.W_OK | os.X_OK):
        return (
            f"directory {parent} is not writable (SQLite writes its journal next to the "
            "database); make it writable or use another directory"
        )
    return None
