"""A strategy on M1 that asks for H1 gets the H1 bars, and the last fifty of them at any bar."""

from __future__ import annotations

from pathlib import Path

import pytest
from engine_data import FAST_ACCOUNTS, SYMBOLS, T0, install_probe, replay, waves

from mikrobot_tui.clock import FrozenClock
from mikrobot_tui.domain.market import H1, M1, NS_PER_SECOND, TIMEFRAMES, Bar
from mikrobot_tui.engine import build_engine
from mikrobot_tui.engine.runner import Runner
from mikrobot_tui.trading.timeframes import BarHistory

MINUTE = 60 * NS_PER_SECOND


class HourlyTrend:
    """Trades nothing; writes down what it is shown and what the bar history holds then."""

    name = "hourly_trend"
    timeframe = "M1"
    timeframes = ("M1", "H1")

    def __init__(self) -> None:
        self.history: BarHistory | None = None
        self.bars: list[Bar] = []
        self.seen: list[tuple] = []  # per bar: the bar, the newest H1 and M5 the history holds

    def bind_history(self, history: BarHistory) -> None:
        self.history = history

    def on_bar(self, bar: Bar) -> None:
        assert self.history is not None
        self.bars.append(bar)
        h1 = self.history.last(bar.symbol, "H1", 50)
        m5 = self.history.last(bar.symbol, "M5", 1)
        own = self.history.last(bar.symbol, bar.timeframe, 1)
        self.seen.append(
            (bar, h1[0].tolist(), h1[4].tolist(), m5[0].tolist(), own[0].tolist(), own[4].tolist())
        )


def run(make_settings, tmp_path: Path, batch: int, monkeypatch) -> tuple[object, HourlyTrend]:
    probe = HourlyTrend()
    install_probe(monkeypatch, probe)
    settings = make_settings(
        engine={"db": tmp_path / f"b{batch}.db", "store_ticks": False},
        accounts=[{"name": "A", "params": {"fast": 99, "slow": 100}}, {"name": "B"}],
    )
    # two symbols ticking every 5 s each for four hours and ten minutes: four H1 bars close
    engine = replay(settings, waves(6000), tmp_path / f"ticks{batch}", batch)
    return engine, probe


def test_a_strategy_asking_for_h1_gets_h1_bars_and_the_history_holds_them(
    make_settings, tmp_path, monkeypatch
) -> None:
    engine, probe = run(make_settings, tmp_path, 500, monkeypatch)
    h1 = [b for b in probe.bars if b.timeframe == "H1"]
    assert [(b.symbol, b.ts_open) for b in h1] == [
        (s, T0 + i * H1) for i in range(4) for s in SYMBOLS
    ]
    assert {b.timeframe for b in probe.bars} == {"M1", "H1"}  # M5 and M15 are not shown
    for bar, h1_ts, h1_close, m5_ts, own_ts, own_close in probe.seen:
        closing = bar.ts_open + TIMEFRAMES[bar.timeframe]
        assert own_ts == [bar.ts_open] and own_close == [bar.close]  # the bar itself is in
        # every H1 and M5 bar the history holds closed at or before this bar's closing tick
        assert all(ts + H1 <= closing for ts in h1_ts)
        assert all(ts + 5 * M1 <= closing for ts in m5_ts)
        if bar.timeframe == "H1":
            assert h1_ts[-1] == bar.ts_open and h1_close[-1] == bar.close
    # the history has what the bars table has
    stored = engine.conn.execute(
        "SELECT ts_open, close FROM bars WHERE symbol = 'EURUSD' AND timeframe = 'H1' "
        "ORDER BY ts_open"
    ).fetchall()
    ts, _, _, _, close, _ = engine.corridor.history.last("EURUSD", "H1", 50)
    assert list(zip(ts.tolist(), close.tolist(), strict=True)) == stored
    frames = {r[0] for r in engine.conn.execute("SELECT DISTINCT timeframe FROM bars")}
    assert {"M1", "M5", "M15", "H1", "H4"} <= frames <= set(TIMEFRAMES)  # no day has closed
    engine.close()


def test_what_a_multi_timeframe_strategy_sees_does_not_depend_on_the_batch_size(
    make_settings, tmp_path, monkeypatch
) -> None:
    big, seen_big = run(make_settings, tmp_path, 4096, monkeypatch)
    small, seen_small = run(make_settings, tmp_path, 1, monkeypatch)
    assert seen_small.seen == seen_big.seen
    sql = "SELECT * FROM bars ORDER BY symbol, timeframe, ts_open"
    assert small.conn.execute(sql).fetchall() == big.conn.execute(sql).fetchall()
    big.close()
    small.close()


