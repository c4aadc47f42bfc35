"""Live tick-to-decision latency: one tick at a time through the whole pipeline.

    python -m benchmarks.latency [--ticks N]

Live feeds under low load hand the engine one tick per batch; this times process_batch on
single ticks of the seeded benchmark file (after a warm-up, so indicators are ready and orders
flow) and prints the median and the 99th percentile. DESIGN's target is a p99 under 1 ms.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from pathlib import Path

from benchmarks.replay import tick_file


def main() -> None:
    from mikrobot_tui.clock import ReplayClock
    from mikrobot_tui.config import load_settings
    from mikrobot_tui.data.feeds import ReplayFeed
    from mikrobot_tui.engine import Engine

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=20_000, help="ticks to time")
    args = parser.parse_args()
    path = tick_file(1_000_000)
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            None,
            overrides={
                "engine": {"feed": "replay", "db": Path(tmp) / "lat.db", "store_ticks": False},
                "replay": {"file": path},
            },
        )
        feed = ReplayFeed(path, batch_size=1)
        engine = Engine(settings, feed=feed, clock=ReplayClock())
        engine.start()
        gc.freeze()  # as `mikrobot run` does once its engine has started
        batches = feed.iter_batches()
        for _ in range(20_000):  # warm-up: indicators ready, positions open
            engine.corridor.process(next(batches))
        times = []
        for _ in range(args.ticks):
            batch = next(batches)
            t0 = time.perf_counter_ns()
            engine.corridor.process(batch)
            times.append(time.perf_counter_ns() - t0)
        engine.close()
    times.sort()
    pct = lambda q: times[min(len(times) - 1, int(len(times) * q))] / 1000  # noqa: E731
    print(f"tick-to-decision over {len(times):,} single-tick batches:")
    print(f"  median {pct(0.5):8.1f} us")
    print(f"  p99    {pct(0.99):8.1f} us   (target: under 1,000 us)")
    print(f"  max    {times[-1] / 1000:8.1f} us")


if __name__ == "__main__":
    main()
