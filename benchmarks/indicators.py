"""A full indicator update per bar: ten streaming indicators on one symbol.

    python -m benchmarks.indicators [--bars N] [--repeat R]

Seeded M1 bars of a random walk around 1.10 (EURUSD-like, with volume) go one at a time
through SMA(20), EMA(20), EMA(50), RSI(14), MACD(12, 26, 9), Bollinger(20, 2), ATR(14), OBV,
the FX-day VWAP and swings of width 2, as a strategy would update them when a bar closes.
Each bar's update of all ten is timed on its own (perf_counter_ns, the indicators warm); the
figure is the median per bar, median of the repeats, with the 99th percentile beside it.
Target: under 50 microseconds.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time

import numpy as np

from mikrobot_tui.trading.indicators import (
    StreamingATR,
    StreamingBollinger,
    StreamingEMA,
    StreamingMACD,
    StreamingOBV,
    StreamingRSI,
    StreamingSMA,
    StreamingSwings,
    StreamingVWAP,
)

START_NS = 1_767_225_600_000_000_000  # 2026-01-01 00:00 UTC
MINUTE_NS = 60_000_000_000
WARM = 100  # bars before timing starts: every indicator past its warm-up


def bars(n: int, seed: int = 7) -> list[tuple[float, float, float, float, int]]:
    """(high, low, close, volume, ts_open) of n seeded M1 bars."""
    rng = np.random.default_rng(seed)
    close = 1.1 + np.cumsum(rng.normal(0, 0.0002, n))
    high = close + rng.uniform(0, 0.0003, n)
    low = close - rng.uniform(0, 0.0003, n)
    volume = rng.integers(1, 200, n).astype(float)  # tick counts, as FX bars carry
    ts = START_NS + np.arange(n, dtype=np.int64) * MINUTE_NS
    return list(
        zip(high.tolist(), low.tolist(), close.tolist(), volume.tolist(), ts.tolist(), strict=True)
    )


def per_bar_ns(series: list[tuple[float, float, float, float, int]]) -> np.ndarray:
    sma, ema20, ema50 = StreamingSMA(20), StreamingEMA(20), StreamingEMA(50)
    rsi, macd, bands = StreamingRSI(14), StreamingMACD(12, 26, 9), StreamingBollinger(20, 2.0)
    atr, obv, vwap, swings = (
        StreamingATR(14),
        StreamingOBV(),
        StreamingVWAP("fx_day"),
        StreamingSwings(2),
    )
    clock = time.perf_counter_ns
    out = np.empty(len(series), dtype=np.int64)
    gc.collect()
    gc.freeze()
    for i, (h, lo, c, v, ts) in enumerate(series):
        t0 = clock()
        sma.update(c)
        ema20.update(c)
        ema50.update(c)
        rsi.update(c)
        macd.update(c)
        bands.update(c)
        atr.update(h, lo, c)
        obv.update(c, v)
        vwap.update(h, lo, c, v, ts)
        swings.update(h, lo)
        out[i] = clock() - t0
    gc.unfreeze()
    assert macd.ready and bands.ready and atr.ready and vwap.ready
    return out[WARM:]


def figures(n_bars: int = 100_000) -> dict[str, float]:
    """One run's figures, for `python -m benchmarks`: median and p99 per bar, us."""
    times = per_bar_ns(bars(n_bars + WARM))
    p50, p99 = float(np.median(times)), float(np.percentile(times, 99))
    return {"p50_us": p50 / 1e3, "p99_us": p99 / 1e3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    series = bars(args.bars + WARM)
    runs = [per_bar_ns(series) for _ in range(args.repeat)]
    p50 = statistics.median(float(np.median(r)) for r in runs) / 1e3
    p99 = statistics.median(float(np.percentile(r, 99)) for r in runs) / 1e3
    print(
        f"ten streaming indicators, one bar: {p50:.1f} us median, {p99:.1f} us p99 "
        f"(target < 50; {args.bars:,} bars, median of {args.repeat})"
    )


if __name__ == "__main__":
    main()
