"""Shared fixtures: a real SQLite file in a temp dir, settings that point at it."""

from __future__ import annotations

from pathlib import Path

import pytest

from mikrobot_tui.config import Settings, load_settings


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test runs in its own directory with no MIKROBOT_* variables from the caller."""
    monkeypatch.chdir(tmp_path)
    import os

    for key in list(os.environ):
        if key.startswith("MIKROBOT_"):
            monkeypatch.delenv(key)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "test.db"


@pytest.fixture
def make_settings(db_path: Path):
    def make(**sections) -> Settings:
        overrides = {"engine": {"db": db_path}}
        for key, value in sections.items():
            if isinstance(value, dict) and isinstance(overrides.get(key), dict):
                overrides[key] = {**overrides[key], **value}
            else:
                overrides[key] = value
        return load_settings(None, overrides=overrides)

    return make
