"""History import figures: a generic tick CSV of about 2,000,000 rows.

    python -m benchmarks.history_import [--rows N] [--repeat R]

Writes a seeded generic CSV (`ts,symbol,bid,ask,last,volume`, epoch ms, four symbols, FX
quotes with empty last and volume) to a temp dir, then times
1. parsing alone (read, decode, line table, polars, checks: `parse_file`), target 1,000,000
   rows a second or better;
2. the whole import into a new SQLite file (parse, ticks through store/ticks.py, M1 to D1
   bars through the candle builder, bar upserts), as `mikrobot history import` does it;
3. the same file's parse with ISO-8601 times instead of epoch numbers.
Each figure is the median of R runs; the runs are printed too.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def write_csv(path: Path, n: int, iso: bool = False, quotes_only: bool = False) -> None:
    """n seeded rows of four symbols; `quotes_only`: the header `ts,symbol,bid,ask` alone."""
    rng = np.random.default_rng(7)
    symbols = np.array(["EURUSD", "GBPUSD", "USDJPY", "XAUUSD"])
    base = np.array([1.1, 1.27, 150.0, 2000.0])
    sym = rng.integers(0, len(symbols), n)
    ts = 1_704_067_200_000 + np.cumsum(rng.integers(1, 40, n))  # ms, about 20 ms apart
    mid = base[sym] * (1 + np.cumsum(rng.normal(0, 1e-5, n)) * 0.01)
    bid = np.round(mid - base[sym] * 5e-6, 5)
    ask = np.round(mid + base[sym] * 5e-6, 5)
    if iso:
        stamps = np.datetime_as_string(ts.astype("datetime64[ms]"), unit="ms")
    else:
        stamps = ts.astype(str)
    with path.open("w") as f:
        f.write("ts,symbol,bid,ask\n" if quotes_only else "ts,symbol,bid,ask,last,volume\n")
        tail = "" if quotes_only else ",,"
        chunk = 200_000
        for i in range(0, n, chunk):
            j = slice(i, i + chunk)
            lines = [
                f"{t},{s},{b!r},{a!r}{tail}"
                for t, s, b, a in zip(
                    stamps[j].tolist(),
                    symbols[sym[j]].tolist(),
                    bid[j].tolist(),
                    ask[j].tolist(),
                    strict=True,
                )
            ]
            f.write("\n".join(lines) + "\n")


def timed(fn, repeat: int) -> tuple[float, list[float], object]:
    runs, result = [], None
    for _ in range(repeat):
        result = None  # the last run's arrays go before the next run allocates its own
        gc.collect()
        t0 = time.perf_counter()
        result = fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs), runs, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    from mikrobot_tui.data.history import import_parsed
    from mikrobot_tui.data.importers import parse_file
    from mikrobot_tui.store.schema import open_db

    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "ticks.csv"
        iso = Path(tmp) / "ticks_iso.csv"
        t0 = time.perf_counter()
        write_csv(csv, args.rows)
        write_csv(iso, args.rows, iso=True)
        print(
            f"wrote {args.rows:,} rows ({csv.stat().st_size / 1e6:.0f} MB epoch ms, "
            f"{iso.stat().st_size / 1e6:.0f} MB ISO) in {time.perf_counter() - t0:.1f} s"
        )

        med, runs, parsed = timed(lambda: parse_file(csv), args.repeat)
        assert parsed.good == args.rows, parsed.rejects[:5]
        show("parse, epoch ms", args.rows, med, runs)

        counter = iter(range(1_000))

        def full_import():
            db = open_db(Path(tmp) / f"bench{next(counter)}.db")
            try:
                return import_parsed(db.conn, parse_file(csv), str(csv))
            finally:
                db.conn.close()

        med, runs, report = timed(full_import, args.repeat)
        assert report.written == args.rows
        show("import into SQLite", args.rows, med, runs)

        med, runs, parsed = timed(lambda: parse_file(iso), args.repeat)
        assert parsed.good == args.rows, parsed.rejects[:5]
        show("parse, ISO-8601", args.rows, med, runs)


def figures(rows: int = 2_000_000) -> dict[str, float]:
    """One run's figures, for `python -m benchmarks`: rows per second of parsing a generic
    CSV alone and of the whole import into a new SQLite file."""
    from mikrobot_tui.data.history import import_parsed
    from mikrobot_tui.data.importers import parse_file
    from mikrobot_tui.store.schema import open_db

    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "ticks.csv"
        write_csv(csv, rows)
        parse_s, _, parsed = timed(lambda: parse_file(csv), 1)
        assert parsed.good == rows, parsed.rejects[:5]
        conn = open_db(Path(tmp) / "import.db").conn
        try:
            import_s, _, report = timed(lambda: import_parsed(conn, parse_file(csv), str(csv)), 1)
        finally:
            conn.close()
        assert report.written == rows
    return {"parse_rows_per_s": rows / parse_s, "import_rows_per_s": rows / import_s}


def show(what: str, n: int, median: float, runs: list[float]) -> None:
    listed = ", ".join(f"{r:.2f}" for r in runs)
    print(f"{what:<20} {n / median:>12,.0f} rows/s  (median {median:.2f} s; runs {listed} s)")


if __name__ == "__main__":
    main()
