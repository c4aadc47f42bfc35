"""ema_tick_cross: the tick EMAs and their crosses equal a plain-Python reference bit for bit,
whatever the batching, and through the real engine every cross is a fill at the signal tick's
ask (buy) or bid (sell), a reversal two fills, ending with one position of `units`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from engine_data import FULL_RISK
from typer.testing import CliRunner

from mikrobot_tui.cli import app
from mikrobot_tui.config import load_settings
from mikrobot_tui.domain.events import EventKind
from mikrobot_tui.domain.market import NS_PER_SECOND, TICK_DTYPE
from mikrobot_tui.domain.orders import Side
from mikrobot_tui.engine import backtest as bt
from mikrobot_tui.store.events import read_events
from mikrobot_tui.store.schema import open_db
from mikrobot_tui.trading.strategies import STRATEGIES, EmaTickCross, build_strategy

T0 = 1_767_261_600 * NS_PER_SECOND  # 2026-01-01 10:00 UTC, a Thursday: the forex market is open


def eurusd(n: int = 6000, seed: int = 5, every_ns: int = NS_PER_SECOND // 2) -> np.ndarray:
    """EURUSD every half second: a slow wave and a random walk, so the tick EMAs cross."""
    rng = np.random.default_rng(seed)
    i = np.arange(n)
    mid = 1.1 + 0.0015 * np.sin(i / 900 * 2 * np.pi) + np.cumsum(rng.normal(0, 1, n)) * 2e-5
    mid = np.round(mid, 5)
    t = np.zeros(n, dtype=TICK_DTYPE)
    t["ts_event"] = T0 + i * every_ns
    t["ts_recv"] = t["ts_event"] + 1_000_000
    t["bid"], t["ask"] = np.round(mid - 0.00005, 5), np.round(mid + 0.00005, 5)
    t["last"], t["volume"] = np.nan, np.nan
    return t


def reference(ticks: np.ndarray, fast: int = 50, slow: int = 200):
    """The definition in plain Python: EMAs, diff and the crosses as (index, side)."""
    a_fast, a_slow = 2 / (fast + 1), 2 / (slow + 1)
    k_fast, k_slow = 1 - a_fast, 1 - a_slow
    bids, asks = ticks["bid"].tolist(), ticks["ask"].tolist()
    f = w = (bids[0] + asks[0]) / 2
    fs, ws, diffs, crosses = [f], [w], [0.0], []
    for i in range(1, len(bids)):
        mid = (bids[i] + asks[i]) / 2
        f = a_fast * mid + k_fast * f
        w = a_slow * mid + k_slow * w
        d = f - w
        if i >= slow and d > 0 >= diffs[-1]:
            crosses.append((i, Side.BUY))
        elif i >= slow and d < 0 <= diffs[-1]:
            crosses.append((i, Side.SELL))
        fs.append(f)
        ws.append(w)
        diffs.append(d)
    return np.array(fs), np.array(ws), np.array(diffs), crosses


def in_batches(strategy: EmaTickCross, ticks: np.ndarray, size: int):
    """The strategy's fast and slow EMAs over `ticks` fed in batches of `size`."""
    parts = [strategy.emas("EURUSD", ticks[i : i + size]) for i in range(0, len(ticks), size)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


@pytest.mark.parametrize("size", [None, 1, 7, 333])
def test_the_emas_and_diff_equal_the_reference_exactly(size):
    ticks = eurusd(4000)
    ref_fast, ref_slow, ref_diff, _ = reference(ticks)
    fast, slow = in_batches(EmaTickCross(), ticks, size or len(ticks))
    np.testing.assert_array_equal(fast, ref_fast)
    np.testing.assert_array_equal(slow, ref_slow)
    np.testing.assert_array_equal(fast - slow, ref_diff)


@pytest.mark.parametrize("size", [None, 1, 7, 333])
@pytest.mark.parametrize(("fast", "slow"), [(50, 200), (5, 20)])
def test_the_crosses_are_the_references_at_the_same_ticks(size, fast, slow):
    ticks = eurusd(4000)
    *_, expected = reference(ticks, fast, slow)
    assert len(expected) >= 4  # the data crosses: the test can fail
    strategy = EmaTickCross(fast=fast, slow=slow)
    size = size or len(ticks)
    got = []
    for start in range(0, len(ticks), size):
        part = ticks[start : start + size]
        for i, signal in strategy.on_ticks("EURUSD", part):
            got.append((start + i, signal.side))
            assert signal.units == 100_000 and signal.reverse and not signal.has_stop
            assert signal.ts == int(part["ts_event"][i])
    assert got == expected
    assert all(i >= slow for i, _ in got)


def engine_fills(db: Path) -> list[tuple[int, str, float, float]]:
    """(ts, side, price, lots) of every fill of the backtest's account, from the event log."""
    conn = open_db(db).conn
    try:
        events = list(read_events(conn))
    finally:
        conn.close()
    side = {
        e.payload["order_id"]: e.payload["side"]
        for e in events
        if e.kind is EventKind.ORDER_SUBMITTED
    }
    return [
        (e.ts, side[e.payload["order_id"]], e.payload["price"], e.payload["lots"])
        for e in events
        if e.kind is EventKind.ORDER_FILLED and e.account == bt.ACCOUNT
    ]


def expected_fills(ticks: np.ndarray) -> list[tuple[int, str, float, float]]:
    """Each cross fills at its own tick: a buy at the ask, a sell at the bid, 1 lot; a
    reversal closes the held lot first (the same price) and then opens one."""
    *_, crosses = reference(ticks)
    out = []
    for n, (i, side) in enumerate(crosses):
        ts = int(ticks["ts_event"][i])
        price = float(ticks["ask"][i] if side is Side.BUY else ticks["bid"][i])
        out += [(ts, str(side), price, 1.0)] * (2 if n else 1)
    return out


def backtest(
    tmp_path: Path,
    ticks: np.ndarray,
    batch: int,
    oms: str = "hedging",
    latency_ms: float | None = 0,
) -> bt.Result:
    db = tmp_path / f"{oms}-{batch}.db"
    loaded = bt.Loaded(ticks, ["EURUSD"], "replay", 0)
    over = bt.overrides(
        db,
        tmp_path / f"{oms}-{batch}.npz",
        "ema_tick_cross",
        {},
        ["EURUSD"],
        latency_ms=latency_ms,
        no_costs=True,
        trust_data=True,
    )
    over["accounts"][0]["oms"] = oms
    # every signal approved at full size (tests/test_scoring.py scores them), and loss
    # limits wide enough for a few dozen reversals paying the spread
    over["orchestrator"] = FULL_RISK
    over["risk"] = {"daily_loss_pct": 50.0, "overall_loss_pct": 50.0}
    settings = load_settings(None, overrides=over)
    return bt.run(settings, loaded, batch_size=batch)


def open_positions(db: Path):
    """The backtest account's open positions, folded from the event log."""
    from mikrobot_tui.paper.portfolio import EngineState, apply

    conn = open_db(db).conn
    try:
        state = EngineState()
        for e in read_events(conn):
            apply(state, e)
    finally:
        conn.close()
    return list(state.accounts[bt.ACCOUNT].positions.values())


@pytest.mark.parametrize("batch", [1, 50, 100_000])
def test_through_the_engine_every_cross_fills_at_its_ticks_quote(tmp_path, batch):
    ticks = eurusd()
    result = backtest(tmp_path, ticks, batch)
    assert result.ticks_clean == len(ticks)
    expected = expected_fills(ticks)
    assert len(expected) >= 9
    assert engine_fills(tmp_path / f"hedging-{batch}.db") == expected
    assert result.fills == len(expected)
    assert result.open_positions == 1


@pytest.mark.parametrize("oms", ["netting", "hedging"])
def test_netting_and_hedging_accounts_end_with_one_position_of_the_units(tmp_path, oms):
    ticks = eurusd()
    result = backtest(tmp_path, ticks, 500, oms)
    *_, crosses = reference(ticks)
    db = tmp_path / f"{oms}-500.db"
    assert engine_fills(db) == expected_fills(ticks)
    conn = open_db(db).conn
    try:
        events = list(read_events(conn))
    finally:
        conn.close()
    closed = [e for e in events if e.kind is EventKind.POSITION_CLOSED]
    assert len(closed) == len(crosses) - 1 == result.trades
    assert all(e.payload["r_multiple"] is None for e in closed)  # no stop: no R
    submitted = [e.payload for e in events if e.kind is EventKind.ORDER_SUBMITTED]
    assert all(p["stop_loss"] is None and p["take_profit"] is None for p in submitted)
    intents = [p["intent"] for p in submitted]
    assert intents == ["open"] + ["close", "open"] * (len(crosses) - 1)
    assert result.open_positions == 1
    # the one position left: the last cross's side, 1 lot (100,000 units)
    (pos,) = open_positions(db)
    assert (pos.side, pos.lots) == (crosses[-1][1], 1.0)


@pytest.mark.parametrize("oms", ["netting", "hedging"])
def test_with_the_latency_model_the_close_still_reaches_the_venue_first(tmp_path, oms):
    """Each order of a reversal draws its own latency; the entry is held back to the close's
    arrival, so a netting account never nets the entry against the position first."""
    ticks = eurusd(every_ns=5_000_000)  # every 5 ms: the draws (50 to 200 ms) fall apart
    result = backtest(tmp_path, ticks, 500, oms, latency_ms=None)
    *_, crosses = reference(ticks)
    assert result.fills == 2 * len(crosses) - 1
    (pos,) = open_positions(tmp_path / f"{oms}-500.db")
    assert (pos.side, pos.lots) == (crosses[-1][1], 1.0)


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"fast": 200, "slow": 50}, "fast must be < slow, got fast=200, slow=50"),
        ({"fast": 50, "slow": 50}, "fast must be < slow"),
        ({"units": 0}, "units must be a number in (0, 1e+12]"),
        ({"units": -5}, "units must be a number"),
        ({"fast": 2.5}, "fast must be a whole number"),
    ],
)
def test_bad_params_are_a_clear_error(params, says):
    with pytest.raises(ValueError, match="ema_tick_cross: ") as err:
        build_strategy("ema_tick_cross", params)
    assert says in str(err.value)


def test_the_cli_refuses_fast_above_slow_in_one_line_exit_2(tmp_path):
    args = ["backtest", "--data", str(tmp_path / "none.npz"), "--strategy", "ema_tick_cross"]
    args += ["--param", "fast=200", "--param", "slow=50"]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "fast must be < slow" in lines[0]


def test_it_is_registered_with_its_params():
    assert STRATEGIES["ema_tick_cross"] is EmaTickCross
    spec = {p.name: (p.kind, p.default) for p in EmaTickCross.PARAMS}
    assert spec == {"fast": (int, 50), "slow": (int, 200), "units": (float, 100_000)}
    assert json.dumps([p.as_dict() for p in EmaTickCross.PARAMS])  # `mikrobot strategies`
