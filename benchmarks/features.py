"""A break-of-structure setup's features: the work per setup, and the book's work per bar.

    python -m benchmarks.features [--setups N] [--repeat R]

Three days of seeded EURUSD M1 bars (and the M5 and H1 bars they make) go through a
`trading.features.FeatureBook` as the strategy feeds it; then `features(point)` is timed on
its own (perf_counter_ns, the book warm) for N setups at alternating sides and levels. The
figure is the median per setup, median of the repeats, with the 99th percentile beside it.
Target (issue 12): under 50 microseconds of feature work per setup. The bars' own upkeep is
printed too (per M1 bar, its M5 and H1 share included).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from typing import Any

import numpy as np

from mikrobot_tui.domain.market import H1, M1, M5, Bar
from mikrobot_tui.trading.features import FeatureBook, SetupPoint

START_NS = 1_767_571_200_000_000_000  # 2026-01-05 00:00 UTC, a Monday
DAYS = 3


def _bars(seed: int = 7) -> list[Bar]:
    """Seeded M1 bars for DAYS days and their M5 and H1 bars, in the order they close."""
    rng = np.random.default_rng(seed)
    n = DAYS * 24 * 60
    close = 1.1 + np.cumsum(rng.normal(0, 0.0002, n))
    open_ = np.r_[1.1, close[:-1]]
    high = np.maximum(open_, close) + rng.uniform(0, 0.0002, n)
    low = np.minimum(open_, close) - rng.uniform(0, 0.0002, n)
    out: list[tuple[int, int, Bar]] = []
    for tf, size in (("M1", 1), ("M5", 5), ("H1", 60)):
        for i in range(0, n - size + 1, size):
            ts = START_NS + i * M1
            hi, lo = float(high[i : i + size].max()), float(low[i : i + size].min())
            b = Bar("EURUSD", tf, ts, float(open_[i]), hi, lo, float(close[i + size - 1]), size, 0)
            out.append((ts + size * M1, size, b))
    out.sort(key=lambda c: (c[0], c[1]))
    return [b for _, _, b in out]


def measure(setups: int = 10_000) -> dict[str, Any]:
    """One run: (per setup ns array, per M1 bar ns of the book's upkeep)."""
    bars = _bars()
    book = FeatureBook()
    t0 = time.perf_counter_ns()
    for b in bars:
        book.on_bar(b)
    upkeep = (time.perf_counter_ns() - t0) / (DAYS * 24 * 60)
    last = bars[-1]
    brk = Bar("EURUSD", "M5", last.ts_open - 3 * M5, 1.1, 1.1006, 1.0998, 1.1005, 5, 0.0)
    points = [
        SetupPoint(
            "EURUSD",
            1 if i % 2 else -1,
            last.close - 0.0003 * (1 if i % 2 else -1),
            brk,
            last.ts_open + H1,
            last.close,
            0.00012,
            0.95,
        )
        for i in range(setups)
    ]
    clock = time.perf_counter_ns
    out = np.empty(setups, dtype=np.int64)
    gc.collect()
    gc.freeze()
    for i, point in enumerate(points):
        t = clock()
        book.features(point)
        out[i] = clock() - t
    gc.unfreeze()
    return {"per_setup_ns": out, "upkeep_ns_per_m1_bar": upkeep}


def figures(setups: int = 10_000, repeat: int = 5) -> dict[str, float]:
    """The benchmark's figures, medians of `repeat` runs (microseconds)."""
    runs = [measure(setups) for _ in range(repeat)]
    return {
        "features_per_setup_us_p50": statistics.median(
            float(np.median(r["per_setup_ns"])) for r in runs
        )
        / 1e3,
        "features_per_setup_us_p99": statistics.median(
            float(np.percentile(r["per_setup_ns"], 99)) for r in runs
        )
        / 1e3,
        "features_upkeep_us_per_m1_bar": statistics.median(r["upkeep_ns_per_m1_bar"] for r in runs)
        / 1e3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setups", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    f = figures(args.setups, args.repeat)
    print(
        f"49 features of a setup: {f['features_per_setup_us_p50']:.1f} us median, "
        f"{f['features_per_setup_us_p99']:.1f} us p99 (target < 50; {args.setups:,} setups, "
        f"median of {args.repeat}); the book's upkeep "
        f"{f['features_upkeep_us_per_m1_bar']:.1f} us per M1 bar (M5 and H1 included)"
    )


if __name__ == "__main__":
    main()
