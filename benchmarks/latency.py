"""Live tick-to-decision latency: one tick at a time through the whole pipeline.

    python -m benchmarks.latency [--ticks N]

Live feeds under low load hand the engine one tick per batch; this times the corridor on
single ticks of the seeded benchmark file (after a warm-up, so indicators are ready and orders
flow) with the default accounts (A on the house strategy bos_retest, B on ema_cross) and the
orchestrator scoring every signal, and prints the median and the 99th percentile of three
groups: every tick; the ticks that close a bar (the strategies and the scorer run there); and
the ticks where an entry was decided (scored, sized, checked and submitted or refused).
DESIGN's target is a p99 under 1 ms for the decisions.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from pathlib import Path

from benchmarks.common import tick_file


def single_tick_times(n_ticks: int, warmup: int) -> dict[str, list[int]]:
    """Nanoseconds of the corridor on each of n_ticks single-tick batches, after warmup ticks:
    every tick, the ticks closing a bar and the ticks deciding entries."""
    from mikrobot_tui.clock import ReplayClock
    from mikrobot_tui.config import load_settings
    from mikrobot_tui.data.feeds import ReplayFeed
    from mikrobot_tui.engine import Engine

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
        for _ in range(warmup):  # indicators ready, positions open
            engine.corridor.process(next(batches))
        decided = _count_entries(engine)
        counts = engine.corridor.counts
        times, at_bar, at_decision = [], [], []
        for _ in range(n_ticks):
            batch = next(batches)
            bars, entries = counts.bars, decided[0]
            t0 = time.perf_counter_ns()
            engine.corridor.process(batch)
            took = time.perf_counter_ns() - t0
            times.append(took)
            if counts.bars != bars:
                at_bar.append(took)
            if decided[0] != entries:
                at_decision.append(took)
        engine.close()
    return {
        "every tick": times,
        "ticks closing a bar": at_bar,
        "ticks deciding entries": at_decision,
    }


def figures(n_ticks: int = 200_000, warmup: int = 100_000) -> dict[str, float]:
    """One run's figures, for `python -m benchmarks`: median and p99 (us) of each group."""
    out = {}
    for label, group in single_tick_times(n_ticks, warmup).items():
        p50, p99, _ = _stats(group)
        key = label.split()[-1]  # tick, bar, entries
        out[f"{key}_p50_us"], out[f"{key}_p99_us"] = p50, p99
    return {k: None if v != v else v for k, v in out.items()}  # NaN: none in the group


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=200_000, help="ticks to time")
    parser.add_argument("--warmup", type=int, default=100_000, help="ticks before timing")
    args = parser.parse_args()
    groups = single_tick_times(args.ticks, args.warmup)
    print(f"tick-to-decision over {len(groups['every tick']):,} single-tick batches (us):")
    print(f"  {'':<22}{'ticks':>9}{'median':>10}{'p99':>10}{'max':>10}")
    for label, group in groups.items():
        print(f"  {label:<22}{len(group):>9,}" + "".join(f"{v:>10.1f}" for v in _stats(group)))
    print("  target: p99 under 1,000 us for the decisions")


def _stats(times: list[int]) -> tuple[float, float, float]:
    if not times:
        return (float("nan"),) * 3
    ordered = sorted(times)
    pct = lambda q: ordered[min(len(ordered) - 1, int(len(ordered) * q))] / 1000  # noqa: E731
    return pct(0.5), pct(0.99), ordered[-1] / 1000


def _count_entries(engine) -> list[int]:
    """A counter of entry decisions (orders submitted by the orchestrator, or refused) that
    the engine's ledger bumps as it emits them."""
    from mikrobot_tui.domain.events import EventKind

    counter = [0]
    emit = engine.ledger.emit

    def counting(ts, kind, account, payload):
        if kind is EventKind.ORDER_REFUSED or (
            kind is EventKind.ORDER_SUBMITTED and "score" in payload
        ):
            counter[0] += 1
        return emit(ts, kind, account, payload)

    engine.ledger.emit = counting
    return counter


if __name__ == "__main__":
    main()
