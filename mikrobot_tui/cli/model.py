"""`mikrobot model train | list | show`: models of the house strategy's setups.

Train replays data files through the engine with bos_retest (engine/dataset.py), one
row per setup that reached an entry, trains a model on one outcome with walk-forward
validation (trading/models/train.py) and saves it as the next version of its name in the
models folder ([models] dir, trading/models/registry.py); it prints the out-of-sample metrics
and the reliability table. List and show read the versions' .json files only, so they answer
without loading scikit-learn. Bad input (a strategy without setups, a missing file, no setups
in the data, a label with one outcome, an unknown model) is one line, exit 2.
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from mikrobot_tui.cli.common import (
    EXIT_BAD_INPUT,
    StderrProgress,
    echo,
    fail,
    options,
    settings,
    strategy_params,
    tick_parser,
)

SETUP_STRATEGY = "bos_retest"
TOP_FEATURES = 10
LEFT_OUT_OF_JSON = ("drift", "standardise")  # large; the version's .json file holds them


class Kind(StrEnum):
    gbm = "gbm"
    logistic = "logistic"


class Label(StrEnum):
    tp_first = "tp_first"
    retest_held = "retest_held"
    false_break = "false_break"


def train(
    strategy: Annotated[
        str, typer.Option("--strategy", help="the strategy whose setups are learnt (bos_retest)")
    ],
    data: Annotated[
        list[Path],
        typer.Option("--data", help="a tick or bar file to replay (repeat for more files)"),
    ],
    kind: Annotated[Kind, typer.Option("--model", help="gradient boosting or logistic")] = (
        Kind.gbm
    ),
    label: Annotated[Label, typer.Option("--label", help="the outcome to predict")] = (
        Label.tp_first
    ),
    name: Annotated[
        str | None, typer.Option("--name", help="the model's name (default: the strategy)")
    ] = None,
    folds: Annotated[int, typer.Option("--folds", min=1, max=50, help="walk-forward folds")] = 5,
    threshold: Annotated[
        float, typer.Option("--threshold", help="the probability that counts as a yes")
    ] = 0.5,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", help="a strategy parameter, k=v (repeatable)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Train a model on the strategy's setups in the data files and save its next version."""
    from mikrobot_tui.trading.models.registry import check_name

    if strategy != SETUP_STRATEGY:
        raise fail(
            f"--strategy {strategy}: only {SETUP_STRATEGY} has setups to learn from (a break "
            "of structure, its retest and the entry); use --strategy bos_retest",
            EXIT_BAD_INPUT,
        )
    name = name or strategy
    try:
        check_name(name)
    except ValueError as exc:
        raise fail(f"--name: {exc}", EXIT_BAD_INPUT) from None
    if not 0 < threshold < 1:
        raise fail(f"--threshold {threshold:g}: give a probability between 0 and 1", EXIT_BAD_INPUT)
    for path in data:
        if not path.is_file():
            what = "is a directory" if path.is_dir() else "does not exist"
            raise fail(f"--data: {path} {what}; give a tick or bar file", EXIT_BAD_INPUT)
    params = strategy_params(param or [])
    folder = _folder()

    from mikrobot_tui.engine.dataset import build_dataset
    from mikrobot_tui.trading.models import registry
    from mikrobot_tui.trading.models.train import train as fit

    progress = StderrProgress(enabled=not as_json and sys.stderr.isatty())
    with progress:
        progress.stage(f"replaying {len(data)} file(s) with {strategy}")
        try:
            dataset = build_dataset(
                data,
                params,
                config=options.config,
                parse=tick_parser(),
                progress=_reporter(progress, "replaying"),
            )
        except ValueError as exc:
            raise fail(str(exc), EXIT_BAD_INPUT) from None
        if len(dataset) == 0:
            raise fail(
                f"--data: no {strategy} setup reached an entry in {_files(data)}; give more "
                "data (weeks of M1 bars at least) or other --param values",
                EXIT_BAD_INPUT,
            )
        progress.stage(f"training {kind.value} on {label.value}", total=folds + 2)
        try:
            result = fit(
                dataset,
                label=label.value,
                kind=kind.value,
                folds=folds,
                threshold=threshold,
                progress=_reporter(progress, f"training {kind.value} on {label.value}"),
            )
        except ValueError as exc:
            raise fail(str(exc), EXIT_BAD_INPUT) from None
    path = registry.save(result, name, folder, extra={"strategy": strategy, "params": params})
    meta = registry.read_meta(folder, name, int(path.stem[1:]))
    if as_json:
        echo(_json({"file": str(path), **meta}))
        return
    _print_metrics(meta)
    _print_reliability(meta)
    echo(f"saved {path} (`mikrobot model show {name}` shows it again)")


