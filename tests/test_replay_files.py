"""Replay files traders bring: every bad one is refused before the engine starts, with a
message that names the file and the problem, exit code 2, and no database left behind."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mikrobot_tui.cli import app
from mikrobot_tui.data.feeds import load_ticks, save_ticks
from mikrobot_tui.domain.market import NS_PER_SECOND, TICK_DTYPE

T0 = 1_767_225_600 * NS_PER_SECOND  # 2026-01-01 00:00 UTC


def ticks(n: int = 100) -> np.ndarray:
    t = np.zeros(n, dtype=TICK_DTYPE)
    t["ts_event"] = T0 + np.arange(n) * NS_PER_SECOND
    t["ts_recv"] = t["ts_event"] + 1_000_000
    t["sym"] = np.arange(n) % 2
    t["bid"], t["ask"] = 1.08, 1.0801
    t["last"] = t["volume"] = np.nan
    return t


def shifted(field: str, to: int) -> np.ndarray:
    t = ticks()
    t[field][40:] = to
    return t


def npy_renamed(path: Path) -> None:
    with open(path, "wb") as f:
        np.save(f, ticks())


# name -> (write the file at path, what the message must say)
BAD: dict[str, tuple[Callable[[Path], None], str]] = {
    "unknown symbol": (
        lambda p: save_ticks(p, ticks(), ["EURUSD", "FOOBAR"]),
        "unknown symbols ['FOOBAR']",
    ),
    "lower-case symbol": (
        lambda p: save_ticks(p, ticks(), ["eurusd", "GBPUSD"]),
        "'eurusd' -> 'EURUSD'",
    ),
    "duplicate symbols": (
        lambda p: save_ticks(p, ticks(), ["EURUSD", "EURUSD"]),
        "symbols ['EURUSD'] are listed more than once",
    ),
    "a .npy renamed .npz": (npy_renamed, "a single .npy array (renamed?)"),
    "a zero-byte file": (lambda p: p.write_bytes(b""), "the file is empty (0 bytes)"),
    "not a zip": (lambda p: p.write_bytes(b"PK\x03\x04 cut short"), "cannot be read"),
    "before 1970": (
        lambda p: save_ticks(p, shifted("ts_event", -5 * NS_PER_SECOND), ["EURUSD", "GBPUSD"]),
        "ts_event before 1980, the first is tick 40 at -5000000000 (1969-12-31T23:59:55",
    ),
    "zero time": (
        lambda p: save_ticks(p, shifted("ts_event", 0), ["EURUSD", "GBPUSD"]),
        "60 tick(s) have a ts_event before 1980",
    ),
    "seconds, not nanoseconds": (
        lambda p: save_ticks(p, shifted("ts_recv", 1_767_225_600), ["EURUSD", "GBPUSD"]),
        "ts_recv before 1980",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_replay_file_is_refused_naming_file_and_problem(tmp_path: Path, case: str) -> None:
    write, problem = BAD[case]
    file = tmp_path / "bad.npz"
    write(file)
    with pytest.raises(ValueError) as err:
        load_ticks(file)
    assert str(err.value).startswith(f"{file}: ") and problem in str(err.value)

    db = tmp_path / "x.db"
    env = {"MIKROBOT_ENGINE__FEED": "replay", "MIKROBOT_REPLAY__FILE": str(file)}
    args = ["--db", str(db), "run", "--headless", "--duration", "1"]
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 2, result.output
    assert "replay.file" in result.output and problem in result.output
    assert "Traceback" not in result.output
    assert not list(tmp_path.glob("x.db*"))  # refused before the database is opened


def test_through_the_real_cli_an_empty_file_is_exit_2_not_aborted(tmp_path: Path) -> None:
    file = tmp_path / "empty.npz"
    file.write_bytes(b"")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIKROBOT_")}
    env |= {"MIKROBOT_ENGINE__FEED": "replay", "MIKROBOT_REPLAY__FILE": str(file)}
    args = ["--db", "x.db", "run", "--headless", "--duration", "1"]
    run = subprocess.run(
        [sys.executable, "-m", "mikrobot_tui.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert run.returncode == 2, run.stdout + run.stderr
    assert f"{file}: the file is empty (0 bytes)" in run.stderr
    assert "Aborted" not in run.stdout + run.stderr
    assert not list(tmp_path.glob("x.db*"))


def test_a_good_file_still_loads_as_saved(tmp_path: Path) -> None:
    file = tmp_path / "good.npz"
    save_ticks(file, ticks(), ["EURUSD", "GBPUSD"])
    back, symbols = load_ticks(file)
    assert back.tobytes() == ticks().tobytes() and symbols == ["EURUSD", "GBPUSD"]
