"""Versioned model files: `<dir>/<name>/v<N>.joblib` and `v<N>.json` beside it.

The .joblib holds the fitted scikit-learn model (joblib's pickle: load only files you made;
unpickling runs code). The .json says what it is and how it scored, readable without
scikit-learn: name, version, kind, label, the feature names in order, the training range
(first and last setup, ISO and ns), rows and positives, the walk-forward metrics and
reliability table, the threshold, when and from which files it was trained, the feature
importance, and per feature the training distribution that drift is measured against (decile
edges and shares, serve.psi) and the standardisation an online model starts from.

Versions count up from 1 per name and are never overwritten: `save` claims the next number by
creating its .joblib exclusively, and writes the .json last (through a temporary file), so a
version is listed only once both are whole.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mikrobot_tui.trading.models.train import TrainResult

FORMAT = 1  # the .json's layout; a reader refuses a newer one
NAME = re.compile(r"^[A-Za-z0-9_\-]{1,40}$")
VERSION_FILE = re.compile(r"^v(\d+)\.json$")


class UnknownModel(ValueError):
    """No such model name or version in the folder (the message lists what there is)."""


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: int
    model: Any  # the fitted scikit-learn estimator
    meta: dict  # the .json
    path: Path  # the .joblib

    @property
    def kind(self) -> str:
        return self.meta["kind"]

    @property
    def label(self) -> str:
        return self.meta["label"]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.meta["features"])


@dataclass(frozen=True)
class ModelEntry:
    name: str
    versions: list[int]  # ascending
    latest: dict  # the newest version's .json


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise ValueError(
            f"model name {name!r}: use 1 to 40 letters, digits, '_' or '-', e.g. bos_retest"
        )
    return name


def iso(ns: int) -> str:
    return datetime.fromtimestamp(ns // 1_000_000_000, tz=UTC).isoformat().replace("+00:00", "Z")


def metadata(result: TrainResult, name: str, version: int, extra: dict | None = None) -> dict:
    import sklearn

    folds = result.folds
    return {
        "format": FORMAT,
        "name": name,
        "version": version,
        "kind": result.kind,
        "label": result.label,
        "features": list(result.names),
        "training": {
            "first_ts": iso(result.first_ts),
            "last_ts": iso(result.last_ts),
            "first_ts_ns": result.first_ts,
            "last_ts_ns": result.last_ts,
            "rows": result.rows,
            "positives": result.positives,
        },
        "validation": {
            "method": "walk-forward",
            "folds": len(folds),
            "bounds": [[f.train_end, f.test_end] for f in folds],
            "per_fold": result.fold_metrics,
        },
        "threshold": result.threshold,
        "metrics": result.metrics,
        "reliability": result.reliability,
        "importance": result.importance,
        "importance_method": "permutation on the last fold, AUC drop over 5 shuffles",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "sources": list(result.sources),
        "sklearn_version": sklearn.__version__,
        "drift": result.reference_bins,
        "standardise": result.standardise,
        **(extra or {}),
    }


def save(result: TrainResult, name: str, directory: Path, *, extra: dict | None = None) -> Path:
    """Store `result`'s final model as the next version of `name`; the .joblib's path.
    `extra` (e.g. the strategy and its parameters) goes into the .json as given."""
    import joblib

    folder = Path(directory) / check_name(name)
    folder.mkdir(parents=True, exist_ok=True)
    version = max(versions(directory, name), default=0) + 1
    while True:
        path = folder / f"v{version}.joblib"
        try:
            with path.open("xb") as f:  # claims the number: a concurrent save takes the next
                joblib.dump(result.model, f)
            break
        except FileExistsError:
            version += 1
    doc = json.dumps(metadata(result, name, version, extra), indent=2, allow_nan=False)
    fd, tmp = tempfile.mkstemp(prefix=f".v{version}-", suffix=".json", dir=folder)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(doc + "\n")
    os.replace(tmp, folder / f"v{version}.json")
    return path


def versions(directory: Path, name: str) -> list[int]:
    """The versions of `name` whose .json is written, ascending ([] for no such model)."""
    folder = Path(directory) / name
    if not folder.is_dir():
        return []
    found = (VERSION_FILE.match(p.name) for p in folder.iterdir())
    return sorted(int(m.group(1)) for m in found if m)


def read_meta(directory: Path, name: str, version: int | None = None) -> dict:
    """A version's .json (the newest without `version`); UnknownModel when there is none."""
    have = versions(directory, name)
    if not have:
        known = [e.name for e in list_models(directory)]
        there = f"models there: {', '.join(known)}" if known else "none there yet"
        raise UnknownModel(f"no model {name!r} in {directory} ({there})")
    if version is None:
        version = have[-1]
    if version not in have:
        raise UnknownModel(
            f"model {name!r} has versions {', '.join(map(str, have))}; no version {version}"
        )
    path = Path(directory) / name / f"v{version}.json"
    meta = json.loads(path.read_text(encoding="utf-8"))
    if meta.get("format", 0) > FORMAT:
        raise ValueError(f"{path}: written by a newer mikrobot (format {meta['format']})")
    return meta


def load(name: str, version: int | None = None, *, directory: Path) -> LoadedModel:
    """A saved model (the newest version without `version`), its .json beside it."""
    import joblib

    meta = read_meta(directory, name, version)
    path = Path(directory) / name / f"v{meta['version']}.joblib"
    return LoadedModel(name, meta["version"], joblib.load(path), meta, path)


def list_models(directory: Path) -> list[ModelEntry]:
    """Every model in the folder with at least one version, by name."""
    folder = Path(directory)
    if not folder.is_dir():
        return []
    entries = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and NAME.match(p.name)):
        have = versions(folder, sub.name)
        if have:
            latest = json.loads((sub / f"v{have[-1]}.json").read_text(encoding="utf-8"))
            entries.append(ModelEntry(sub.name, have, latest))
    return entries
