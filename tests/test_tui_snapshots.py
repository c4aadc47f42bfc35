"""What the trader sees, kept as .svg baselines: review a changed one like code.

Fixed database, frozen clock, fixed terminal size. Update with `pytest --snapshot-update`.
One baseline is filled by the real engine replaying a seeded simulated market.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tui_fixtures import MODELS, FixtureDB, build_fixture_db, set_engine, set_models

from mikrobot_tui.clock import FrozenClock, ReplayClock
from mikrobot_tui.data.feeds import ReplayFeed, save_ticks
from mikrobot_tui.data.sim import generate_ticks
from mikrobot_tui.domain.instruments import default_instruments
from mikrobot_tui.engine import Engine
from mikrobot_tui.engine.runner import Runner
from mikrobot_tui.store.schema import connect
from mikrobot_tui.tui.app import CockpitApp

SIZE = (120, 36)
REPLAY_START_NS = 1_767_225_600_000_000_000  # 2026-01-01 00:00 UTC


@pytest.fixture
def cockpit_db(tmp_path: Path) -> FixtureDB:
    return build_fixture_db(tmp_path / "cockpit.db")


def cockpit(db: FixtureDB) -> CockpitApp:
    return CockpitApp(db.path, FrozenClock(db.now_ns))


def test_cockpit(snap_compare, cockpit_db: FixtureDB) -> None:
    assert snap_compare(cockpit(cockpit_db), terminal_size=SIZE)


def test_flatten_dialog(snap_compare, cockpit_db: FixtureDB) -> None:
    assert snap_compare(cockpit(cockpit_db), terminal_size=SIZE, press=["f"])


def test_decisions_detail(snap_compare, cockpit_db: FixtureDB) -> None:
    """`d`: the last decisions, the newest one's factors under the list."""
    assert snap_compare(cockpit(cockpit_db), terminal_size=SIZE, press=["d"])


def test_halted(snap_compare, cockpit_db: FixtureDB) -> None:
    conn = connect(cockpit_db.path)
    set_engine(conn, cockpit_db.now_ns, trading_state="HALTED")
    conn.close()
    assert snap_compare(cockpit(cockpit_db), terminal_size=SIZE)


def test_reducing(snap_compare, cockpit_db: FixtureDB) -> None:
    """`mikrobot reduce`: the header says REDUCING in amber; the accounts show their own
    states (bos-b REDUCING near its daily loss, random HALTED by its limits)."""
    conn = connect(cockpit_db.path)
    set_engine(conn, cockpit_db.now_ns, trading_state="REDUCING")
    conn.close()
    assert snap_compare(cockpit(cockpit_db), terminal_size=SIZE)


def test_engine_gone(snap_compare, cockpit_db: FixtureDB) -> None:
    """`mikrobot --attach` on a file whose engine stopped a minute ago: dated, not live."""
    conn = connect(cockpit_db.path)
    set_engine(conn, cockpit_db.now_ns - 60 * 1_000_000_000, running=False)
    conn.close()
    assert snap_compare(cockpit(cockpit_db), terminal_size=SIZE)


def test_narrow_terminal(snap_compare, cockpit_db: FixtureDB) -> None:
    assert snap_compare(cockpit(cockpit_db), terminal_size=(100, 30))


def test_80x24_terminal(snap_compare, cockpit_db: FixtureDB) -> None:
    """The smallest usual terminal: each account's equity, margin level and limit state stay
    (free margin gives way to the state: a margin call still reddens the row); the positions
    pane scrolls to its positions and working orders."""
    assert snap_compare(cockpit(cockpit_db), terminal_size=(80, 24))


def test_200x50_terminal(snap_compare, cockpit_db: FixtureDB) -> None:
    """A large terminal: every column, the working orders' ids included."""
    assert snap_compare(cockpit(cockpit_db), terminal_size=(200, 50))


def test_served_models(snap_compare, cockpit_db: FixtureDB) -> None:
    """Two accounts trade by a model: a line each under the experiments, the batch AUC
    beside the online one, the entries skipped; bos-b's drifted feature in amber."""
    conn = connect(cockpit_db.path)
    set_models(conn, cockpit_db.now_ns)
    conn.close()
    assert snap_compare(cockpit(cockpit_db), terminal_size=SIZE)


