"""What every command shares: ASCII output, exit codes, the global options and the settings.

Output is plain ASCII so it survives any console encoding (invariant 6). Exit codes: 0 ok,
1 runtime failure (no engine, no answer), 2 bad input (configuration, arguments).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import typer

from mikrobot_tui.config import ConfigError, Settings, load_settings

EXIT_RUNTIME = 1
EXIT_BAD_INPUT = 2


class Options:
    """The global options (`--config`, `--db`), set by the app's callback."""

    config: Path | None = None
    db: Path | None = None


options = Options()


def ascii_text(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii")


def echo(text: str = "", err: bool = False) -> None:
    typer.echo(ascii_text(text), err=err)


def fail(message: str, code: int = EXIT_RUNTIME) -> typer.Exit:
    echo(message, err=True)
    return typer.Exit(code)


def settings() -> Settings:
    overrides: dict[str, Any] = {}
    if options.db is not None:
        overrides["engine"] = {"db": options.db}
    try:
        return load_settings(
            options.config, overrides=overrides, warn=lambda m: echo(f"warning: {m}", err=True)
        )
    except ConfigError as exc:
        raise fail(str(exc), EXIT_BAD_INPUT) from None


def reader(s: Settings) -> sqlite3.Connection:
    """A connection to the database of a running (or earlier) engine; exit 1 when none."""
    from mikrobot_tui.store.schema import open_db

    if not Path(s.engine.db).exists():
        raise fail(
            f"no database at {s.engine.db}: no engine has run here; start one with "
            "`mikrobot run --headless` or `mikrobot`"
        )
    return open_db(s.engine.db).conn


def require_engine(conn: sqlite3.Connection, db: Path) -> None:
    from mikrobot_tui.store.queries import engine_status

    status = engine_status(conn, time.time_ns())
    if not status.running:
        raise fail(
            f"no engine is running on {db}; start one with `mikrobot run --headless` "
            "(or `mikrobot` for the cockpit)"
        )
