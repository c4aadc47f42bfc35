"""The fill model: latency, the book walk, slippage and impact, liquidity, volatility, books.

Every expected number here is worked out by hand in the comment beside it.
"""

from __future__ import annotations

import json
import math
import statistics
from types import SimpleNamespace

import numpy as np
import pytest
from pydantic import BaseModel

from mikrobot_tui.config import PaperSettings, SimSettings
from mikrobot_tui.data.feeds import MergedFeed, SimFeed
from mikrobot_tui.data.feeds.binance import BinanceFeed
from mikrobot_tui.data.sim import SimMarket
from mikrobot_tui.data.ws import WsSettings
from mikrobot_tui.domain.instruments import default_instruments
from mikrobot_tui.domain.market import NS_PER_SECOND, Depth
from mikrobot_tui.domain.orders import Side
from mikrobot_tui.paper.fillmodel import (
    Books,
    LatencyModel,
    RecentVolatility,
    impact,
    liquidity_for,
    slippage,
    walk_book,
)
from mikrobot_tui.trading.indicators import atr

MS = 1_000_000
ASKS = np.array([[100.0, 1.0], [101.0, 2.0], [102.0, 5.0]])
BIDS = np.array([[99.0, 1.0], [98.0, 2.0], [97.0, 5.0]])
CATALOGUE = default_instruments()


def paper(**keys: object) -> SimpleNamespace:
    base: dict[str, object] = dict(
        latency_ms=50.0,
        latency_model="uniform",
        latency_max_ms=200.0,
        latency_sigma=0.5,
        latency_seed=7,
    )
    return SimpleNamespace(**{**base, **keys})


# ------------------------------------------------------------------------------ the book walk


def test_a_market_buy_walks_three_levels_at_their_volume_weighted_price() -> None:
    filled, vwap = walk_book(ASKS, 3.5, None, Side.BUY)
    # 1 at 100, 2 at 101, 0.5 at 102
    assert filled == 3.5
    assert vwap == pytest.approx((100 * 1 + 101 * 2 + 102 * 0.5) / 3.5, abs=1e-12)
    assert vwap == pytest.approx(100.85714285714286, abs=1e-12)


def test_a_limited_buy_stops_at_its_limit_and_fills_partially() -> None:
    filled, vwap = walk_book(ASKS, 10.0, 101.0, Side.BUY)
    # 102 is above the limit: 1 at 100 and 2 at 101, the other 7 are left to the time in force
    assert filled == 3.0
    assert vwap == pytest.approx((100 + 202) / 3, abs=1e-12)


def test_an_order_bigger_than_the_book_takes_all_of_it() -> None:
    filled, vwap = walk_book(ASKS, 10.0, None, Side.BUY)
    assert filled == 8.0
    assert vwap == pytest.approx((100 + 202 + 510) / 8, abs=1e-12)  # 101.5


def test_a_sell_walks_the_bids_down_and_never_below_its_limit() -> None:
    filled, vwap = walk_book(BIDS, 4.0, None, Side.SELL)
    assert (filled, vwap) == (4.0, pytest.approx((99 + 196 + 97) / 4, abs=1e-12))  # 98
    filled, vwap = walk_book(BIDS, 4.0, 98.5, Side.SELL)
    assert (filled, vwap) == (1.0, 99.0)  # 98 is below the limit
    filled, vwap = walk_book(BIDS, 2.5, 98.0, Side.SELL)
    assert filled == 2.5 and vwap == pytest.approx((99 + 98 * 1.5) / 2.5, abs=1e-12)


def test_nothing_fills_when_the_best_level_is_past_the_limit_or_the_book_is_empty() -> None:
    filled, vwap = walk_book(ASKS, 1.0, 99.5, Side.BUY)
    assert filled == 0.0 and math.isnan(vwap)
    filled, vwap = walk_book(np.zeros((0, 2)), 1.0, None, Side.BUY)
    assert filled == 0.0 and math.isnan(vwap)
    filled, vwap = walk_book(ASKS, 0.0, None, Side.BUY)
    assert filled == 0.0 and math.isnan(vwap)


def test_a_limit_exactly_at_a_level_takes_that_level() -> None:
    assert walk_book(ASKS, 1.0, 100.0, Side.BUY) == (1.0, 100.0)
    assert walk_book(BIDS, 1.0, 99.0, Side.SELL) == (1.0, 99.0)


# ------------------------------------------------------------------------------ latency


def test_uniform_latency_stays_in_its_bounds_and_is_the_same_for_the_same_order() -> None:
    model = LatencyModel(paper())
    ids = [f"A-{i}" for i in range(2000)]
    samples = [model.sample_ns(i) for i in ids]
    assert min(samples) >= 50 * MS and max(samples) <= 200 * MS
    assert len(set(samples)) > 1990  # different orders, different latencies
    assert min(samples) < 55 * MS and max(samples) > 195 * MS  # the whole range is used
    assert statistics.mean(samples) == pytest.approx(125 * MS, rel=0.03)
    again = LatencyModel(paper())  # a new run, orders asked in another order
    assert [again.sample_ns(i) for i in reversed(ids)] == samples[::-1]
    other_seed = LatencyModel(paper(latency_seed=8))
    assert sum(other_seed.sample_ns(i) == s for i, s in zip(ids, samples, strict=True)) < 5