def list_(
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON array")] = False,
) -> None:
    """The saved models: versions, kind, label, rows, out-of-sample AUC, training range."""
    from mikrobot_tui.trading.models.registry import list_models

    folder = _folder()
    entries = list_models(folder)
    if as_json:
        doc = [
            {
                "name": e.name,
                "versions": e.versions,
                "latest": {k: v for k, v in e.latest.items() if k not in LEFT_OUT_OF_JSON},
            }
            for e in entries
        ]
        echo(_json(doc))
        return
    if not entries:
        echo(
            f"no models in {folder}; train one with `mikrobot model train --strategy "
            "bos_retest --data FILE`"
        )
        return
    from rich.table import Table

    t = Table(title=f"models in {folder}", box=_box(), title_justify="left")
    for col in ("name", "versions", "kind", "label", "rows", "AUC", "trained on"):
        t.add_column(col, justify="right" if col in ("rows", "AUC") else "left")
    for e in entries:
        m, tr = e.latest, e.latest["training"]
        shown = ", ".join(f"v{v}" for v in e.versions[-3:])
        if len(e.versions) > 3:
            shown = f"v{e.versions[0]} .. {shown}"
        t.add_row(
            e.name,
            shown,
            m["kind"],
            m["label"],
            f"{tr['rows']:,}",
            _num(m["metrics"]["auc"], ".3f"),
            f"{tr['first_ts'][:10]} to {tr['last_ts'][:10]}",
        )
    _print(t)


