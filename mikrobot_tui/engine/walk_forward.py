"""Walk-forward: pick a sweep's best parameters on one stretch of ticks, trade them on the next.

Windows go by tick time from the first tick t0: window 1 trains on [t0, t0 + TRAIN) and tests
on [t0 + TRAIN, t0 + TRAIN + TEST); each next window moves on by TEST, so the test windows
follow each other without a gap or an overlap, and the training windows overlap when TRAIN >
TEST. The last test window may be partial: it counts when the ticks reach at least half way
into it (it then ends after the last tick, says `partial` and how many days it covers);
otherwise the ticks after the last whole one are not tested (`Windows.left_out` counts them).
A window whose training or test stretch holds no tick (a market closed for the whole
stretch) is skipped and says so.

In each window the whole grid runs on the training ticks (engine/sweep.py, every run its own
database), the best by the sort metric is chosen (`sweep.ranked`: its better direction,
undefined values last, ties in grid order) and that one combination runs on the test ticks.
Each stretch is a backtest of its own, starting cold: a strategy warms up on the first bars of
its stretch, with the same balance.

Totals (`totals`), in-sample (the chosen training runs) beside out-of-sample (the test runs):
net P&L and trades summed over the windows; the sort metric as the mean of the windows' values
(`<metric>_mean`, over the windows where it is defined; `metric_windows` says how many), not
recomputed over the concatenated trades; and the days covered with net P&L per day, since
training stretches are longer than test ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from mikrobot_tui.engine import backtest as bt
from mikrobot_tui.engine import sweep as sw

NS = 1_000_000_000
UNITS = {"s": NS, "m": 60 * NS, "h": 3600 * NS, "d": 86400 * NS, "w": 7 * 86400 * NS}
_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


@dataclass(frozen=True)
class Window:
    index: int  # 1-based
    train_start: int  # ns, inclusive
    test_start: int  # ns: the training stretch's end, exclusive
    test_end: int  # ns, exclusive
    partial: bool = False  # the last window, cut short by the data's end

    @property
    def label(self) -> str:
        return f"w{self.index:02d}"

    def to_json(self) -> dict[str, Any]:
        return {
            "window": self.index,
            "train_start": iso(self.train_start),
            "train_end": iso(self.test_start),
            "test_start": iso(self.test_start),
            "test_end": iso(self.test_end),
            "partial": self.partial,
        }


@dataclass(frozen=True)
class Windows:
    windows: list[Window]
    left_out: int  # ticks after the last whole test window


def parse_spans(text: str) -> tuple[int, int]:
    """`TRAIN:TEST` (e.g. 30d:7d; units s, m, h, d, w) as two spans in ns; BadInput saying
    the form."""
    train, sep, test = text.partition(":")
    spans = [_span(train), _span(test)] if sep else [None]
    if None in spans:
        raise bt.BadInput(
            f"--walk-forward {text!r}: write TRAIN:TEST, each a number and a unit "
            "(s, m, h, d or w), e.g. --walk-forward 30d:7d"
        )
    return spans[0], spans[1]  # type: ignore[return-value]


def _span(text: str) -> int | None:
    found = _SPAN.match(text)
    if found is None:
        return None
    ns = int(float(found.group(1)) * UNITS[found.group(2)])
    return ns if ns > 0 else None


def windows(ts: np.ndarray, train: int, test: int, spec: str) -> Windows:
    """The windows over event times `ts` (sorted, ns); BadInput when not one fits, saying the
    data's span and what one window needs. The last test window may be partial: it counts
    when the ticks reach at least half way into it, and then ends after the last tick."""
    first, last = int(ts[0]), int(ts[-1])
    end = last + 1  # the data's end, exclusive
    out: list[Window] = []
    start = first
    while start + train + test // 2 <= end:
        test_start = start + train
        test_end = min(test_start + test, end)
        partial = test_end < test_start + test
        out.append(Window(len(out) + 1, start, test_start, test_end, partial))
        start += test
    if not out:
        raise bt.BadInput(
            f"--walk-forward {spec}: one window needs {duration(train + test)} of ticks (the "
            f"last test window at least half: {duration(train + test // 2)}); the data spans "
            f"{duration(last - first)} ({iso(first)} to {iso(last)})"
        )
    left_out = int(np.count_nonzero(ts >= out[-1].test_end))
    return Windows(out, left_out)


def stretch(loaded: bt.Loaded, start: int, end: int) -> bt.Loaded:
    """The ticks with start <= ts_event < end."""
    ts = loaded.ticks["ts_event"]
    lo, hi = np.searchsorted(ts, [start, end], side="left")
    return bt.Loaded(loaded.ticks[lo:hi].copy(), loaded.symbols, loaded.format, 0)


def walk_forward(
    pool: sw.LocalPool | sw.DaskPool,
    loaded: bt.Loaded,
    spans: Windows,
    strategy: str,
    combos: list[dict[str, float]],
    settings_for: sw.SettingsFor,
    *,
    sort_by: str,
    data_folder: Path,
    folder: Path | None,
    sweep_id: str,
    batch_size: int | None = None,
    done: sw.Done = lambda doc: None,
) -> dict[str, Any]:
    """Run the walk-forward; its document: windows, in_sample, out_of_sample, failed runs.
    Every window's training grid runs at once, then every test run."""

    def plan(w: Window, part: str, params: list[dict[str, Any]]) -> sw.Plan:
        """The runs of `params` over window w's training or test stretch."""
        source = f"{w.label}-{part}"
        return sw.plan(
            strategy,
            params,
            settings_for,
            pool.files[source],
            folder=folder,
            sweep_id=sweep_id,
            source=source,
            prefix=source,
            batch_size=batch_size,
        )

    trained: list[tuple[Window, sw.Plan]] = []
    entries: dict[int, dict[str, Any]] = {}
    for w in spans.windows:
        train = stretch(loaded, w.train_start, w.test_start)
        test = stretch(loaded, w.test_start, w.test_end)
        entries[w.index] = w.to_json() | {
            "train_ticks": len(train.ticks),
            "test_ticks": len(test.ticks),
        }
        if len(train.ticks) == 0 or len(test.ticks) == 0:
            entries[w.index]["skipped"] = (
                f"no tick in its {'training' if len(train.ticks) == 0 else 'test'} stretch"
            )
            continue
        for part, ticks in (("train", train), ("test", test)):
            source = f"{w.label}-{part}"
            pool.files[source] = sw.write_replay(data_folder / f"{source}.npz", ticks)
        trained.append((w, plan(w, "train", combos)))
    results = sw.run_plans(pool, [p for _, p in trained], done)
    for w, _ in trained:  # the training stretches are most of the data: free them first
        pool.forget(f"{w.label}-train")

    tests: list[tuple[Window, sw.Plan]] = []
    failed_runs = 0
    for (w, _), docs in zip(trained, results, strict=True):
        failed_runs += sum(1 for d in docs if not d["ok"])
        entry = entries[w.index]
        entry["train_failed"] = sum(1 for d in docs if not d["ok"])
        entry["train"] = [
            {"run": d["run"], "params": d["params"]} | _brief(d, sort_by) for d in docs
        ]
        best = sw.ranked(docs, sort_by)[0]
        if not best["ok"]:
            entry["skipped"] = "every training run failed"
            continue
        entry["params"] = best["params"]
        entry["in_sample"] = _brief(best, sort_by, w.test_start - w.train_start)
        tests.append((w, plan(w, "test", [best["params"]])))
    for (w, _), docs in zip(tests, sw.run_plans(pool, [p for _, p in tests], done), strict=True):
        doc = docs[0]
        failed_runs += 0 if doc["ok"] else 1
        oos = _brief(doc, sort_by, w.test_end - w.test_start)
        entries[w.index]["out_of_sample"] = oos | {"result": doc}

    windows_doc = [entries[w.index] for w in spans.windows]
    return {
        "windows": windows_doc,
        "in_sample": totals([e.get("in_sample") for e in windows_doc], sort_by),
        "out_of_sample": totals([e.get("out_of_sample") for e in windows_doc], sort_by),
        "left_out_ticks": spans.left_out,
        "failed": failed_runs,
    }


