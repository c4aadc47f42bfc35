"""What the trader sees, kept as .svg baselines: review a changed one like code.

Fixed database, frozen clock, fixed terminal size. Update with `pytest --snapshot-update`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tui_fixtures import FixtureDB, build_fixture_db, set_engine

from mikrobot_tui.clock import FrozenClock
from mikrobot_tui.store.schema import connect
from mikrobot_tui.tui.app import CockpitApp

SIZE = (120, 36)


@pytest.fixture
def cockpit_db(tmp_path: Path) -> FixtureDB:
    return build_fixture_db(tmp_path / "cockpit.db")


def cockpit(db: FixtureDB) -> CockpitApp:
    return CockpitApp(db.path, FrozenClock(db.now_ns))


def test_cockpit(snap_compare, cockpit_db: FixtureDB) -> None:
    assert snap_compare(cockpit(cockpit_db), terminal_size=SIZE)


def test_flatten_dialog(snap_compare, cockpit_db: FixtureDB) -> None:
    assert snap_compare(cockpit(cockpit_db), terminal_size=SIZE, press=["f"])


def test_halted(snap_compare, cockpit_db: FixtureDB) -> None:
    conn = connect(cockpit_db.path)
    set_engine(conn, cockpit_db.now_ns, trading_state="HALTED")
    conn.close()
    assert snap_compare(cockpit(cockpit_db), terminal_size=SIZE)


def test_narrow_terminal(snap_compare, cockpit_db: FixtureDB) -> None:
    assert snap_compare(cockpit(cockpit_db), terminal_size=(100, 30))
