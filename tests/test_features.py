"""Setup features: every one against an independent computation from whole bar arrays, and the
pattern ones against hand-made markets whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mikrobot_tui.domain.market import H1, M1, M5, Bar
from mikrobot_tui.trading.features import (
    FEATURE_NAMES,
    N_FEATURES,
    FeatureBook,
    SetupPoint,
)
from mikrobot_tui.trading.indicators import atr, bollinger, ema, macd, rsi, swings

START = 1_764_806_400 * 1_000_000_000  # 2025-12-04 00:00 UTC, a Thursday


def walk(minutes: int, seed: int = 7) -> dict[str, np.ndarray]:
    """M1 bars of a random walk around 1.10."""
    rng = np.random.default_rng(seed)
    close = 1.10 + np.cumsum(rng.normal(0, 0.0002, minutes))
    open_ = np.concatenate([[1.10], close[:-1]])
    wick = np.abs(rng.normal(0, 0.0001, (2, minutes)))
    high = np.maximum(open_, close) + wick[0]
    low = np.minimum(open_, close) - wick[1]
    ts = START + np.arange(minutes, dtype=np.int64) * M1
    return {"ts": ts, "open": open_, "high": high, "low": low, "close": close}


def rollup(m1: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
    """Whole bars of `size` M1 bars each (the walk starts on a round hour)."""
    n = len(m1["ts"]) // size
    cut = {k: v[: n * size].reshape(n, size) for k, v in m1.items()}
    return {
        "ts": cut["ts"][:, 0],
        "open": cut["open"][:, 0],
        "high": cut["high"].max(axis=1),
        "low": cut["low"].min(axis=1),
        "close": cut["close"][:, -1],
    }


def bar(symbol: str, tf: str, cols: dict[str, np.ndarray], i: int) -> Bar:
    return Bar(
        symbol,
        tf,
        int(cols["ts"][i]),
        float(cols["open"][i]),
        float(cols["high"][i]),
        float(cols["low"][i]),
        float(cols["close"][i]),
        1,
        1.0,
    )


def upto(cols: dict[str, np.ndarray], end_ns: int, span: int) -> dict[str, np.ndarray]:
    """The bars closed at or before end_ns."""
    keep = cols["ts"] + span <= end_ns
    return {k: v[keep] for k, v in cols.items()}


def reference(point: SetupPoint, m1, m5, h1) -> dict[str, float]:
    """Each feature from whole arrays, written from the docstring's definitions."""
    s = float(point.side)
    out: dict[str, float] = {}
    frames = {"m1": m1, "m5": m5, "h1": h1}
    atrs = {k: atr(v["high"], v["low"], v["close"], 14) for k, v in frames.items()}
    last_atr = {k: (a[-1] if len(a) else math.nan) for k, a in atrs.items()}

    def div(a: float, b: float) -> float:
        return a / b if b > 0 and not math.isnan(a) else math.nan

    for name, windows in (("m1", (1, 5, 15, 60)), ("m5", (1, 3, 12)), ("h1", (1, 4, 24))):
        c = frames[name]["close"]
        for k in windows:
            move = s * (c[-1] - c[-1 - k]) if len(c) > k else math.nan
            out[f"{name}_ret_{k}"] = div(move, last_atr[name])
    for name, windows in (("m1", (15, 60)), ("m5", (12, 48)), ("h1", (24,))):
        f = frames[name]
        for k in windows:
            ok = len(f["high"]) >= k
            span = f["high"][-k:].max() - f["low"][-k:].min() if ok else math.nan
            out[f"{name}_range_{k}"] = div(span, last_atr[name]) if ok else math.nan
    for name in ("m1", "m5", "h1"):
        c = frames[name]["close"]
        out[f"{name}_atr_bps"] = last_atr[name] * 10_000 / c[-1] if len(c) else math.nan
    a5 = atrs["m5"][~np.isnan(atrs["m5"])]
    out["m5_atr_pct"] = float(np.mean(a5[-100:] <= a5[-1])) if len(a5) >= 100 else math.nan
    r = np.diff(np.log(m1["close"]))
    out["vol_regime"] = div(np.std(r[-30:]), np.std(r[-240:])) if len(r) >= 240 else math.nan
    b, atr5 = point.break_bar, last_atr["m5"]
    body, span = abs(b.close - b.open), b.high - b.low
    out["level_dist_atr"] = div(s * (point.price - point.level), atr5)
    out["break_body_atr"] = div(body, atr5)
    out["break_range_atr"] = div(span, atr5)
    out["break_beyond_atr"] = div(s * (b.close - point.level), atr5)
    out["break_body_share"] = body / span if span > 0 else 0.0
    out["minutes_since_break"] = (point.ts - b.ts_open - M5) / M1
    hi, lo = m5["high"], m5["low"]
    gaps = []  # (bull, bear) per M5 bar, the bar being the gap's third
    for i in range(len(hi)):
        if i < 2:
            gaps.append((0.0, 0.0))
        else:
            gaps.append((max(lo[i] - hi[i - 2], 0.0), max(lo[i - 2] - hi[i], 0.0)))
    last = gaps[-12:]
    mine = [g[0] if s > 0 else g[1] for g in last]
    other = [g[1] if s > 0 else g[0] for g in last]
    out["fvg_with"] = float(sum(m > 0 for m in mine))
    out["fvg_against"] = float(sum(o > 0 for o in other))
    newest = next((m for m in reversed(mine) if m > 0), 0.0)
    out["fvg_size_atr"] = div(newest, atr5) if newest > 0 else 0.0
    sh, sl = swings(hi, lo, 2)
    sweeps = []
    for i in range(len(hi)):
        prior_low = sl[:i][~np.isnan(sl[:i])]
        prior_high = sh[:i][~np.isnan(sh[:i])]
        c = m5["close"][i]
        below = above = 0.0
        if len(prior_low) and lo[i] < prior_low[-1] and c > prior_low[-1]:
            below = prior_low[-1] - lo[i]
        if len(prior_high) and hi[i] > prior_high[-1] and c < prior_high[-1]:
            above = hi[i] - prior_high[-1]
        sweeps.append(below if s > 0 else above)
    recent = sweeps[-12:]
    depth = max(recent) if recent else 0.0
    out["sweep"] = 1.0 if depth > 0 else 0.0
    out["sweep_depth_atr"] = div(depth, atr5) if depth > 0 else 0.0
    hits = [i for i, d in enumerate(recent) if d > 0]
    out["sweep_age"] = float(len(recent) - 1 - hits[-1]) if hits else math.nan
    trends = []
    for name in ("m1", "m5", "h1"):
        c = frames[name]["close"]
        e20, e50 = ema(c, 20), ema(c, 50)
        t = math.nan
        if len(c) >= 50:
            t = s * float(np.sign(e20[-1] - e50[-1]))
        out[f"{name}_trend"] = t
        trends.append(t)
    out["trend_alignment"] = sum(trends)
    for name in ("m5", "h1"):
        c = frames[name]["close"]
        e50 = ema(c, 50)
        out[f"{name}_ema_dist_atr"] = (
            div(s * (c[-1] - e50[-1]), last_atr[name]) if len(c) >= 50 else math.nan
        )
    for name in ("m1", "m5"):
        c = frames[name]["close"]
        rs = rsi(c, 14)
        out[f"{name}_rsi"] = s * (rs[-1] - 50) if len(c) > 14 else math.nan
    hist = macd(m5["close"], 12, 26, 9)[2]
    out["m5_macd_hist_atr"] = div(s * hist[-1], atr5) if len(hist) >= 34 else math.nan
    up, mid, low = bollinger(m5["close"], 20, 2.0)
    if len(up) >= 20:
        half = up[-1] - mid[-1]
        out["m5_boll_pos"] = s * (m5["close"][-1] - mid[-1]) / half if half > 0 else 0.0
        out["m5_boll_width_bps"] = (up[-1] - low[-1]) * 10_000 / mid[-1]
    else:
        out["m5_boll_pos"] = out["m5_boll_width_bps"] = math.nan
    seconds = (point.ts // 1_000_000_000) % 86_400
    out["hour_sin"] = math.sin(2 * math.pi * seconds / 86_400)
    out["hour_cos"] = math.cos(2 * math.pi * seconds / 86_400)
    import datetime as dt

    when = dt.datetime.fromtimestamp(point.ts / 1e9, dt.UTC)
    out["weekday"] = float(when.weekday())
    h = when.hour
    out["session"] = float(0 if h < 7 else 1 if h < 12 else 2 if h < 16 else 3 if h < 21 else 4)
    out["spread_atr"] = div(point.spread, atr5)
    out["quality"] = point.quality
    return out


def test_every_feature_matches_its_definition_computed_from_whole_arrays():
    minutes = 3 * 24 * 60
    m1 = walk(minutes)
    m5, h1 = rollup(m1, 5), rollup(m1, 60)
    book = FeatureBook()
    j5 = j60 = 0
    checked = 0
    for i in range(minutes):
        book.on_bar(bar("EURUSD", "M1", m1, i))
        close = int(m1["ts"][i]) + M1
        while j5 < len(m5["ts"]) and m5["ts"][j5] + M5 <= close:
            book.on_bar(bar("EURUSD", "M5", m5, j5))
            j5 += 1
        while j60 < len(h1["ts"]) and h1["ts"][j60] + H1 <= close:
            book.on_bar(bar("EURUSD", "H1", h1, j60))
            j60 += 1
        if i % 97 != 13 or j5 < 3:
            continue
        side = 1 if i % 2 else -1
        brk = bar("EURUSD", "M5", m5, j5 - 2)
        point = SetupPoint(
            "EURUSD",
            side,
            level=brk.close - side * 0.0003,
            break_bar=brk,
            ts=close,
            price=float(m1["close"][i]),
            spread=0.00012,
            quality=0.93,
        )
        got = dict(zip(FEATURE_NAMES, book.features(point).tolist(), strict=True))
        want = reference(point, upto(m1, close, M1), upto(m5, close, M5), upto(h1, close, H1))
        assert set(want) == set(FEATURE_NAMES)
        for name in FEATURE_NAMES:
            assert got[name] == pytest.approx(want[name], rel=1e-9, abs=1e-12, nan_ok=True), (
                name,
                i,
            )
        checked += 1
    assert checked > 40
    # late in the walk every feature is known (H1's 50 bars take 50 hours) but the age of a
    # sweep that may not have happened
    known = dict(zip(FEATURE_NAMES, book.features(point).tolist(), strict=True))
    assert [k for k, v in known.items() if math.isnan(v)] in ([], ["sweep_age"])


def test_features_are_45_or_so_names_each_once():
    assert N_FEATURES == len(set(FEATURE_NAMES)) >= 45


def five(highs_lows_closes, symbol="X") -> FeatureBook:
    """A book fed M5 bars (high, low, close), opens at the previous close."""
    book = FeatureBook()
    prev = highs_lows_closes[0][2]
    for i, (h, lo, c) in enumerate(highs_lows_closes):
        book.on_bar(Bar(symbol, "M5", START + i * M5, prev, h, lo, c, 1, 1.0))
        prev = c
    return book


def point(side: int, ts: int = START, **kw) -> SetupPoint:
    brk = Bar("X", "M5", START, 1.0, 1.3, 0.9, 1.2, 1, 1.0)
    return SetupPoint("X", side, kw.pop("level", 1.0), brk, ts, kw.pop("price", 1.1), **kw)


def value(book: FeatureBook, p: SetupPoint, name: str) -> float:
    return float(book.features(p)[FEATURE_NAMES.index(name)])


def test_a_bullish_fair_value_gap_counts_for_a_buy_and_against_a_sell():
    # bar c's low 1.05 is above bar a's high 1.02: a gap of 0.03
    book = five([(1.02, 1.00, 1.01), (1.08, 1.01, 1.07), (1.09, 1.05, 1.08)])
    assert value(book, point(1), "fvg_with") == 1
    assert value(book, point(1), "fvg_against") == 0
    assert value(book, point(-1), "fvg_against") == 1
    assert value(book, point(-1), "fvg_with") == 0
    # without an ATR yet the size is unknown, not zero
    assert math.isnan(value(book, point(1), "fvg_size_atr"))


def test_a_grab_of_the_lows_before_a_bullish_break_is_a_sweep():
    # a swing low at 0.98 (bar 2, width 2, confirmed at bar 4), then bar 6 dips to 0.96 and
    # closes back above it at 1.00
    rows = [
        (1.02, 1.00, 1.01),
        (1.02, 0.99, 1.00),
        (1.01, 0.98, 1.00),
        (1.02, 0.99, 1.01),
        (1.03, 1.00, 1.02),
        (1.03, 1.00, 1.02),
        (1.02, 0.96, 1.00),
        (1.04, 1.00, 1.03),
    ]
    book = five(rows)
    assert value(book, point(1), "sweep") == 1
    assert value(book, point(1), "sweep_age") == 1  # one bar before the last
    assert value(book, point(-1), "sweep") == 0
    assert math.isnan(value(book, point(-1), "sweep_age"))
    # a dip that closes below the swing is a break of it, not a grab
    rows[6] = (1.02, 0.96, 0.97)
    assert value(five(rows), point(1), "sweep") == 0


def test_the_clock_features_of_a_friday_evening_in_new_york_hours():
    ts = 1_796_412_600 * 1_000_000_000  # 2026-12-04 19:30 UTC, a Friday
    book = FeatureBook()
    got = book.features(point(1, ts=ts))
    assert got[FEATURE_NAMES.index("weekday")] == 4
    assert got[FEATURE_NAMES.index("session")] == 3
    angle = 2 * math.pi * 19.5 / 24
    assert got[FEATURE_NAMES.index("hour_sin")] == pytest.approx(math.sin(angle))
    assert got[FEATURE_NAMES.index("hour_cos")] == pytest.approx(math.cos(angle))


def test_the_break_bar_features_and_an_empty_book():
    # break bar: open 1.0, high 1.3, low 0.9, close 1.2; level 1.0; five minutes after it closed
    p = point(1, ts=START + M5 + 5 * M1, level=1.0, price=1.1)
    got = dict(zip(FEATURE_NAMES, FeatureBook().features(p).tolist(), strict=True))
    assert got["break_body_share"] == pytest.approx(0.2 / 0.4)
    assert got["minutes_since_break"] == 5
    assert math.isnan(got["break_body_atr"])  # no M5 seen: no ATR
    assert math.isnan(got["m1_ret_1"]) and math.isnan(got["spread_atr"])
    assert got["fvg_with"] == 0 and got["sweep"] == 0


def test_a_repeated_or_late_bar_counts_once():
    m1 = walk(300)
    once, twice = FeatureBook(), FeatureBook()
    for i in range(300):
        b = bar("EURUSD", "M1", m1, i)
        once.on_bar(b)
        twice.on_bar(b)
        twice.on_bar(b)
        if i > 2:
            twice.on_bar(bar("EURUSD", "M1", m1, i - 2))
    p = point(1)
    p = SetupPoint("EURUSD", 1, 1.1, p.break_bar, int(m1["ts"][-1]) + M1, 1.1)
    np.testing.assert_array_equal(once.features(p), twice.features(p))
