"""A restarted simulated market continues from the database: the past is never regenerated."""

from __future__ import annotations

from engine_data import FAST_ACCOUNTS

from mikrobot_tui.clock import FrozenClock
from mikrobot_tui.domain.market import NS_PER_SECOND
from mikrobot_tui.engine import build_engine
from mikrobot_tui.engine.runner import Runner
from mikrobot_tui.store.tickstore import read_ticks

T0 = 1_767_225_600 * NS_PER_SECOND
MINUTE = 60 * NS_PER_SECOND


def run_minutes(engine, minutes: float) -> None:
    market = engine.feed.market
    end = market.now_ns + int(minutes * MINUTE)
    while market.now_ns < end:
        batch = market.advance(min(end, market.now_ns + 10 * NS_PER_SECOND))
        Runner(engine).replay(iter([batch]))


def table(conn, sql: str) -> list[tuple]:
    return conn.execute(sql).fetchall()


def test_a_restart_continues_from_the_last_stored_time_and_prices(make_settings) -> None:
    settings = make_settings(
        accounts=FAST_ACCOUNTS,
        sim={"seed": 3, "warmup_minutes": 30, "fault_rate": 0.01},
        engine={"store_ticks": True},
    )
    first = build_engine(settings, clock=FrozenClock(T0))
    first.start()
    run_minutes(first, 20.5)  # ends in the middle of a minute
    last_ts = first.quotes.market_now
    mids = {
        s: float(first.quotes.bid[i] + first.quotes.ask[i]) / 2 for i, s in enumerate(first.symbols)
    }
    conn = first.conn
    bars = table(conn, "SELECT * FROM bars ORDER BY symbol, timeframe, ts_open")
    rejects = table(conn, "SELECT COUNT(*) FROM rejects")
    first.close()

    downtime = 7 * NS_PER_SECOND  # the wall clock moved on while the engine was down
    again = build_engine(settings, clock=FrozenClock(last_ts + downtime))
    again.start()
    market = again.feed.market
    assert market.now_ns == last_ts  # not an hour of fresh random walk before now
    conn = again.conn
    assert table(conn, "SELECT COUNT(*) FROM rejects") == rejects  # no warm-up stored again
    strategy = again.strategies["A"]
    assert all(strategy._states[s].bars >= 10 for s in again.symbols)  # warm from stored bars
    first_new = market.advance(last_ts + 5 * NS_PER_SECOND)
    for i, symbol in enumerate(again.symbols):
        ticks = first_new[(first_new["sym"] == i) & (first_new["bid"] > 0)]
        if len(ticks):
            assert abs((ticks["bid"][0] + ticks["ask"][0]) / 2 / mids[symbol] - 1) < 0.003
    Runner(again).replay(iter([first_new]))
    run_minutes(again, 10)
    stored = table(conn, "SELECT * FROM bars ORDER BY symbol, timeframe, ts_open")
    newest = {(b[0], b[1]): b[2] for b in bars}
    kept = [b for b in stored if b[2] <= newest.get((b[0], b[1]), -1)]
    assert kept == bars  # every bar stored before the restart is exactly as it was
    assert len(stored) > len(bars)
    # the minute that was open at the stop is one bar, built from its ticks before and after
    open_minute = last_ts // MINUTE * MINUTE
    (ticks_in_bar,) = conn.execute(
        "SELECT ticks FROM bars WHERE symbol = 'EURUSD' AND timeframe = 'M1' AND ts_open = ?",
        [open_minute],
    ).fetchone()
    stored_ticks = len(read_ticks(conn, "EURUSD", open_minute, open_minute + MINUTE))
    assert ticks_in_bar >= stored_ticks - 1  # a spike tick is stored but builds no bar
    again.close()


def test_a_new_database_still_starts_with_generated_history(make_settings) -> None:
    settings = make_settings(sim={"warmup_minutes": 30})
    engine = build_engine(settings, clock=FrozenClock(T0))
    engine.start()
    assert engine.feed.market.now_ns == T0
    (bars,) = engine.conn.execute("SELECT COUNT(*) FROM bars WHERE timeframe = 'M1'").fetchone()
    assert bars >= 6 * 28
    engine.close()


def test_the_sessions_counts_start_after_the_warm_up(make_settings) -> None:
    """The warm-up plays the market's last half hour through the corridor; the ticks, rejects
    and problem counts an operator reads (headless status line, quality pane) are the
    session's, from zero."""
    settings = make_settings(sim={"seed": 3, "warmup_minutes": 30, "fault_rate": 0.01})
    engine = build_engine(settings, clock=FrozenClock(T0))
    engine.start()
    c = engine.corridor.counts
    assert (c.ticks_in, c.ticks_clean, c.bars, c.rejects) == (0, 0, 0, 0)
    now = engine.feed.market.now_ns
    scores = engine.corridor.quality.scores(now)
    assert all(q.ticks == 0 and q.rejects == 0 for q in scores)
    # no problem of the history is shown as the last one (a silence now is said as it is)
    assert all(q.last_problem in ("",) or q.last_problem.startswith("silent") for q in scores)
    run_minutes(engine, 2)
    c = engine.corridor.counts
    assert c.ticks_in > 0 and c.bars > 0
    scores = engine.corridor.quality.scores(engine.feed.market.now_ns)
    assert sum(q.ticks for q in scores) == c.ticks_in
    engine.close()
