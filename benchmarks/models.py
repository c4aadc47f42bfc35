"""A setup model's probability for one setup: the compiled predictor, per call.

    python -m benchmarks.models [--calls N]

Each kind (gbm: 100 trees of depth 2, trading/models/train.py's settings; logistic) is fitted
on 2,000 seeded synthetic setups of 49 features with a tenth NaN, compiled
(trading/models/serve.Predictor) and asked for N setups' probabilities one at a time, each
call timed on its own (perf_counter_ns, garbage collection frozen). The figures are the median
and the 99th percentile per call; sklearn's own predict_proba on one row is timed beside it
(200 calls) for comparison. Target: under 100 microseconds per setup.
"""

from __future__ import annotations

import argparse
import gc
import time
from types import SimpleNamespace

import numpy as np

from mikrobot_tui.trading.features import FEATURE_NAMES
from mikrobot_tui.trading.models.serve import Predictor
from mikrobot_tui.trading.models.train import new_model

TARGET_US = 100.0
SKLEARN_CALLS = 200


def setups(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n seeded setups: normal features, a tenth NaN, outcomes lifted by the `sweep` flag."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(FEATURE_NAMES)))
    x[rng.random(x.shape) < 0.1] = np.nan
    sweep = FEATURE_NAMES.index("sweep")
    x[:, sweep] = rng.integers(0, 2, n)
    y = (rng.random(n) < np.where(x[:, sweep] == 1, 0.7, 0.5)).astype(float)
    return x, y


def per_call_ns(call, rows: np.ndarray) -> np.ndarray:
    clock = time.perf_counter_ns
    out = np.empty(len(rows), dtype=np.int64)
    gc.collect()
    gc.freeze()
    for i, row in enumerate(rows):
        t0 = clock()
        call(row)
        out[i] = clock() - t0
    gc.unfreeze()
    return out


def figures(calls: int = 10_000, seed: int = 7) -> dict[str, dict[str, float]]:
    """Per kind: the compiled predictor's median and p99 per call and sklearn's median (us)."""
    from threadpoolctl import threadpool_limits

    x, y = setups(2_000, seed)
    rows, _ = setups(calls, seed + 1)
    found = {}
    for kind in ("gbm", "logistic"):
        model = new_model(kind)
        with threadpool_limits(limits=1):  # as training and serving run
            model.fit(x, y)
            predictor = Predictor(SimpleNamespace(kind=kind, model=model))
            for row in rows[:100]:  # warm
                predictor.probability(row)
            ns = per_call_ns(predictor.probability, rows)
            sk = per_call_ns(lambda r, m=model: m.predict_proba(r[None, :]), rows[:SKLEARN_CALLS])
        found[kind] = {
            "median_us": float(np.median(ns)) / 1e3,
            "p99_us": float(np.percentile(ns, 99)) / 1e3,
            "sklearn_median_us": float(np.median(sk)) / 1e3,
            "calls": calls,
        }
    return found


def flat_figures(calls: int = 10_000, seed: int = 7) -> dict[str, float]:
    """`figures` as one level (gbm_median_us, logistic_p99_us, ...), for `python -m
    benchmarks`."""
    return {f"{kind}_{k}": v for kind, f in figures(calls, seed).items() for k, v in f.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000)
    args = parser.parse_args()
    for kind, f in figures(args.calls).items():
        print(
            f"{kind:8} one setup: {f['median_us']:.1f} us median, {f['p99_us']:.1f} us p99 "
            f"(target < {TARGET_US:.0f}; sklearn predict_proba {f['sklearn_median_us']:,.0f} us; "
            f"{f['calls']:,} calls)"
        )


if __name__ == "__main__":
    main()
