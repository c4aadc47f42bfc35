"""The cockpit as a trader uses it: real SQLite file, real app under Pilot, no mocks.

An engine is stood in for only on the command protocol (read pending rows, mark them done),
which is exactly what the real engine does with the `commands` table.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot
from tui_fixtures import FixtureDB, build_fixture_db, set_engine

from mikrobot_tui.clock import FrozenClock
from mikrobot_tui.store import commands
from mikrobot_tui.store.schema import connect, open_db
from mikrobot_tui.store.writer import Writer
from mikrobot_tui.tui.app import CockpitApp
from mikrobot_tui.tui.panes._table import KeyedTable
from mikrobot_tui.tui.panes.ticks import TicksPane
from mikrobot_tui.tui.screens import NO_ANSWER, CockpitScreen, FlattenScreen

SIZE = (120, 36)


@pytest.fixture
def cockpit_db(tmp_path: Path) -> FixtureDB:
    # Swap the builder here to run the same tests on a database the real engine filled.
    return build_fixture_db(tmp_path / "cockpit.db")


def cockpit(db: FixtureDB, **kwargs) -> CockpitApp:
    return CockpitApp(db.path, FrozenClock(db.now_ns), **kwargs)


class AnsweringEngine:
    """Answers every pending command as done, until the cockpit tells it to stop."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.answered: list[str] = []
        self.stopped = False

    async def run(self, stop: asyncio.Event) -> None:
        conn = connect(self.path)
        try:
            while not stop.is_set():
                for cmd in commands.pending(conn):
                    conn.execute(
                        "UPDATE commands SET status = 'done', result = ?, done_ts = ? WHERE id = ?",
                        [f"{cmd.command} done", cmd.ts, cmd.id],
                    )
                    self.answered.append(cmd.command)
                await asyncio.sleep(0.02)
        finally:
            conn.close()
            self.stopped = True


