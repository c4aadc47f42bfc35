"""`python -m benchmarks`: issue 11's figures in one table, and in JSON with the machine named.

    python -m benchmarks [GROUP ...] [--quick] [--repeat R] [--out DIR]
    python -m benchmarks --markdown [--out DIR]

GROUPs (default: all, in this order): replay (the backtest's ticks per second, bar and tick
strategy), process (a 1,000,000-row CSV backtest, start to result, and its peak memory),
live (50 symbols at 10,000 quotes/s on loopback: latency, every quote's fate, memory, the
highest rate kept up with), storage (ticks written and read, 1,000 bars read, an order's
submit-to-fill), cockpit (the app's CPU and first frame), sweep (a 16-run grid on 1 and 2
workers and a LocalCluster); then the other modules' headline figures: latency (one tick at a
time through the engine), indicators (ten, per bar), import (a generic CSV parsed and
imported). Each figure is the median of R runs (default 3; --quick: 1 run
of a shorter, smaller version, a smoke test rather than a measurement), each run a fresh
process. The table goes to stdout; the JSON to DIR/latest.json and a dated copy beside it
(default DIR: benchmarks/results/). `--markdown` prints DIR/latest.json as the README's
"Latest figures" table, without running anything.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, machine
from benchmarks.suite import GROUPS, Figure, Options, number

RESULTS = ROOT / "benchmarks" / "results"


def run_groups(names: list[str], opt: Options) -> list[Figure]:
    """Each group's figures; a group that fails says why in one figure and the rest go on."""
    figures: list[Figure] = []
    for name in names:
        t0 = time.perf_counter()
        print(f"[{name}] running...", file=sys.stderr, flush=True)
        try:
            got = GROUPS[name](opt)
        except Exception as exc:  # one group's failure is a row of the table, not the end
            traceback.print_exc(file=sys.stderr)
            got = [Figure(name, f"{name} group", f"n/a (failed: {str(exc)[:80]})", "")]
        print(f"[{name}] done in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        figures.extend(got)
    return figures


def table(figures: list[Figure]) -> str:
    rows = [("figure", "value", "unit", "target", "")]
    rows += [(f.name, number(f.value), f.unit, f.target_text, f.verdict) for f in figures]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = []
    for k, r in enumerate(rows):
        cells = [
            r[0].ljust(widths[0]),
            r[1].rjust(widths[1]),
            r[2].ljust(widths[2]),
            r[3].ljust(widths[3]),
            r[4],
        ]
        lines.append("  ".join(cells).rstrip())
        if k == 0:
            lines.append("-" * len(lines[0]))
    return "\n".join(lines)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def document(
    figures: list[Figure], opt: Options, groups: list[str], started: str
) -> dict[str, Any]:
    return {
        "started": started,
        "time": now(),  # finished
        "machine": machine(),
        "quick": opt.quick,
        "repeat": opt.repeat,
        "groups": groups,
        "figures": [f.as_json() for f in figures],
    }


def write(doc: dict[str, Any], out: Path) -> Path:
    """DIR/latest.json and a dated copy (git-ignored); returns the dated copy's path."""
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(doc, indent=2) + "\n"
    stamp = doc["time"].replace(":", "").replace("+0000", "Z")
    dated = out / f"{stamp}{'-quick' if doc['quick'] else ''}.json"
    dated.write_text(text)
    (out / "latest.json").write_text(text)
    return dated


def span(doc: dict[str, Any]) -> str:
    """When the run was: 'on 2026-12-04 20:14 to 20:30 UTC' (older documents: the end)."""
    end = doc["time"][:16].replace("T", " ")
    start = doc.get("started", "")[:16].replace("T", " ")
    if start and start != end:
        return f"on {start} to {end[11:] if start[:10] == end[:10] else end} UTC"
    return f"on {end} UTC"


def markdown(doc: dict[str, Any]) -> str:
    """The README's "Latest figures" table from a results document."""
    m = doc["machine"]
    where = (
        f"{m['hostname']}: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB, "
        f"Python {m['python']}, {m['os']}"
    )
    kind = f"median of {doc['repeat']} run{'s' if doc['repeat'] > 1 else ''} each"
    if doc["quick"]:
        kind = f"`--quick` (the short smoke version), {kind}"
    short = f"{m['hostname']}, {m['cores']} cores"
    lines = [
        f"From `python -m benchmarks` {span(doc)}, {kind}; "
        f"load average at the start {m.get('load_at_start')}.",
        f"Machine: {where}.",
        "",
        "| figure | result | target | | machine |",
        "|---|---:|---|---|---|",
    ]
    for f in doc["figures"]:
        fig = Figure(**{k: v for k, v in f.items() if k != "verdict"})
        value = number(fig.value) + (f" {fig.unit}" if isinstance(fig.value, int | float) else "")
        lines.append(f"| {fig.name} | {value} | {fig.target_text} | {fig.verdict} | {short} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.splitlines()[0]
    )
    parser.add_argument("groups", nargs="*", metavar="GROUP", help=", ".join(GROUPS))
    parser.add_argument("--quick", action="store_true", help="one short run of each: a smoke test")
    parser.add_argument("--repeat", type=int, help="runs per figure (default 3; --quick 1)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON goes")
    parser.add_argument("--markdown", action="store_true", help="print DIR/latest.json as markdown")
    args = parser.parse_args(argv)
    if args.markdown:
        latest = args.out / "latest.json"
        if not latest.exists():
            parser.error(f"{latest} does not exist: run the suite first")
        print(markdown(json.loads(latest.read_text())))
        return 0
    unknown = [g for g in args.groups if g not in GROUPS]
    if unknown:
        parser.error(f"unknown group {unknown}; the groups: {', '.join(GROUPS)}")
    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat takes 1 or more")
    groups = args.groups or list(GROUPS)
    opt = Options(quick=args.quick, repeat=args.repeat or (1 if args.quick else 3))
    started = now()
    figures = run_groups(groups, opt)
    doc = document(figures, opt, groups, started)
    dated = write(doc, args.out)
    print(table(figures))
    print(f"\n{doc['machine']['hostname']}, {doc['time']}; JSON: {dated}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