def test_lognormal_latency_has_its_median_at_latency_ms_and_is_capped() -> None:
    model = LatencyModel(paper(latency_model="lognormal"))
    samples = [model.sample_ns(f"order-{i}") for i in range(20_001)]
    # the median of a log-normal is exp(mu) = latency_ms; the cap at 200 ms (4 x the median,
    # 2.8 sigma) cuts only the upper tail, so the median stays
    assert statistics.median(samples) == pytest.approx(50 * MS, rel=0.03)
    assert max(samples) == 200 * MS and min(samples) > 0
    logs = np.log(np.array(samples, dtype=float) / (50 * MS))
    assert np.std(logs[logs < math.log(4)]) == pytest.approx(0.5, rel=0.1)
    assert model.sample_ns("order-7") == LatencyModel(paper(latency_model="lognormal")).sample_ns(
        "order-7"
    )


def test_fixed_latency_and_the_settings_of_today() -> None:
    assert LatencyModel(paper(latency_model="fixed")).sample_ns("x") == 50 * MS
    # today's PaperSettings has latency_ms only: the others take their documented defaults
    model = LatencyModel(PaperSettings(latency_ms=20.0))
    assert model.kind == "uniform"
    assert all(20 * MS <= model.sample_ns(str(i)) <= 200 * MS for i in range(100))
    with pytest.raises(ValueError, match="latency_model"):
        LatencyModel(paper(latency_model="gaussian"))


# ------------------------------------------------------------------------------ slippage, impact


def test_slippage_is_a_fraction_of_the_spread_plus_a_fraction_of_volatility() -> None:
    # 0.1 x 0.0002 + 0.05 x 0.0010 = 0.00002 + 0.00005
    assert slippage(0.0002, 0.0010, PaperSettings()) == pytest.approx(0.00007, abs=1e-15)
    custom = SimpleNamespace(slippage_spread=0.5, slippage_volatility=0.0)
    assert slippage(0.0002, 0.0010, custom) == pytest.approx(0.0001, abs=1e-15)
    assert slippage(0.0, 0.0, PaperSettings()) == 0.0
    assert slippage(math.nan, 0.001, PaperSettings()) == 0.0


def test_impact_is_zero_within_the_touch_and_square_root_beyond() -> None:
    assert impact(5.0, 10.0, 200.0, 0.001, 0.5) == 0.0
    assert impact(10.0, 10.0, 200.0, 0.001, 0.5) == 0.0
    # 50 lots beyond the touch of a 200-lot minute: 0.5 x 0.001 x sqrt(0.25) = 0.00025
    assert impact(60.0, 10.0, 200.0, 0.001, 0.5) == pytest.approx(0.00025, abs=1e-15)
    # four times the excess, twice the impact
    assert impact(210.0, 10.0, 200.0, 0.001, 0.5) == pytest.approx(0.0005, abs=1e-15)
    assert impact(60.0, 10.0, 200.0, 0.0, 0.5) == 0.0  # no volatility yet
    with pytest.raises(ValueError, match="typical_lots"):
        impact(60.0, 10.0, 0.0, 0.001, 0.5)


class Liquidity(BaseModel):
    touch_lots: float = 10.0
    typical_lots: float = 200.0


def test_liquidity_by_symbol_then_asset_class_then_the_defaults() -> None:
    defaults = PaperSettings()  # no [paper.liquidity] yet
    assert liquidity_for(defaults, CATALOGUE["EURUSD"]) == (10.0, 200.0)
    assert liquidity_for(defaults, CATALOGUE["USDJPY"]) == (10.0, 200.0)
    assert liquidity_for(defaults, CATALOGUE["XAUUSD"]) == (5.0, 50.0)
    assert liquidity_for(defaults, CATALOGUE["US30"]) == (10.0, 100.0)
    assert liquidity_for(defaults, CATALOGUE["USOIL"]) == (5.0, 50.0)
    assert liquidity_for(defaults, CATALOGUE["BTCUSDT"]) == (2.0, 50.0)
    configured = SimpleNamespace(
        liquidity={
            "forex": Liquidity(touch_lots=3.0, typical_lots=30.0),
            "EURUSD": {"touch_lots": 1.0},  # only the touch: typical from the class
            "BTCUSDT": Liquidity(touch_lots=0.5, typical_lots=12.0),
        }
    )
    assert liquidity_for(configured, CATALOGUE["EURUSD"]) == (1.0, 30.0)
    assert liquidity_for(configured, CATALOGUE["GBPUSD"]) == (3.0, 30.0)
    assert liquidity_for(configured, CATALOGUE["BTCUSDT"]) == (0.5, 12.0)
    assert liquidity_for(configured, CATALOGUE["ETHUSDT"]) == (2.0, 50.0)


