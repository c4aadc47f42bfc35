"""The bandit: Thompson sampling shares an experiment's risk budget as its trades close.

A seeded simulation (200 runs, two variants, B better by 0.3 R a trade, sd 1 R): after 20
trades each B holds on average 0.712 of the budget; after 200 trades each 0.933 (the most it
can hold is 0.95, the floor leaving A 0.05), and more than 0.9 in 91% of the runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from engine_data import replay

from mikrobot_tui.clock import ReplayClock
from mikrobot_tui.config import SimSettings
from mikrobot_tui.data.sim import generate_ticks
from mikrobot_tui.domain.instruments import default_instruments
from mikrobot_tui.domain.market import NS_PER_SECOND
from mikrobot_tui.engine import Engine
from mikrobot_tui.paper.bandit import FLOOR, WARM_UP, p_best, seed_for, shares, thompson_shares
from mikrobot_tui.store.events import raw_events

T0 = 1_767_225_600 * NS_PER_SECOND
SYMBOLS = ["EURUSD", "GBPUSD", "USDJPY", "XAUUSD", "BTCUSDT", "ETHUSDT"]
ACCOUNTS = [
    {"name": "A", "params": {"fast": 3, "slow": 8, "atr_period": 5}},
    {"name": "B", "params": {"fast": 5, "slow": 13, "atr_period": 5}},
]


def test_shares_keep_a_floor_and_sum_to_one() -> None:
    for p in ([1.0, 0.0], [0.333, 0.333, 0.334], [0.0, 0.0, 1.0, 0.0], [0.505, 0.495]):
        s = shares(p)
        assert sum(s) == pytest.approx(1.0, abs=1e-9)
        assert min(s) >= FLOOR / len(p) - 1e-12
    assert shares([1.0, 0.0]) == (0.95, 0.05)
    assert shares([0.5, 0.5]) == (0.5, 0.5)
    # hundredths by largest remainder: 0.334 x 100 has the largest remainder of the three
    assert shares([0.3333, 0.3333, 0.3334]) == shares([0.33, 0.33, 0.34])


def test_equal_shares_until_every_variant_has_its_warm_up() -> None:
    few = [[1.0] * WARM_UP, [-1.0] * (WARM_UP - 1)]
    assert thompson_shares("x", few) == (0.5, 0.5)
    assert thompson_shares("x", [[], []]) == (0.5, 0.5)
    assert thompson_shares("x", [[], [], []]) == pytest.approx((1 / 3,) * 3)


def test_the_same_trades_give_the_same_shares() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 40).tolist(), rng.normal(0.2, 1, 30).tolist()
    assert thompson_shares("exp", [a, b]) == thompson_shares("exp", [a, b])
    assert seed_for("exp", 70) == seed_for("exp", 70) != seed_for("exp", 71)
    assert seed_for("exp", 70) == int.from_bytes(
        __import__("hashlib").sha256(b"exp:70").digest()[:8], "big"
    )
    assert p_best([a, b], seed=1) == p_best([a, b], seed=1)


def test_probability_of_being_best_against_the_normal_approximation() -> None:
    # with many trades the posterior of each mean is about N(xbar, s^2 / n): P(B > A) is
    # Phi((xbar_b - xbar_a) / sqrt(s_a^2/n_a + s_b^2/n_b))
    from statistics import NormalDist

    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, 2_000), rng.normal(0.03, 1, 2_000)
    z = (b.mean() - a.mean()) / np.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
    got = p_best([a.tolist(), b.tolist()], seed=9, draws=200_000)[1]
    assert got == pytest.approx(NormalDist().cdf(z), abs=0.01)


def test_a_seeded_simulation_concentrates_on_the_better_variant() -> None:
    rng = np.random.default_rng(2017)
    early, final = [], []
    for run in range(200):
        a = rng.normal(0.0, 1.0, 200).tolist()
        b = rng.normal(0.3, 1.0, 200).tolist()
        early.append(thompson_shares(f"sim{run}", [a[:20], b[:20]])[1])
        final.append(thompson_shares(f"sim{run}", [a, b])[1])
    early_b, final_b = np.array(early), np.array(final)
    print(
        f"B's share after 20 trades each: mean {early_b.mean():.3f}; after 200: mean "
        f"{final_b.mean():.3f}, > 0.9 in {(final_b > 0.9).mean():.0%}"
    )
    assert early_b.mean() < final_b.mean()  # the budget follows the evidence
    assert final_b.mean() > 0.85
    assert (final_b > 0.9).mean() > 0.7


def _run(make_settings, tmp_path: Path, name: str, **sections):
    catalogue = default_instruments()
    sim = SimSettings(symbols=SYMBOLS, seed=42, fault_rate=0.01)
    ticks = generate_ticks([catalogue[s] for s in SYMBOLS], sim, T0, 300_000)
    db = tmp_path / f"{name}.db"
    settings = make_settings(accounts=ACCOUNTS, engine={"store_ticks": False, "db": db}, **sections)
    engine = replay(settings, ticks, tmp_path / name, batch=4096, symbols=SYMBOLS)
    rows = raw_events(engine.conn)
    engine.close()
    return settings, rows


def allocations(rows) -> list[tuple[int, int, str]]:
    return [(seq, ts, p) for seq, ts, kind, _, p in rows if kind == "allocation_changed"]


def test_a_replay_run_twice_writes_the_same_allocation_events(make_settings, tmp_path) -> None:
    _, first = _run(make_settings, tmp_path, "one")
    settings, second = _run(make_settings, tmp_path, "two")
    assert allocations(first) == allocations(second)
    events = allocations(first)
    assert events, "the replay closes enough trades for the bandit to move"
    p = json.loads(events[-1][2])
    assert p["experiment"] == "ab" and p["variants"] == ["A", "B"]
    assert sum(p["shares"]) == pytest.approx(1.0) and min(p["trades"]) >= WARM_UP
    # entries after a change are sized by it, and say so
    submitted = [json.loads(r[4]) for r in first if r[2] == "order_submitted" and r[3] == "B"]
    assert {round(s["allocation"], 6) for s in submitted if "allocation" in s} >= {1.0}

    # `mikrobot ab` shows the shares of the last event, and the engine's statistics
    from typer.testing import CliRunner

    from mikrobot_tui.cli import app

    out = CliRunner().invoke(app, ["--db", str(tmp_path / "two.db"), "ab", "--json"])
    (e,) = json.loads(out.output)["experiments"]
    assert [v["share"] for v in e["variants"]] == p["shares"]
    assert [v["verdict"] for v in e["variants"]] == ["control", "collecting"]  # < 100 trades
    assert e["ci"]["method"] == "percentile_bootstrap" and e["ci"]["seed"] == 7
    assert e["variants"][1]["welch_p"] is not None and e["variants"][1]["diff_ci"] is not None

    # a restart reads the allocation back from the last event
    from mikrobot_tui.data.feeds.replay import ReplayFeed

    feed = ReplayFeed((tmp_path / "two").with_suffix(".npz"), batch_size=4096)
    engine = Engine(settings, feed=feed, clock=ReplayClock())
    try:
        assert engine.allocator.factor("B") == pytest.approx(p["shares"][1] * 2)
        assert engine.allocator.factor("A") == pytest.approx(p["shares"][0] * 2)
    finally:
        engine.close()


def test_bandit_off_means_equal_shares_and_no_events(make_settings, tmp_path) -> None:
    _, rows = _run(make_settings, tmp_path, "off", ab={"bandit": False})
    assert allocations(rows) == []
    assert not any("allocation" in json.loads(r[4]) for r in rows if r[2] == "order_submitted")


def test_three_variants_against_the_control_in_the_ab_table(make_settings, tmp_path) -> None:
    three = [*ACCOUNTS, {"name": "C", "params": {"fast": 4, "slow": 10, "atr_period": 5}}]
    experiment = {"name": "three", "variants": ["B", "A", "C"], "metric": "return_pct"}
    catalogue = default_instruments()
    sim = SimSettings(symbols=SYMBOLS, seed=42, fault_rate=0.01)
    ticks = generate_ticks([catalogue[s] for s in SYMBOLS], sim, T0, 300_000)
    settings = make_settings(
        accounts=three,
        experiments=[experiment],
        engine={"store_ticks": False, "db": tmp_path / "three.db"},
    )
    engine = replay(settings, ticks, tmp_path / "three", batch=4096, symbols=SYMBOLS)
    try:
        rows = engine.conn.execute(
            "SELECT experiment, variant, account, metric, alpha, verdict, diff, share "
            "FROM ab ORDER BY variant"
        ).fetchall()
        events = [p for _, _, kind, _, p in raw_events(engine.conn) if kind == "allocation_changed"]
    finally:
        engine.close()
    assert [r[:4] for r in rows] == [
        ("three", "A", "B", "return_pct"),
        ("three", "B", "A", "return_pct"),
        ("three", "C", "C", "return_pct"),
    ]
    assert {r[4] for r in rows} == {0.025}  # alpha / (N - 1)
    assert rows[0][5] == "control" and rows[0][6] is None
    assert all(r[6] is not None for r in rows[1:])  # each against the control
    assert sum(r[7] for r in rows) == pytest.approx(1.0)
    if events:
        last = json.loads(events[-1])
        assert last["variants"] == ["B", "A", "C"]
        assert [r[7] for r in rows] == last["shares"]
        assert min(last["shares"]) >= FLOOR / 3 - 1e-9
