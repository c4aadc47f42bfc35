"""Replay a generated 1,000,000-tick file through the whole pipeline and print the figures.

    python -m benchmarks.replay [--ticks N] [--repeat R] [--store-ticks]

Each repeat runs in a fresh subprocess on a fresh SQLite file, so peak memory (max RSS) is the
replay's own, and the whole process (start-up, imports, loading the file, the replay, closing)
is timed from outside too. Figures are medians over the repeats; the machines are shared and
noisy, so the script also times a plain Python loop over the same ticks doing what a tick
strategy does (two EMAs of the mid per symbol, crosses, a fill at the ask or the bid on each
cross) and prints the ratio to it.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.common import in_fresh_process, medians, peak_rss_mib, tick_file


def one_run(path: Path, store_ticks: bool = False) -> dict[str, float]:
    """Replay the file once in this process; returns the figures as a dict."""
    path = Path(path)
    from mikrobot_tui.clock import ReplayClock
    from mikrobot_tui.config import load_settings
    from mikrobot_tui.data.feeds import ReplayFeed
    from mikrobot_tui.engine import Engine
    from mikrobot_tui.engine.runner import Runner

    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            None,
            overrides={
                "engine": {
                    "feed": "replay",
                    "db": Path(tmp) / "bench.db",
                    "store_ticks": store_ticks,
                },
                "replay": {"file": path},
            },
        )
        feed = ReplayFeed(path, batch_size=settings.engine.batch_max)
        engine = Engine(settings, feed=feed, clock=ReplayClock())
        engine.start()  # set-up (accounts, instruments) is not part of the replay's speed
        gc.freeze()  # as `mikrobot run` does once its engine has started
        t0 = time.perf_counter()
        stats = Runner(engine).replay(feed.iter_batches())
        wall = time.perf_counter() - t0
        engine.close()
    peak_mib = peak_rss_mib()
    return {
        "ticks": stats.ticks_in,
        "wall_s": wall,
        "ticks_per_s": stats.ticks_in / wall,
        "peak_rss_mib": peak_mib,
        "bars": stats.bars,
        "events": stats.events,
        "rejects": stats.rejects,
    }


def bare_loop_rate(path: Path) -> float:
    """Ticks per second of a plain Python loop doing a tick strategy's work (the yardstick):
    per symbol, EMAs of the mid with alpha 2/51 and 2/201, and on each cross of the two a
    position reversal filled at the ask (buy) or the bid (sell), with its P&L booked."""
    from mikrobot_tui.data.feeds import load_ticks

    ticks, symbols = load_ticks(path)
    syms = ticks["sym"].tolist()
    bids, asks = ticks["bid"].tolist(), ticks["ask"].tolist()
    n = len(symbols)
    a_fast, a_slow = 2 / 51, 2 / 201
    fast, slow = [0.0] * n, [0.0] * n
    seen, side, entry = [False] * n, [0] * n, [0.0] * n
    prev = [0.0] * n
    pnl = 0.0
    t0 = time.perf_counter()
    for s, b, a in zip(syms, bids, asks, strict=True):
        mid = (b + a) * 0.5
        if not seen[s]:
            seen[s], fast[s], slow[s] = True, mid, mid
            continue
        f = fast[s] = fast[s] + a_fast * (mid - fast[s])
        w = slow[s] = slow[s] + a_slow * (mid - slow[s])
        d = f - w
        if d > 0 >= prev[s]:
            if side[s] < 0:
                pnl += entry[s] - a
            side[s], entry[s] = 1, a
        elif d < 0 <= prev[s]:
            if side[s] > 0:
                pnl += b - entry[s]
            side[s], entry[s] = -1, b
        prev[s] = d
    return len(syms) / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--store-ticks", action="store_true", help="also write every tick")
    args = parser.parse_args()
    path = tick_file(args.ticks)
    runs = [
        in_fresh_process("replay", "one_run", path=str(path), store_ticks=args.store_ticks)
        for _ in range(args.repeat)
    ]
    bare = statistics.median(bare_loop_rate(path) for _ in range(3))
    med = medians(runs)
    print(f"replay of {int(med['ticks']):,} ticks through quality, M1 to D1 candles, 2 strategies,")
    print(
        f"orchestrator and paper engine (store_ticks={args.store_ticks}), median of {args.repeat}:"
    )
    print(f"  ticks per second   {med['ticks_per_s']:>14,.0f}")
    print(f"  wall time          {med['wall_s']:>14.3f} s")
    print(f"  whole process      {med['process_s']:>14.3f} s  (start-up, imports, load, close)")
    print(f"  peak memory (RSS)  {med['peak_rss_mib']:>14.1f} MiB")
    print(f"  bars / events      {int(med['bars']):>7,} / {int(med['events']):,}")
    print(f"  rejects            {int(med['rejects']):>14,}")
    ratio = med["ticks_per_s"] / bare
    print(f"  tick-strategy loop {bare:>14,.0f} ticks/s  (plain Python; pipeline = {ratio:.2f}x)")


if __name__ == "__main__":
    main()