def _brief(doc: dict[str, Any], sort_by: str, span_ns: int | None = None) -> dict[str, Any]:
    """What a window says of one run: its database, P&L, trades, the sort metric (and the
    days its ticks stretch over, when given)."""
    brief = {
        "db": doc["db"],
        "ok": doc["ok"],
        "error": doc["error"],
        "net_pnl": doc.get("net_pnl"),
        "trades": doc.get("trades"),
        sort_by: sw.metric(doc, sort_by),
    }
    if span_ns is not None:
        brief["days"] = span_ns / UNITS["d"]
    return brief


def totals(briefs: list[dict[str, Any] | None], sort_by: str) -> dict[str, Any]:
    """Net P&L, trades and days summed over the windows that ran, `sort_by` as the mean of
    the windows' values (where defined)."""
    ran = [b for b in briefs if b is not None and b["ok"]]
    values = [b[sort_by] for b in ran if b[sort_by] is not None]
    net = float(sum(b["net_pnl"] for b in ran))
    days = float(sum(b["days"] for b in ran))
    return {
        "windows": len(ran),
        "net_pnl": net,
        "trades": int(sum(b["trades"] for b in ran)),
        f"{sort_by}_mean": float(np.mean(values)) if values else None,
        "metric_windows": len(values),
        "days": days,
        "net_pnl_per_day": net / days if days > 0 else None,
    }


def iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / NS, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def duration(ns: int) -> str:
    """A span in the largest unit that keeps it readable: 2.5 days, 3.0 hours."""
    for unit, name in (("d", "days"), ("h", "hours"), ("m", "minutes")):
        if ns >= UNITS[unit]:
            return f"{ns / UNITS[unit]:.1f} {name}"
    return f"{ns / NS:.1f} seconds"
