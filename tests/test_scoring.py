"""The orchestrator's score: each factor alone, the sum, the verdict, the engine's events."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from engine_data import FAST_ACCOUNTS, replay, waves

from mikrobot_tui.config import OrchestratorSettings
from mikrobot_tui.domain.instruments import default_instruments
from mikrobot_tui.domain.market import Bar
from mikrobot_tui.domain.orders import Side, Signal
from mikrobot_tui.trading.scoring import SignalScorer, Verdict

CAT = default_instruments()
EURUSD, USDJPY, BTC = CAT["EURUSD"], CAT["USDJPY"], CAT["BTCUSDT"]
NS = 1_000_000_000


def ts(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()) * NS


OVERLAP = ts("2026-03-04 14:00")  # a Wednesday: London and New York both open


def signal(side=Side.BUY, price=1.1000, at=OVERLAP, symbol="EURUSD", confidence=1.0) -> Signal:
    return Signal("s", symbol, side, at, price, 0.0010, 0.0025, confidence=confidence)


def bar(tf: str, i: int, close: float, rng: float = 0.0008, symbol="EURUSD") -> Bar:
    return Bar(symbol, tf, i * 60 * NS, close, close + rng / 2, close - rng / 2, close, 10, 0.0)


def feed_trend(scorer: SignalScorer, closes, symbol="EURUSD") -> None:
    for i, c in enumerate(closes):
        scorer.note_bar(bar("H1", i, c, symbol=symbol))


def feed_atr(scorer: SignalScorer, pips: float, inst=EURUSD, n: int = 20, price=1.1) -> None:
    for i in range(n):  # every bar's range `pips` and no gaps: the ATR is the range
        scorer.note_bar(bar("M5", i, price, pips * inst.pip_size, symbol=inst.symbol))


def score(scorer, sig=None, inst=EURUSD, spread=0.00001, quality=1.0, r=()):
    return scorer.score(
        sig or signal(),
        inst,
        spread=spread,
        quality=quality,
        min_quality=0.95,
        r_multiples=list(r),
    )


def factor(s, name):
    return next(f for f in s.factors if f.name == name)


def test_the_contributions_add_up_to_the_confidence_and_name_every_factor() -> None:
    scorer = SignalScorer(OrchestratorSettings(weights={"trend": 3.0}))
    s = score(scorer)
    names = [f.name for f in s.factors]
    assert names == ["trend", "atr", "session", "spread", "quality", "record", "signal"]
    assert sum(f.contribution for f in s.factors) == pytest.approx(s.confidence)
    assert factor(s, "trend").weight == 3.0
    assert factor(s, "trend").contribution == pytest.approx(3.0 * 0.5 / 9)
    payload = s.to_payload()
    assert json.loads(json.dumps(payload))["factors"][0]["name"] == "trend"


@pytest.mark.parametrize(
    ("closes", "side", "expected"),
    [
        (range(100, 130), Side.BUY, 1.0),  # rising, price above: with a long
        (range(100, 130), Side.SELL, 0.0),  # against a short
        (range(130, 100, -1), Side.SELL, 1.0),
    ],
)
def test_the_higher_timeframe_trend_scores_with_and_against(closes, side, expected) -> None:
    scorer = SignalScorer(OrchestratorSettings())
    feed_trend(scorer, [c / 100 for c in closes])
    price = closes[-1] / 100
    s = score(scorer, signal(side=side, price=price))
    assert factor(s, "trend").score == expected


def test_a_mixed_trend_scores_half_and_too_few_bars_is_neutral_and_says_so() -> None:
    scorer = SignalScorer(OrchestratorSettings())
    feed_trend(scorer, [1 + i / 100 for i in range(30)])  # rising EMA near 1.195
    mixed = factor(score(scorer, signal(price=1.0)), "trend")  # long below a rising EMA
    assert mixed.score == 0.5 and "mixed" in mixed.why
    fresh = SignalScorer(OrchestratorSettings())
    feed_trend(fresh, [1.1] * 5)
    young = factor(score(fresh), "trend")
    assert young.score == 0.5 and "5 of 21 H1 bars" in young.why


@pytest.mark.parametrize(
    ("pips", "expected"), [(8, 1.0), (4, 1.0), (3, 0.5), (2, 0.0), (22.5, 0.5)]
)
def test_the_atr_band_is_full_inside_and_falls_off_outside(pips, expected) -> None:
    scorer = SignalScorer(OrchestratorSettings())  # band [4, 15] pips
    feed_atr(scorer, pips)
    f = factor(score(scorer), "atr")
    assert f.value == pytest.approx(pips)
    assert f.score == pytest.approx(expected)


def test_the_atr_band_of_crypto_is_in_basis_points_of_the_price() -> None:
    scorer = SignalScorer(OrchestratorSettings())
    for i in range(20):  # a range of 180 every bar: 30 bps of 60,000
        scorer.note_bar(Bar("BTCUSDT", "M5", i * 300 * NS, 60000, 60090, 59910, 60000, 9, 1))
    f = factor(score(scorer, signal(symbol="BTCUSDT", price=60000), BTC, spread=1.0), "atr")
    assert f.value == pytest.approx(30, rel=0.05) and f.score == 1.0 and "bps" in f.why


@pytest.mark.parametrize(
    ("when", "symbol", "expected"),
    [
        ("2026-03-04 14:00", "EURUSD", 1.0),  # the overlap
        ("2026-03-04 02:00", "EURUSD", 0.25),  # Asia only: not a session of EURUSD
        ("2026-03-04 02:00", "USDJPY", 1.0),  # but of the yen
        ("2026-07-01 07:30", "EURUSD", 1.0),  # 08:30 in London in summer (BST)
        ("2026-01-07 07:30", "EURUSD", 0.25),  # 07:30 in London in winter: not yet
        ("2026-03-07 14:00", "EURUSD", 0.25),  # a Saturday
        ("2026-03-07 03:00", "BTCUSDT", 1.0),  # crypto never closes
    ],
)
def test_the_session_is_judged_on_each_citys_clock(when, symbol, expected) -> None:
    scorer = SignalScorer(OrchestratorSettings())
    s = score(scorer, signal(symbol=symbol, at=ts(when)), CAT[symbol])
    assert factor(s, "session").score == expected


def test_a_symbol_can_name_its_own_sessions() -> None:
    scorer = SignalScorer(OrchestratorSettings(sessions={"EURUSD": ["asia"]}))
    s = score(scorer, signal(at=ts("2026-03-04 02:00")))
    assert factor(s, "session").score == 1.0


def test_spread_quality_and_record_scale_as_documented() -> None:
    scorer = SignalScorer(OrchestratorSettings())
    feed_atr(scorer, 10)  # ATR 0.0010
    s = score(scorer, spread=0.00025, quality=0.975, r=[1.0] * 3 + [-0.5] * 3)
    assert factor(s, "spread").value == pytest.approx(0.25)
    assert factor(s, "spread").score == pytest.approx(0.5)  # 0 at 0.5 ATR
    assert factor(s, "quality").score == pytest.approx(0.5)  # halfway from 0.95 to 1
    assert factor(s, "record").value == pytest.approx(0.25)
    assert factor(s, "record").score == pytest.approx(0.625)
    few = score(scorer, r=[2.0] * 4)
    assert factor(few, "record").score == 0.5 and "4 closed trades" in factor(few, "record").why


def test_the_verdict_approves_resizes_or_refuses_by_the_thresholds() -> None:
    scorer = SignalScorer(OrchestratorSettings())
    feed_trend(scorer, [1 + i / 1000 for i in range(30)])
    feed_atr(scorer, 8)
    good = score(scorer, signal(price=1.04), r=[1.5] * 6)
    assert good.verdict is Verdict.APPROVE and good.risk_multiplier == 1.0
    night = signal(side=Side.SELL, price=1.04, at=ts("2026-03-04 02:00"), confidence=0.4)
    meh = score(scorer, night, r=[0.0] * 6)
    assert meh.verdict is Verdict.RESIZE
    assert meh.risk_multiplier == pytest.approx(meh.confidence / 0.7)
    bad = score(scorer, night, spread=0.001, quality=0.95, r=[-1.0] * 6)
    assert bad.verdict is Verdict.REFUSE and bad.risk_multiplier == 0.0
    assert bad.reason.startswith(f"confidence {bad.confidence:.2f} refuse")


def test_every_engine_decision_carries_its_factors_and_a_refusal_says_which(
    make_settings, tmp_path
) -> None:
    settings = make_settings(accounts=FAST_ACCOUNTS)
    engine = replay(settings, waves(4000), tmp_path / "run", batch=500)
    rows = engine.conn.execute(
        "SELECT kind, payload FROM events WHERE kind IN ('order_submitted', 'order_refused')"
    ).fetchall()
    orders = [json.loads(p) for k, p in rows if k == "order_submitted"]
    submitted = [p for p in orders if p["intent"] == "open" and "parent_id" not in p]
    assert submitted, "the fast EMA accounts trade on the waves"
    for p in submitted:
        assert p["score"]["verdict"] in ("approve", "resize")
        assert len(p["score"]["factors"]) == 7
        total = sum(f["contribution"] for f in p["score"]["factors"])
        assert total == pytest.approx(p["score"]["confidence"], abs=1e-5)

    strict = make_settings(
        accounts=FAST_ACCOUNTS,
        engine={"db": tmp_path / "strict.db"},
        orchestrator={"approve_at": 1.0, "refuse_below": 0.99},
    )
    engine = replay(strict, waves(4000), tmp_path / "strict", batch=500)
    rows = engine.conn.execute(
        "SELECT kind, payload FROM events WHERE kind IN ('order_submitted', 'order_refused')"
    ).fetchall()
    entries = [(k, p) for k, p in rows if json.loads(p).get("intent", "open") == "open"]
    entries = [(k, p) for k, p in entries if "parent_id" not in json.loads(p)]
    assert entries and all(k == "order_refused" for k, _ in entries)
    reason = json.loads(rows[0][1])["reason"]
    assert reason.startswith("confidence ") and " refuse: " in reason


def test_a_restarted_engine_scores_with_the_atr_it_learned_from_stored_bars(
    make_settings, tmp_path
) -> None:
    settings = make_settings(accounts=FAST_ACCOUNTS)
    ticks = waves(6000)
    first = replay(settings, ticks[:4000], tmp_path / "one", batch=500)
    assert first.scorer.atr("EURUSD") is not None
    last_seq = first.ledger.log.last_seq
    first.close()
    again = replay(settings, ticks[4000:], tmp_path / "two", batch=500)
    rows = again.conn.execute(
        "SELECT payload FROM events WHERE kind IN ('order_submitted', 'order_refused') "
        "AND seq > ? ORDER BY seq",
        (last_seq,),
    ).fetchall()
    scores = [json.loads(p)["score"] for (p,) in rows if "score" in json.loads(p)]
    assert scores, "the accounts decide again after the restart"
    atr = next(f for f in scores[0]["factors"] if f["name"] == "atr")
    # 15 M5 bars would take 75 minutes to come anew: the first decision had them from the store
    assert atr["value"] is not None, atr["why"]


def test_the_readme_example_scores_as_written() -> None:
    """README: a EURUSD long at 02:00 UTC against a falling H1 EMA, clean ATR and data, no
    record: (0 + 1 + 0.25 + 0.9 + 1 + 0.5 + 1) / 7 = 0.66, resized to 95% of its risk."""
    scorer = SignalScorer(OrchestratorSettings())
    feed_trend(scorer, [1.2 - i / 1000 for i in range(30)])
    feed_atr(scorer, 10)  # ATR 0.0010: a spread of 0.05 ATR scores 0.9
    s = score(scorer, signal(price=1.15, at=ts("2026-03-04 02:00")), spread=0.00005)
    assert [round(f.score, 2) for f in s.factors] == [0.0, 1.0, 0.25, 0.9, 1.0, 0.5, 1.0]
    assert round(s.confidence, 2) == 0.66 and s.verdict is Verdict.RESIZE
    assert round(s.risk_multiplier, 2) == 0.95


def test_a_signal_without_a_stop_leaves_the_record_out_and_is_not_refused_for_it() -> None:
    scorer = SignalScorer(OrchestratorSettings())
    feed_atr(scorer, 8)
    stopless = replace(signal(), stop_distance=0.0, take_profit_distance=0.0, units=100_000)
    s = score(scorer, stopless, r=[-1.0] * 10)  # a losing record would pull a stopped one down
    record = factor(s, "record")
    assert record.weight == 0.0 and record.contribution == 0.0 and "no stop" in record.why
    assert sum(f.contribution for f in s.factors) == pytest.approx(s.confidence)
    assert s.verdict is not Verdict.REFUSE
    with_stop = score(scorer, signal(), r=[-1.0] * 10)
    assert factor(with_stop, "record").score == 0.0
    assert s.confidence > with_stop.confidence


def test_with_only_the_record_weighted_a_stopless_signal_scores_neutral() -> None:
    weights = dict.fromkeys(["trend", "atr", "session", "spread", "quality", "signal"], 0.0)
    scorer = SignalScorer(OrchestratorSettings(weights=weights))
    stopless = replace(signal(), stop_distance=0.0, units=100_000)
    assert score(scorer, stopless).confidence == pytest.approx(0.5)