# ------------------------------------------------------------------------------ volatility


def random_bars(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 1.1 + np.cumsum(rng.normal(0, 0.0003, n))
    high = close + rng.uniform(0, 0.0004, n)
    low = close - rng.uniform(0, 0.0004, n)
    return high, low, close


def test_recent_volatility_is_the_atr_of_the_same_bars() -> None:
    vol = RecentVolatility()
    assert vol.value(0) == 0.0 and vol.value(3) == 0.0  # before any bar
    h0, l0, c0 = random_bars(300, 1)
    h2, l2, c2 = random_bars(300, 2)
    expected0, expected2 = atr(h0, l0, c0, 14), atr(h2, l2, c2, 14)
    for i in range(300):  # two symbols interleaved, each its own ATR
        vol.on_bar(0, h0[i], l0[i], c0[i])
        vol.on_bar(2, h2[i], l2[i], c2[i])
        if i >= 14:
            assert abs(vol.value(0) - expected0[i]) <= 1e-12
            assert abs(vol.value(2) - expected2[i]) <= 1e-12
        assert vol.ready(0) == (i >= 14)
    assert vol.value(1) == 0.0  # a symbol without bars


def test_recent_volatility_before_fifteen_bars_is_the_mean_true_range_so_far() -> None:
    vol = RecentVolatility()
    vol.on_bar(0, 1.1010, 1.1000, 1.1005)
    assert vol.value(0) == pytest.approx(0.0010, abs=1e-15)  # the first bar: high - low
    vol.on_bar(0, 1.1030, 1.1020, 1.1025)  # gapped up: TR = 1.1030 - 1.1005
    assert vol.value(0) == pytest.approx(0.0025, abs=1e-15)
    vol.on_bar(0, 1.1026, 1.1022, 1.1024)  # TR = 0.0004 (inside the previous close)
    assert vol.value(0) == pytest.approx((0.0025 + 0.0004) / 2, abs=1e-15)
    assert not vol.ready(0)


# ------------------------------------------------------------------------------ books


def test_a_book_serves_the_side_an_order_takes_until_it_is_stale() -> None:
    books = Books()
    t0 = 1_700_000_000 * NS_PER_SECOND
    assert books.levels("BTCUSDT", Side.BUY, t0) is None  # no book yet
    books.update("BTCUSDT", t0, BIDS, ASKS)
    assert books.levels("BTCUSDT", Side.BUY, t0) is ASKS
    assert books.levels("BTCUSDT", Side.SELL, t0 + 2 * NS_PER_SECOND) is BIDS  # 2 s: still fresh
    assert books.levels("BTCUSDT", Side.BUY, t0 + 2 * NS_PER_SECOND + 1) is None  # stale
    assert books.levels("ETHUSDT", Side.BUY, t0) is None
    books.update("BTCUSDT", t0 - 1, ASKS, BIDS)  # an older book does not replace a newer one
    assert books.levels("BTCUSDT", Side.BUY, t0) is ASKS
    books.update("BTCUSDT", t0 + 5, np.zeros((0, 2)), ASKS)
    assert books.levels("BTCUSDT", Side.SELL, t0 + 5) is None  # an empty side is no book
    assert books.ts("BTCUSDT") == t0 + 5 and books.ts("ETHUSDT") is None


def test_a_binance_depth_frame_reaches_the_book_walk_through_the_feed() -> None:
    feed = BinanceFeed(["BTCUSDT"], {}, ["bookTicker", "depth"], WsSettings(("ws://unused",)))
    frame = {
        "stream": "btcusdt@depth20@100ms",
        "data": {
            "lastUpdateId": 1,
            "bids": [["99.0", "1.0"], ["98.0", "2.0"]],
            "asks": [["100.0", "1.0"], ["101.0", "2.0"], ["102.0", "5.0"]],
        },
    }
    recv = 1_700_000_000 * NS_PER_SECOND
    feed.parser(json.dumps(frame), recv)
    assert feed.take_rejects() == []
    market = SimMarket([CATALOGUE["EURUSD"]], SimSettings(), recv)
    sim = SimFeed(market, speed=1, step_s=0.01, history_ns=0)
    assert sim.books() == {}
    merged = MergedFeed([sim, feed])
    depths = merged.books()
    assert list(depths) == ["BTCUSDT"] and isinstance(depths["BTCUSDT"], Depth)
    books = Books()
    books.refresh(depths)
    asks = books.levels("BTCUSDT", Side.BUY, recv + 100 * MS)
    assert asks is not None
    filled, vwap = walk_book(asks, 3.5, None, Side.BUY)
    assert filled == 3.5 and vwap == pytest.approx(353 / 3.5, abs=1e-12)
    assert books.levels("BTCUSDT", Side.SELL, recv + 3 * NS_PER_SECOND) is None