@pytest.mark.parametrize("size", [(80, 24), SIZE, (200, 50)])
async def test_a_model_line_fits_the_pane_dropping_the_log_losses_first(
    cockpit_db: FixtureDB, size: tuple[int, int]
) -> None:
    from rich.cells import cell_len

    from mikrobot_tui.tui.panes.ab import ModelLines

    conn = connect(cockpit_db.path)
    set_models(conn, cockpit_db.now_ns)
    conn.close()
    app = cockpit(cockpit_db)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        widget = app.screen.query_one(ModelLines)
        lines = str(widget.render()).splitlines()
        width = widget.content_region.width
        # every line whole on its own row, inside the pane (the table scrolls above them)
        assert len(lines) == len(MODELS) and widget.size.height == len(MODELS)
        assert widget.region.bottom <= app.screen.query_one("#ab").content_region.bottom
        assert all(cell_len(line) <= width and "…" not in line for line in lines)
        assert lines[0].startswith("bos-a") and all(x in lines[0] for x in (".64", ".58", "12"))
        assert "(23)" in lines[0] or "/23" in lines[0] or "over 23" in lines[0]
        assert "LL" not in lines[0]  # no pane this wide has room for the log losses
        if size[0] == 80:  # half a terminal: the kind and the words go too
            assert "gbm" not in lines[0] and lines[1].endswith("drift 1")
        if size[0] == 200:
            assert "gbm/tp_first" in lines[0] and lines[1].endswith("drift spread_atr")


def test_the_model_line_keeps_the_log_losses_while_there_is_room() -> None:
    from mikrobot_tui.store.queries import ModelRow
    from mikrobot_tui.tui.panes.ab import model_line

    row = ModelRow(*MODELS[0][:-1], drifted=[])
    text, drift = model_line(row, 200)
    assert "LL 0.612" in text and "LL 0.655" in text and drift == "drift none"
    shorter, _ = model_line(row, len(text + drift) - 1)
    assert "LL" not in shorter and "gbm/tp_first" in shorter


def build_engine_db(make_settings, tmp_path: Path) -> FixtureDB:
    """The real engine over a seeded sim stream (faults included), closed when it is done.

    Short EMAs so both accounts trade in 23 minutes: it ends with three positions open in
    each account, three trades each in the A/B pane and the sim's rejects in quality.
    """
    settings = make_settings(
        sim={"seed": 7},
        risk={"max_positions": 3},
        accounts=[
            {"name": "A", "params": {"fast": 2, "slow": 5, "atr_period": 3}},
            {"name": "B", "params": {"fast": 3, "slow": 8, "atr_period": 3}},
        ],
    )
    symbols = settings.sim.symbols
    catalogue = default_instruments()
    instruments = [catalogue[s] for s in symbols]
    ticks = generate_ticks(instruments, settings.sim, REPLAY_START_NS, 60_000)  # ~23 minutes
    file = tmp_path / "sim.npz"
    save_ticks(file, ticks, symbols)
    feed = ReplayFeed(file, batch_size=1_250)
    engine = Engine(settings, feed=feed, clock=ReplayClock())
    # One run_batches per batch: each ends with a snapshot, as a live engine writes one every
    # 1/snapshot_hz, so the sparklines get 48 points (one replay call would leave two).
    for batch in feed.iter_batches():
        Runner(engine).replay(iter([batch]))
    now_ns = engine.quotes.market_now  # the last clean tick: the cockpit's frozen "now"
    engine.close()
    # The engine row is the one place that holds wall-clock time and this process's identity
    # (pid, host, started_ts, heartbeat_ts), and a closed engine reads as "not running".
    # Pin it to fixed values, as a running engine would have written them at the last tick,
    # so the header shows a live engine and the screen is the same on every run and machine.
    conn = connect(settings.engine.db)
    conn.execute(  # the feed's health is wall-clock too
        "UPDATE feeds SET state = 'LIVE', msgs_per_s = 43.5, latency_ms_p50 = 9.8, "
        "latency_ms_p99 = 31.0, last_message_ts = ?",
        [now_ns],
    )
    conn.execute(
        "UPDATE engine SET pid = 4242, host = 'fixture-host', running = 1, "
        "started_ts = ?, heartbeat_ts = ? WHERE id = 1",
        [REPLAY_START_NS, now_ns],
    )
    conn.close()
    return FixtureDB(Path(settings.engine.db), now_ns)


def test_cockpit_filled_by_the_engine(snap_compare, make_settings, tmp_path: Path) -> None:
    db = build_engine_db(make_settings, tmp_path)
    assert snap_compare(cockpit(db), terminal_size=SIZE)


def test_performance_report(snap_compare, make_settings, tmp_path: Path) -> None:
    """`p`: the report of the first account the seeded replay traded, as `mikrobot report`
    computes it (the screen waits for its worker before the picture is taken)."""
    from mikrobot_tui.tui.report_screen import ReportScreen

    db = build_engine_db(make_settings, tmp_path)

    async def reported(pilot) -> None:
        await pilot.press("p")
        for _ in range(200):  # bounded: 10 s
            screen = pilot.app.screen
            if isinstance(screen, ReportScreen) and screen.reports:
                break
            await pilot.pause(0.05)
        await pilot.pause(0.1)

    assert snap_compare(cockpit(db), terminal_size=(160, 50), run_before=reported)
