"""Running `mikrobot` in-process for the backtest and sweep tests, and reading a run's events."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from mikrobot_tui.cli import app
from mikrobot_tui.store.events import read_events

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def run_json(*args: str) -> dict:
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def events_of(db: Path) -> list[tuple]:
    """Every event of a run's database: time, kind and payload (no wall-clock ids)."""
    from mikrobot_tui.store.schema import open_db

    conn = open_db(db).conn
    try:
        return [
            (e.ts, str(e.kind), json.dumps(e.payload, sort_keys=True)) for e in read_events(conn)
        ]
    finally:
        conn.close()