def command_rows(path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT command, status FROM commands ORDER BY id").fetchall()


async def wait_until(pilot: Pilot, ready: Callable[[], bool], timeout: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not ready():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await pilot.pause(0.02)


def cell(app: CockpitApp, table_id: str, row: str, column: str) -> str:
    return str(app.query_one(f"#{table_id}", KeyedTable).get_cell(row, column)).strip()


def header(app: CockpitApp, part: str) -> str:
    return str(app.query_one(f"#header #{part}").content)


PANES = ("ticks", "quality", "positions", "breakers", "ab")


def subtitle(app: CockpitApp, pane: str) -> str:
    return app.query_one(f"#{pane}").border_subtitle or ""


async def test_panes_fill_from_the_database(cockpit_db: FixtureDB) -> None:
    app = cockpit(cockpit_db)
    async with app.run_test(size=SIZE):
        ticks = app.query_one(TicksPane)
        assert ticks.line_text("EURUSD").split()[:5] == [
            "EURUSD",
            "1.08512",
            "1.08519",
            "0.7",
            "+0.20",
        ]
        assert ticks.line_text("BTCUSDT").split()[:3] == ["BTCUSDT", "63,102.50", "63,104.10"]
        assert any(block in ticks.line_text("XAUUSD") for block in "▁▂▃▄▅▆▇█")

        assert app.query_one("#quality", KeyedTable).row_count == 6
        assert cell(app, "quality", "USDJPY", "score") == "0.62v"  # validity is its weakest part
        assert cell(app, "quality", "USDJPY", "problem") == "timestamp from the past"

        assert app.query_one("#positions-table", KeyedTable).row_count == 3
        assert cell(app, "positions-table", "p-3", "pnl") == "-32.10"
        assert cell(app, "accounts-table", "bos-a", "equity") == "10,226.85"
        assert cell(app, "accounts-table", "bos-a", "level") == "358.8%"
        assert cell(app, "accounts-table", "bos-a", "free") == "7,376.42"
        assert cell(app, "accounts-table", "random", "level") == "-"  # no margin used
        orders = app.query_one("#orders-table", KeyedTable)
        assert orders.row_count == 3
        assert cell(app, "orders-table", "bos-a-000034", "type") == "LMT"
        assert cell(app, "orders-table", "bos-a-000034", "price") == "1.08200"
        assert cell(app, "orders-table", "bos-a-000035", "trigger") == "2,075.00"
        assert (
            cell(app, "orders-table", "bos-b-000028", "size") == "0.10/0.30"
        )  # the lot step's decimals
        # half of 120 columns: the order id and the time in force give way to size and prices
        shown = [c.key for c in orders._columns]
        assert "tif" not in shown and "id" not in shown and "trigger" in shown

        assert cell(app, "breakers", "usdjpy-quality", "state") == "OPEN"
        assert cell(app, "breakers", "usdjpy-quality", "retry") == "45 s"
        assert cell(app, "breakers", "daily-loss", "retry") == "-"

        assert cell(app, "ab-table", "ab/A", "verdict") == "control"
        # the control is not tested against itself
        assert cell(app, "ab-table", "ab/A", "p") == "n/a"
        assert cell(app, "ab-table", "ab/B", "p") == "0.347"
        assert cell(app, "ab-table", "ab/B", "avp") == "1.000"
        assert cell(app, "ab-table", "ab/B", "share") == "30%"
        assert cell(app, "ab-table", "ab/C", "verdict") == "collecting"

        assert header(app, "mode") == "SIMULATED"
        assert header(app, "state") == "ACTIVE"
        assert header(app, "engine").startswith("● engine running")
        assert header(app, "clock") == "2024-03-04 14:30:00 UTC"


async def test_halt_key_sends_a_pending_halt(cockpit_db: FixtureDB) -> None:
    app = cockpit(cockpit_db)
    app.command_timeout_s = 1.5  # nobody answers this database (long enough to see it pending)
    answers: list[CockpitScreen.CommandAnswered] = []

    def hook(message: object) -> None:
        if isinstance(message, CockpitScreen.CommandAnswered):
            answers.append(message)

    async with app.run_test(size=SIZE, message_hook=hook, notifications=True) as pilot:
        await pilot.press("h")
        await wait_until(pilot, lambda: command_rows(cockpit_db.path) != [])
        assert command_rows(cockpit_db.path) == [("halt", "pending")]
        await wait_until(pilot, lambda: bool(answers))
        assert answers[0].row is None
        await wait_until(
            pilot, lambda: any(NO_ANSWER in str(t.render()) for t in app.screen.query("Toast"))
        )


async def test_commands_answered_by_a_running_engine(cockpit_db: FixtureDB) -> None:
    engine = AnsweringEngine(cockpit_db.path)
    app = cockpit(cockpit_db, engine=engine)
    answers: list[CockpitScreen.CommandAnswered] = []

    def hook(message: object) -> None:
        if isinstance(message, CockpitScreen.CommandAnswered):
            answers.append(message)

    async with app.run_test(size=SIZE, message_hook=hook) as pilot:
        await pilot.press("h")
        await wait_until(pilot, lambda: len(answers) == 1)
        await pilot.press("r")
        await wait_until(pilot, lambda: len(answers) == 2)
        assert [(a.command, a.row.status, a.row.result) for a in answers] == [
            ("halt", "done", "halt done"),
            ("resume", "done", "resume done"),
        ]
        assert engine.answered == ["halt", "resume"]
        await pilot.press("q")
    assert engine.stopped, "quitting stops the in-process engine"


async def test_flatten_asks_first(cockpit_db: FixtureDB) -> None:
    engine = AnsweringEngine(cockpit_db.path)
    app = cockpit(cockpit_db, engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f")
        assert isinstance(app.screen, FlattenScreen)
        assert "Close every open position at market?" in str(
            app.screen.query_one("#question").content
        )
        await pilot.press("n")
        assert isinstance(app.screen, CockpitScreen)

        await pilot.press("f", "escape")
        assert isinstance(app.screen, CockpitScreen)
        await pilot.pause(0.1)
        assert command_rows(cockpit_db.path) == []

        await pilot.press("f", "y")
        assert isinstance(app.screen, CockpitScreen)
        await wait_until(pilot, lambda: engine.answered == ["flatten"])
        assert command_rows(cockpit_db.path) == [("flatten", "done")]


async def test_ticks_pane_repaints_only_the_line_that_changed(cockpit_db: FixtureDB) -> None:
    app = cockpit(cockpit_db)
    async with app.run_test(size=SIZE) as pilot:
        ticks = app.query_one(TicksPane)
        await pilot.pause(0.3)  # a first timer poll with nothing new
        built = dict(ticks.builds)

        conn = connect(cockpit_db.path)
        writer = Writer(conn)
        writer.upsert(
            "latest",
            ("symbol", "ts_event", "ts_recv", "bid", "ask", "last", "open_mid", "spark"),
            [
                (
                    "EURUSD",
                    cockpit_db.now_ns,
                    cockpit_db.now_ns,
                    1.08601,
                    1.08607,
                    None,
                    1.083,
                    json.dumps([1.0830, 1.0845, 1.0860]),
                )
            ],
        )
        writer.flush()
        conn.close()

        await wait_until(pilot, lambda: "1.08601" in ticks.line_text("EURUSD"))
        assert ticks.line_text("EURUSD").split()[:4] == ["EURUSD", "1.08601", "1.08607", "0.6"]
        assert ticks.flash_of("EURUSD") == "up"
        others = {s: n for s, n in ticks.builds.items() if s != "EURUSD"}
        assert others == {s: n for s, n in built.items() if s != "EURUSD"}
        assert ticks.builds["EURUSD"] > built["EURUSD"]
        # One quiet poll later the flash is gone.
        await wait_until(pilot, lambda: ticks.flash_of("EURUSD") == "")


async def test_positions_pane_drops_closed_positions(cockpit_db: FixtureDB) -> None:
    app = cockpit(cockpit_db)
    async with app.run_test(size=SIZE) as pilot:
        conn = connect(cockpit_db.path)
        conn.execute("DELETE FROM positions")
        conn.close()
        table = app.query_one("#positions-table", KeyedTable)
        await wait_until(pilot, lambda: table.row_count == 0)
        assert app.query_one("#no-positions").display
        assert not table.display


async def test_an_account_in_margin_call_is_red_and_recovers(cockpit_db: FixtureDB) -> None:
    app = cockpit(cockpit_db)
    async with app.run_test(size=SIZE) as pilot:
        pane = app.query_one("#positions")
        assert pane.has_class("-margin-call")
        accounts = app.query_one("#accounts-table", KeyedTable)
        red = app.theme_variables["error"]
        level = accounts.get_cell("bos-b", "level")
        assert str(level).strip() == "78.2%"
        assert all(red in str(span.style) for span in level.spans)
        assert not any(red in str(s.style) for s in accounts.get_cell("bos-a", "level").spans)
        # The engine no longer says so, but the level is still below the account's 100 %.
        conn = connect(cockpit_db.path)
        conn.execute("UPDATE accounts SET margin_call = 0 WHERE name = 'bos-b'")
        conn.close()
        await pilot.pause(0.6)
        assert pane.has_class("-margin-call")
        conn = connect(cockpit_db.path)
        conn.execute("UPDATE accounts SET margin_level = 130.5 WHERE name = 'bos-b'")
        conn.close()
        await wait_until(pilot, lambda: not pane.has_class("-margin-call"))
        assert subtitle(app, "positions") == "3 open · 3 working"


async def test_working_orders_come_and_go_with_the_snapshot(cockpit_db: FixtureDB) -> None:
    app = cockpit(cockpit_db)
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one("#orders-table", KeyedTable)
        conn = connect(cockpit_db.path)
        conn.execute("DELETE FROM working_orders WHERE order_id = 'bos-a-000034'")
        conn.close()
        await wait_until(pilot, lambda: table.row_count == 2)
        assert cell(app, "accounts-table", "bos-a", "working") == "1"
        conn = connect(cockpit_db.path)
        conn.execute("DELETE FROM working_orders")
        conn.close()
        await wait_until(pilot, lambda: not table.display)
        assert not app.query_one("#orders-title").display


async def test_a_narrow_pane_drops_the_least_needed_columns_first(cockpit_db: FixtureDB) -> None:
    app = cockpit(cockpit_db)
    async with app.run_test(size=(80, 24)):
        accounts = app.query_one("#accounts-table", KeyedTable)
        shown = [str(c.key.value) for c in accounts.ordered_columns]
        assert shown[0] == "account" and {"equity", "level", "state"} <= set(shown)
        assert "currency" not in shown and "trades" not in shown
    async with cockpit(cockpit_db).run_test(size=(200, 50)) as pilot:
        accounts = pilot.app.query_one("#accounts-table", KeyedTable)
        assert len(accounts.ordered_columns) == 11  # every column fits


async def test_no_engine_says_so(tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here.db"
    app = CockpitApp(missing)  # the live clock, no engine, no database yet
    async with app.run_test(size=SIZE) as pilot:
        assert "no engine running" in header(app, "engine")
        assert "no database" in header(app, "engine")
        await pilot.press("h")
        await pilot.pause(0.2)
        assert not missing.exists(), "the cockpit never creates the engine's database"


async def test_a_stopped_engines_figures_are_dated_not_shown_as_live(tmp_path: Path) -> None:
    db = build_fixture_db(tmp_path / "cockpit.db")
    conn = open_db(db.path).conn
    set_engine(conn, db.now_ns - 60 * 1_000_000_000)  # killed a minute ago: running=1 stays
    conn.close()
    app = cockpit(db)
    async with app.run_test(size=SIZE) as pilot:
        assert header(app, "engine") == "○ no engine running since 14:29:00 UTC"
        assert header(app, "mode") == "SIMULATED"
        assert app.query_one("#header #state").has_class("-unknown"), "ACTIVE is not shown live"
        for pane in PANES:
            assert app.query_one(f"#{pane}").has_class("-stale"), pane
            assert subtitle(app, pane) == "as of 14:29:00 · engine stopped", pane
        assert app.query_one("#ticks").border_title == "Last ticks"
        # The last scores stay readable but lose their traffic-light colour.
        score = app.query_one("#quality", KeyedTable).get_cell("USDJPY", "score")
        assert str(score).strip() == "0.62v"
        assert {str(span.style) for span in score.spans} == {"dim"}

        conn = connect(db.path)
        set_engine(conn, db.now_ns)  # an engine writes again
        conn.close()
        await wait_until(pilot, lambda: not app.query_one("#ab").has_class("-stale"))
        assert header(app, "engine").startswith("● engine running")
        assert not any(app.query_one(f"#{pane}").has_class("-stale") for pane in PANES)
        assert subtitle(app, "quality") == "score: last min, v s g l c · counts: since start"
        assert subtitle(app, "breakers") == "2 of 4 tripped"
        assert subtitle(app, "positions") == "MARGIN CALL bos-b · 3 open · 3 working"
        assert subtitle(app, "ticks") == ""
        assert app.query_one("#ticks").border_title == "Live ticks"
        score = app.query_one("#quality", KeyedTable).get_cell("USDJPY", "score")
        assert "dim" not in {str(span.style) for span in score.spans}


@pytest.mark.parametrize("trading_state", ["ACTIVE", "HALTED"])
@pytest.mark.parametrize("engine_age_s", [0, 60])
async def test_the_header_fits_an_80_column_terminal(
    tmp_path: Path, trading_state: str, engine_age_s: int
) -> None:
    """At 80 columns the header keeps what matters whole: state, engine, time (not the date)."""
    db = build_fixture_db(tmp_path / "cockpit.db")
    conn = connect(db.path)
    set_engine(conn, db.now_ns - engine_age_s * 1_000_000_000, trading_state=trading_state)
    conn.close()
    app = cockpit(db)
    async with app.run_test(size=(80, 24)):
        assert header(app, "clock") == "14:30:00 UTC"
        if engine_age_s:
            assert header(app, "engine") == "○ no engine since 14:29:00"
        else:
            assert header(app, "engine") == "● engine running · feed sim"
        for part in ("brand", "mode", "state", "engine", "clock"):
            label = app.query_one(f"#header #{part}")
            assert label.size.width >= len(str(label.content)), f"{part} cut short"


class BrokenEngine:
    async def run(self, stop: asyncio.Event) -> None:
        raise RuntimeError("feed refused the API key")


async def test_an_engine_that_fails_is_reported_not_fatal(cockpit_db: FixtureDB) -> None:
    app = cockpit(cockpit_db, engine=BrokenEngine())
    async with app.run_test(size=SIZE, notifications=True) as pilot:

        def reported() -> bool:
            return any("feed refused" in str(t.render()) for t in app.screen.query("Toast"))

        await wait_until(pilot, reported)
        assert app.is_running
        assert header(app, "mode") == "SIMULATED"


async def test_safety_commands_are_in_the_palette(cockpit_db: FixtureDB) -> None:
    app = cockpit(cockpit_db)
    async with app.run_test(size=SIZE):
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert titles[:3] == ["Halt trading", "Resume trading", "Flatten"]


async def test_a_bad_row_is_shown_and_polling_goes_on(cockpit_db: FixtureDB) -> None:
    app = cockpit(cockpit_db)
    async with app.run_test(size=SIZE) as pilot:
        conn = connect(cockpit_db.path)
        conn.execute("ALTER TABLE latest RENAME TO latest_away")
        await wait_until(pilot, lambda: "database: no such table" in header(app, "engine"))
        conn.execute("ALTER TABLE latest_away RENAME TO latest")
        conn.close()
        await wait_until(pilot, lambda: header(app, "engine").startswith("● engine running"))


def test_quitting_while_polls_read_never_crashes(tmp_path: Path) -> None:
    """Quit thirty times at varied moments, polls reading in their thread at 500 Hz.

    The cockpit runs in a child process (tests/quit_race.py): a segmentation fault there
    fails this test rather than killing pytest. Before the fix the child died within the first
    few quits, every time; a bigger database made no difference, a busy machine did.
    """
    db = build_fixture_db(tmp_path / "cockpit.db")
    here = Path(__file__).parent
    child = subprocess.run(
        [sys.executable, "-X", "faulthandler", str(here / "quit_race.py"), str(db.path), "30"],
        cwd=here,
        capture_output=True,
        text=True,
        timeout=300,
    )
    died = child.returncode
    how = signal.Signals(-died).name if died < 0 else f"exit {died}"
    assert died == 0, f"the cockpit died quitting ({how}):\n{child.stderr[-3000:]}"
    quits, in_flight = (int(n) for n in child.stdout.split()[-3::2])
    assert quits == 30
    assert in_flight >= 20, "too few quits landed during a poll to test anything"


async def test_the_header_says_when_the_engine_cannot_write_its_database(tmp_path: Path) -> None:
    from mikrobot_tui.store import liveness

    db = build_fixture_db(tmp_path / "cockpit.db")
    conn = open_db(db.path).conn
    set_engine(conn, db.now_ns - 10 * 1_000_000_000)  # its row stopped 10 s ago: locked out
    conn.close()
    pulse = {"pid": 4242, "host": "fixture-host", "heartbeat_ts": db.now_ns}
    liveness.publish(db.path, {**pulse, "problem": f"{db.path}: database locked by another"})
    try:
        app = cockpit(db)
        async with app.run_test(size=SIZE):
            assert header(app, "engine") == "● database locked: rows kept, retrying"
            assert not app.query_one("#ab").has_class("-stale")  # the engine is alive
    finally:
        liveness.clear(db.path)


async def test_external_signals_are_told_as_they_come(cockpit_db: FixtureDB) -> None:
    """An order, a refusal and a rejected input of an external source each become a toast;
    what was in the database before the cockpit opened, and strategies' orders, do not."""
    conn = connect(cockpit_db.path)
    reject = "INSERT INTO rejects (ts, ts_event, source, symbol, reason, raw) VALUES (?,?,?,?,?,?)"
    conn.execute(reject, [1, 1, "ea:signals.json", "", "old news", ""])
    app = cockpit(cockpit_db)

    def toasts() -> str:
        return " | ".join(str(t.render()) for t in app.screen.query("Toast"))

    async with app.run_test(size=SIZE, notifications=True) as pilot:
        notices = app.screen.query_one("#signal-notices")
        await wait_until(pilot, lambda: notices._cursor is not None)
        (seq,) = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
        event = "INSERT INTO events (seq, ts, kind, account, payload) VALUES (?,?,?,?,?)"
        submitted = {"source": "webhook:127.0.0.1", "side": "BUY", "symbol": "EURUSD", "lots": 0.25}
        refused = {"source": "ea:signals.json", "side": "SELL", "symbol": "USDJPY", "reason": "no"}
        conn.execute(event, [seq + 1, 1, "order_submitted", "A", json.dumps(submitted)])
        conn.execute(
            event,
            [
                seq + 2,
                1,
                "order_refused",
                "A",
                json.dumps({"reason": "no", "source": "x"} | refused),
            ],
        )
        conn.execute(
            event, [seq + 3, 1, "order_refused", "B", json.dumps({"reason": "strategy's"})]
        )
        conn.execute(reject, [2, 2, "webhook:127.0.0.1", "", "HTTP 401: bad signature", ""])
        conn.execute(reject, [3, 3, "feed:sim", "EURUSD", "crossed quote", ""])
        await notices._poll().wait()
        await wait_until(pilot, lambda: toasts().count("|") >= 2)
        shown = toasts()
        assert "webhook:127.0.0.1: BUY EURUSD in A, 0.25 lots" in shown
        assert "ea:signals.json: SELL USDJPY in A: no" in shown
        assert "webhook:127.0.0.1: HTTP 401: bad signature" in shown
        assert "old news" not in shown and "crossed quote" not in shown
        assert "strategy's" not in shown
    conn.close()


async def test_alerts_are_told_with_their_severity_and_critical_ones_stay_longer(
    cockpit_db: FixtureDB,
) -> None:
    """Each new `alert` event is a toast: info as information, warning as a warning, critical
    as an error that stays longer; what the database held before the cockpit opened is not."""
    conn = connect(cockpit_db.path)
    event = "INSERT INTO events (seq, ts, kind, account, payload) VALUES (?,?,?,?,?)"

    def alert(severity: str, title: str, text: str) -> str:
        payload = {"severity": severity, "source": "engine", "kind": "x", "seq": 1}
        return json.dumps(payload | {"title": title, "text": text})

    (seq,) = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
    conn.execute(event, [seq + 1, 1, "alert", None, alert("critical", "Old", "before the app")])
    app = cockpit(cockpit_db)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        notices = app.screen.query_one("#signal-notices")
        await wait_until(pilot, lambda: notices._cursor is not None)
        rows = [
            ("info", "Engine resumed", "trading resumed by operator"),
            ("warning", "Margin call: A", "A: margin call at a margin level of 95.5%"),
            ("critical", "A halted", "A is HALTED (no new orders): daily loss"),
        ]
        for i, (severity, title, text) in enumerate(rows, start=2):
            conn.execute(event, [seq + i, 1, "alert", "A", alert(severity, title, text)])
        await notices._poll().wait()
        await wait_until(pilot, lambda: len(app._notifications) >= 3)
        told = {n.title: n for n in app._notifications}
        assert "Old" not in told
        assert told["Engine resumed"].severity == "information"
        assert told["Margin call: A"].severity == "warning"
        halted = told["A halted"]
        assert halted.severity == "error" and halted.message.endswith("daily loss")
        assert halted.timeout > told["Margin call: A"].timeout

        def shown() -> str:
            return " | ".join(str(t.render()) for t in app.screen.query("Toast"))

        await wait_until(pilot, lambda: "A is HALTED" in shown())
    conn.close()


def test_the_score_shows_its_weakest_part() -> None:
    from mikrobot_tui.store.queries import QualityRow
    from mikrobot_tui.tui.panes.quality import weakest_part

    base = QualityRow("EURUSD", 0.8, 10, 0, 0, 1, 5.0, "gap 6.0s", 1)
    assert weakest_part(base) == ""  # an engine before the parts wrote it
    parts = {"validity": 0.95, "spikes_part": 1.0, "gaps_part": 0.85, "latency_part": 1.0}
    row = QualityRow(*[getattr(base, f) for f in base.__slots__[:9]], **parts, completeness=1.0)
    assert weakest_part(row) == "g"
    clean = QualityRow(*[getattr(base, f) for f in base.__slots__[:9]], completeness=0.999)
    assert weakest_part(clean) == ""  # 1.00 at two decimals costs nothing visible


def test_the_latency_cpk_is_coloured_by_the_usual_capability_thresholds() -> None:
    from mikrobot_tui.tui.panes.quality import cpk_cell

    assert cpk_cell(None) == ("-", "muted")  # fewer than 2 latencies, or no spread in them
    assert cpk_cell(2.0) == ("2.00", "up")
    assert cpk_cell(1.1) == ("1.10", "warn")
    assert cpk_cell(0.4) == ("0.40", "down")
    assert cpk_cell(0.4, live=False) == ("0.40", "muted")


async def test_a_screenshot_goes_to_the_working_directory_and_says_where(
    cockpit_db: FixtureDB, tmp_path: Path, monkeypatch
) -> None:
    """No ~/Downloads (a server, a fresh account): Textual's default place fails there."""
    home, here = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    here.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_DOWNLOAD_DIR", raising=False)
    monkeypatch.chdir(here)
    app = cockpit(cockpit_db)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        app.deliver_screenshot()
        await wait_until(pilot, lambda: any(here.glob("*.svg")))
        await wait_until(
            pilot,
            lambda: any(str(here) in str(t.render()) for t in app.screen.query("Toast")),
        )
    (shot,) = here.glob("*.svg")
    assert shot.read_text().startswith("<svg")


async def test_p_opens_the_performance_report_of_each_account(make_settings, tmp_path) -> None:
    """The same figures as `mikrobot report`, one account at a time, over the cockpit."""
    from engine_data import FAST_ACCOUNTS, replay, waves

    from mikrobot_tui.tui.report_screen import ReportScreen

    settings = make_settings(accounts=FAST_ACCOUNTS)
    replay(settings, waves(3000), tmp_path / "r", 1000).close()
    app = CockpitApp(settings.engine.db)
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("p")
        await wait_until(pilot, lambda: isinstance(app.screen, ReportScreen))
        screen = app.screen
        await wait_until(pilot, lambda: bool(screen.reports), timeout=20)
        text = "\n".join(
            line.text for line in screen.query_one("#report").render_lines(screen.region)
        )
        assert "net_profit" in text and "sharpe" in text and "max_drawdown_pct" in text
        first = screen.reports[0].account
        assert f"[{first}]" in str(screen.query_one("#report-box").border_subtitle)
        await pilot.press("right")
        assert screen.index == 1 % len(screen.reports)
        await pilot.press("escape")
        assert not isinstance(app.screen, ReportScreen)
