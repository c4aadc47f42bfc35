"""History: candles built per second, and 1,000 stored bars read back.

    python -m benchmarks.bars [--ticks N] [--repeat R]

1. Candle aggregation: the seeded benchmark ticks (six simulated symbols, three FX symbols on
   New York's trading day) through a CandleSet of M1, M5, M15, H1, H4 and D1 in batches of
   10,000, as the corridor feeds it; ticks per second, median of R runs.
2. Reading bars: a new SQLite file holding 200,000 M1 bars of each of three symbols (and their
   longer timeframes), then `bars(conn, symbol, "M1", start, end)` for 1,000 bars at a
   different place each call (the pages are cached by SQLite, the rows are not), and
   `last_bars(conn, symbol, "M1", 1000)`; the median call of 200, median of R runs. Target:
   1,000 M1 bars in under 2 ms.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import seeded_ticks, seeded_ticks_cli

N_BARS = 200_000
CALLS = 200


def candles_per_second(ticks: np.ndarray, symbols: list[str]) -> float:
    from mikrobot_tui.config.sections import QualitySettings
    from mikrobot_tui.data.candles import CandleSet
    from mikrobot_tui.domain.market import TIMEFRAMES

    quality = QualitySettings()
    ny_close = [not quality.always_open(s) for s in symbols]
    candles = CandleSet(len(symbols), sorted(TIMEFRAMES.values()), ny_close=ny_close)
    step = 10_000
    t0 = time.perf_counter()
    for a in range(0, len(ticks), step):
        candles.update(ticks[a : a + step])
    return len(ticks) / (time.perf_counter() - t0)


def stored_bars(folder: Path) -> Path:
    from mikrobot_tui.data.history import aggregate
    from mikrobot_tui.domain.market import BAR_DTYPE, M1, TIMEFRAMES
    from mikrobot_tui.store.bars import write_bars
    from mikrobot_tui.store.schema import open_db

    path = folder / "bars.db"
    db = open_db(path)
    rng = np.random.default_rng(3)
    start = 1_767_225_600_000_000_000 // M1 * M1  # 2026-01-01
    for symbol in ("EURUSD", "GBPUSD", "BTCUSDT"):
        m1 = np.zeros(N_BARS, dtype=BAR_DTYPE)
        m1["period_ns"] = M1
        m1["ts_open"] = start + np.arange(N_BARS) * M1
        close = 1.1 + np.cumsum(rng.normal(0, 1e-4, N_BARS))
        m1["open"] = np.r_[close[0], close[:-1]]
        m1["close"] = close
        m1["high"] = np.maximum(m1["open"], close) + 5e-5
        m1["low"] = np.minimum(m1["open"], close) - 5e-5
        m1["ticks"] = rng.integers(1, 200, N_BARS)
        m1["volume"] = rng.random(N_BARS) * 10
        longer = [aggregate(m1, p, symbol != "BTCUSDT") for p in TIMEFRAMES.values() if p > M1]
        write_bars(db.conn, np.concatenate([m1, *longer]), [symbol])
    db.conn.close()
    return path


def read_times(path: Path, seed: int) -> tuple[float, float]:
    """Median seconds of one `bars` call (1,000 M1 bars) and of one `last_bars` call."""
    from mikrobot_tui.data.history import bars, last_bars
    from mikrobot_tui.domain.market import M1
    from mikrobot_tui.store.schema import connect

    conn = connect(path)
    first = int(conn.execute("SELECT MIN(ts_open) FROM bars").fetchone()[0])
    rng = np.random.default_rng(seed)
    ranged, last = [], []
    for k in range(CALLS):
        symbol = ("EURUSD", "GBPUSD", "BTCUSDT")[k % 3]
        at = first + int(rng.integers(0, N_BARS - 1_000)) * M1
        t0 = time.perf_counter()
        got = bars(conn, symbol, "M1", at, at + 1_000 * M1)
        ranged.append(time.perf_counter() - t0)
        assert len(got) == 1_000
        t0 = time.perf_counter()
        got = last_bars(conn, symbol, "M1", 1_000)
        last.append(time.perf_counter() - t0)
        assert len(got) == 1_000
    conn.close()
    return statistics.median(ranged), statistics.median(last)


def figures(n_ticks: int = 1_000_000) -> dict[str, float]:
    """One run's figures, for `python -m benchmarks`: candles built (ticks per second) and
    the median call reading 1,000 M1 bars with `bars` and with `last_bars`, in ms."""
    ticks, symbols = seeded_ticks(n_ticks)
    built = candles_per_second(ticks, symbols)
    with tempfile.TemporaryDirectory() as tmp:
        ranged, last = read_times(stored_bars(Path(tmp)), seed=0)
    return {
        "candles_ticks_per_s": built,
        "bars_1000_ms": ranged * 1e3,
        "last_bars_1000_ms": last * 1e3,
    }


def main() -> None:
    args, ticks, symbols = seeded_ticks_cli(__doc__)
    built = statistics.median(candles_per_second(ticks, symbols) for _ in range(args.repeat))
    with tempfile.TemporaryDirectory() as tmp:
        path = stored_bars(Path(tmp))
        runs = [read_times(path, seed) for seed in range(args.repeat)]
    ranged = statistics.median(r[0] for r in runs)
    last = statistics.median(r[1] for r in runs)
    print(f"history, median of {args.repeat}:")
    print(
        f"  candles M1 to D1   {built / 1e6:6.2f} M ticks/s  "
        f"({len(ticks):,} ticks of {len(symbols)} symbols, batches of 10,000)"
    )
    print(f"  bars(), 1,000 M1   {ranged * 1e3:6.2f} ms   (target 2; median of {CALLS} calls)")
    print(f"  last_bars(1,000)   {last * 1e3:6.2f} ms")


if __name__ == "__main__":
    main()