def _run_minutes(engine, minutes: float) -> None:
    market = engine.feed.market
    end = market.now_ns + int(minutes * MINUTE)
    while market.now_ns < end:
        batch = market.advance(min(end, market.now_ns + 10 * NS_PER_SECOND))
        Runner(engine).replay(iter([batch]))


@pytest.mark.parametrize("store_ticks", [True, False])
def test_an_h1_bar_open_at_a_restart_is_whole_when_it_closes(make_settings, store_ticks) -> None:
    settings = make_settings(
        accounts=FAST_ACCOUNTS,
        sim={"seed": 4, "warmup_minutes": 0, "faults": False},
        engine={"store_ticks": store_ticks},
    )
    first = build_engine(settings, clock=FrozenClock(T0))
    first.start()
    _run_minutes(first, 25.5)  # stops in the middle of a minute and of the first hour
    last_ts = first.quotes.market_now
    first.close()

    again = build_engine(settings, clock=FrozenClock(last_ts))
    again.start()
    # the restart's bar history already holds what the first run stored
    assert again.corridor.history.count("EURUSD", "M1") >= 24
    _run_minutes(again, 40)
    conn = again.conn
    for symbol in settings.sim.symbols:
        hour = conn.execute(
            "SELECT open, high, low, close, ticks FROM bars "
            "WHERE symbol = ? AND timeframe = 'H1' AND ts_open = ?",
            [symbol, T0],
        ).fetchone()
        minutes = conn.execute(
            "SELECT open, high, low, close, ticks FROM bars WHERE symbol = ? AND timeframe = 'M1' "
            "AND ts_open >= ? AND ts_open < ? ORDER BY ts_open",
            [symbol, T0, T0 + H1],
        ).fetchall()
        assert len(minutes) >= 59
        whole = (
            minutes[0][0],
            max(m[1] for m in minutes),
            min(m[2] for m in minutes),
            minutes[-1][3],
            sum(m[4] for m in minutes),
        )
        assert hour == whole  # the hour holds every minute, before and after the restart
        for frame in ("M5", "M15"):
            (bars,) = conn.execute(
                "SELECT SUM(ticks) FROM bars WHERE symbol = ? AND timeframe = ? "
                "AND ts_open >= ? AND ts_open < ?",
                [symbol, frame, T0, T0 + H1],
            ).fetchone()
            assert bars == whole[4]
    again.close()


def test_a_restart_warms_a_strategy_on_h1_with_enough_m1_bars_to_cover_its_hours() -> None:
    from mikrobot_tui.engine.warmup import _bars_needed

    class OnTheHour:
        name = "on_the_hour"
        timeframe = "H1"
        timeframes = ("M1", "H1")
        warmup_bars = 20  # twenty hours

    assert _bars_needed(OnTheHour(), "H1") == 20
    assert _bars_needed(OnTheHour(), "M1") == 20 * 60  # the same twenty hours of minutes
    assert _bars_needed(HourlyTrend(), "H1") == 2  # 100 minutes, in hours, rounded up


def test_a_replay_checkpoint_from_before_m15_and_h1_still_resumes(make_settings, tmp_path) -> None:
    from mikrobot_tui.engine import checkpoint

    ticks = waves(3000)
    settings = make_settings(engine={"db": tmp_path / "old.db", "store_ticks": False})
    old = replay(settings, ticks[:1500], tmp_path / "old", 500)
    old.corridor.set_bar_floors({("EURUSD", "M1"): T0})
    memory = checkpoint.Memory.of(old.corridor, old.corridor._decisions, old.clock)
    # what an engine that built M1 and M5 only would have stored
    memory.candles.builders = {p: b for p, b in memory.candles.builders.items() if p <= 5 * M1}
    memory.bar_floor = memory.bar_floor[:, :2]
    memory.history = None
    blob = memory.dumps()
    old.close()

    settings = make_settings(engine={"db": tmp_path / "new.db", "store_ticks": False})
    new = replay(settings, ticks[:0], tmp_path / "new", 500)
    checkpoint.restore(
        checkpoint.Memory.loads(blob, settings), new.corridor, new.corridor._decisions, new.clock
    )
    assert set(new.corridor.candles.builders) == set(TIMEFRAMES.values())
    new.corridor.process(ticks[1500:])  # M15 and H1 start afresh; nothing breaks
    new.writer.flush()
    frames = {r[0] for r in new.conn.execute("SELECT DISTINCT timeframe FROM bars")}
    assert {"M1", "M5", "M15", "H1", "H4"} <= frames <= set(TIMEFRAMES)  # no day has closed
    new.close()