def show(
    name: Annotated[str, typer.Argument(help="the model's name", show_default=False)],
    version: Annotated[
        int | None, typer.Option("--version", min=1, help="a version (default: the newest)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """One model version: what it was trained on, its metrics, reliability and top features."""
    from mikrobot_tui.trading.models.registry import UnknownModel, read_meta

    folder = _folder()
    try:
        meta = read_meta(folder, name, version)
    except UnknownModel as exc:
        raise fail(str(exc), EXIT_BAD_INPUT) from None
    if as_json:
        echo(_json({"file": str(folder / name / f"v{meta['version']}.json"), **meta}))
        return
    _print_about(meta)
    _print_metrics(meta)
    _print_reliability(meta)
    _print_folds(meta)
    _print_importance(meta)


def _folder() -> Path:
    s = settings()
    return s.models.folder(Path(s.engine.db))


def _reporter(progress: StderrProgress, what: str):
    """A long step's callback: called with (done, total) it moves the bar to `done`; with one
    number it advances the bar by that many."""
    seen = {"done": 0, "total": None}

    def report(done: int, total: int | None = None) -> None:
        if total is None:
            progress.advance(done)
            return
        if seen["total"] != total:
            progress.stage(what, total=total)
            seen.update(done=0, total=total)
        progress.advance(done - seen["done"])
        seen["done"] = done

    return report


def _files(paths: list[Path]) -> str:
    names = [p.name for p in paths]
    return (
        ", ".join(names) if len(names) <= 3 else f"{', '.join(names[:3])} and {len(names) - 3} more"
    )


def _json(doc: Any) -> str:
    if isinstance(doc, dict):
        doc = {k: v for k, v in doc.items() if k not in LEFT_OUT_OF_JSON}
    return json.dumps(doc, indent=2, ensure_ascii=True, allow_nan=False)


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _box():
    from rich import box

    return box.ASCII


def _print(table: Any) -> None:
    from rich.console import Console

    Console(file=sys.stdout, highlight=False, emoji=False, width=100).print(table)


def _base_rate_scores(b: float | None) -> tuple[float | None, float | None]:
    """The log loss and Brier score of predicting the base rate for every setup."""
    import math

    if b is None or not 0 < b < 1:
        return None, None
    return -(b * math.log(b) + (1 - b) * math.log(1 - b)), b * (1 - b)


def _print_metrics(meta: dict) -> None:
    from rich.table import Table

    m, tr, v = meta["metrics"], meta["training"], meta["validation"]
    ll0, brier0 = _base_rate_scores(m["base_rate"])
    title = f"{meta['name']} v{meta['version']}: {meta['kind']} on {meta['label']}, out of sample"
    t = Table(title=title, box=_box(), title_justify="left")
    t.add_column("metric", no_wrap=True)
    t.add_column("value", justify="right")
    t.add_column("for comparison")
    at = f"{meta['threshold']:.2f}"
    t.add_row("AUC", _num(m["auc"], ".3f"), "0.500 is no skill")
    t.add_row(
        "log loss", _num(m["log_loss"], ".4f"), f"{_num(ll0, '.4f')} predicting the base rate"
    )
    t.add_row(
        "Brier score", _num(m["brier"], ".4f"), f"{_num(brier0, '.4f')} predicting the base rate"
    )
    t.add_row("base rate", _num(m["base_rate"], ".3f"), "share of positive outcomes")
    t.add_row(
        f"precision at {at}",
        _num(m["precision"], ".3f"),
        f"{m['predicted_positive']:,} predicted yes",
    )
    t.add_row(
        f"recall at {at}", _num(m["recall"], ".3f"), f"{m['positives']:,} positives out of sample"
    )
    t.add_row(
        "rows",
        f"{tr['rows']:,}",
        f"{tr['positives']:,} positive; {m['rows']:,} predicted out of sample",
    )
    t.add_row(
        "split", f"walk-forward, {v['folds']} folds", "each fold trained on the rows before it"
    )
    t.add_row("data", _files([Path(s) for s in meta["sources"]]) or "-", "")
    t.add_row("range", f"{_iso(tr['first_ts_ns'])} to {_iso(tr['last_ts_ns'])}", "UTC")
    _print(t)


def _print_reliability(meta: dict) -> None:
    from rich.table import Table

    t = Table(
        title="reliability: out-of-sample predictions by decile", box=_box(), title_justify="left"
    )
    for col in ("bin", "p from", "p to", "count", "mean predicted", "observed rate"):
        t.add_column(col, justify="right")
    for i, b in enumerate(meta["reliability"], 1):
        t.add_row(
            str(i),
            f"{b['p_low']:.3f}",
            f"{b['p_high']:.3f}",
            f"{b['count']:,}",
            f"{b['mean_predicted']:.3f}",
            f"{b['observed_rate']:.3f}",
        )
    _print(t)


def _print_about(meta: dict) -> None:
    from rich.table import Table

    tr = meta["training"]
    t = Table(
        title=f"model {meta['name']} v{meta['version']}",
        box=_box(),
        title_justify="left",
        show_header=False,
    )
    t.add_column(no_wrap=True)
    t.add_column()
    params = ", ".join(f"{k}={v}" for k, v in meta.get("params", {}).items()) or "defaults"
    rows = [
        ("kind", meta["kind"]),
        ("label", meta["label"]),
        ("strategy", f"{meta.get('strategy', '-')} ({params})"),
        ("trained", f"{tr['first_ts']} to {tr['last_ts']}"),
        ("rows", f"{tr['rows']:,} ({tr['positives']:,} positive)"),
        ("features", str(len(meta["features"]))),
        ("threshold", f"{meta['threshold']:g}"),
        ("created", meta["created_at"]),
        ("scikit-learn", meta.get("sklearn_version", "-")),
        ("data", "\n".join(meta["sources"]) or "-"),
    ]
    for key, value in rows:
        t.add_row(key, value)
    _print(t)


def _print_folds(meta: dict) -> None:
    from rich.table import Table

    t = Table(title="walk-forward folds", box=_box(), title_justify="left")
    for col in ("fold", "trained on", "tested on", "positives", "from", "to", "AUC"):
        t.add_column(col, justify="left" if col in ("from", "to") else "right")
    for i, f in enumerate(meta["validation"]["per_fold"], 1):
        t.add_row(
            str(i),
            f"{f['train_rows']:,}",
            f"{f['test_rows']:,}",
            f"{f['test_positives']:,}",
            _iso(f["first_ts"]),
            _iso(f["last_ts"]),
            _num(f["auc"], ".3f"),
        )
    _print(t)


def _print_importance(meta: dict) -> None:
    from rich.table import Table

    rows = meta["importance"][:TOP_FEATURES]
    if not rows:
        echo("feature importance: none (the last fold held one outcome only)")
        return
    t = Table(title=f"top features ({meta['importance_method']})", box=_box())
    t.title_justify = "left"
    for col in ("feature", "AUC drop", "+-"):
        t.add_column(col, justify="left" if col == "feature" else "right")
    for r in rows:
        t.add_row(r["feature"], f"{r['auc_drop']:.4f}", f"{r['std']:.4f}")
    _print(t)


def _iso(ns: int) -> str:
    from mikrobot_tui.trading.models.registry import iso

    return iso(ns)[:16].replace("T", " ")
