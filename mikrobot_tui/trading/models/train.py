"""Training a setup model: walk-forward validation, then one final fit on every row.

The two kinds, and why:

- "gbm": scikit-learn's HistGradientBoostingClassifier. It takes NaN as a value of its own
  (each split learns which side an unknown feature goes), so a feature that needs more history
  than a setup had costs nothing; it finds thresholds and interactions (a sweep matters in one
  session, not another) that a linear model cannot. Settings for hundreds to thousands of
  rows, where a deep or long boosting run learns the noise: depth 2 (pairs of features still
  interact), 100 trees at learning rate 0.05, at least 50 rows per leaf, L2 1.0 on the leaf
  values. On synthetic setups with one real effect among 49 features these scored a higher
  out-of-sample AUC than depth 3, 200 trees and leaves of 20 on each of seven seeds. No early
  stopping (it would hold out a random tenth, and the fit would depend on which) and a fixed
  random_state: the same rows always give the same model. One thread: on a few thousand rows
  OpenMP's start-up costs more than it saves (0.3 s a fit against 2 s on this 2-core machine).
- "logistic": LogisticRegression (L2, C = 1) after SimpleImputer(median) and StandardScaler:
  the linear baseline, fast, stable on few rows, its coefficients readable. Boosting has to
  beat it out of sample to earn its complexity.

Walk-forward validation: the rows, in time order, are cut into folds + 1 blocks of nearly equal
size (a cut never splits equal timestamps); fold k trains on every block before block k and
predicts block k (an expanding window). Never a random split: a setup's neighbours in time share
its market, and a shuffled split would let the model learn the future's regime. The predictions
of all folds, each made by a model that saw only earlier rows, give the metrics
(trading/models/metrics.py). One leak is left: a training row just before a fold whose outcome
came after the fold began (a trade open for hours); with folds of weeks it is a few rows.

Feature importance is permutation importance on the last fold (the model trained before it,
each feature shuffled 5 times, the drop in AUC): out of sample, and the same measure for both
kinds; a coefficient says how a feature moves the log-odds, not whether that holds out of sample.

scikit-learn is imported inside the functions: importing it costs about a second, and the
cockpit and the other commands never need it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mikrobot_tui.trading.models import LABELS, Dataset
from mikrobot_tui.trading.models.metrics import auc, reliability, scores
from mikrobot_tui.trading.models.serve import reference_bins

KINDS = ("gbm", "logistic")
MIN_ROWS_PER_BLOCK = 20  # the smallest block (and first training window) walk-forward accepts
MIN_PER_CLASS = 10  # outcomes of each kind a dataset needs before a model is worth fitting
IMPORTANCE_REPEATS = 5
SEED = 0

Progress = Callable[[int, int], None]  # (steps done, steps in all)


@dataclass(frozen=True)
class Fold:
    """Fold k: trained on rows [0, train_end), predicted rows [train_end, test_end)."""

    train_end: int
    test_end: int

    @property
    def test_start(self) -> int:
        return self.train_end


@dataclass
class TrainResult:
    model: Any  # the final fit, on every row with a known label
    kind: str
    label: str
    names: tuple[str, ...]
    threshold: float
    folds: list[Fold]
    oos_p: np.ndarray  # the folds' out-of-sample probabilities, rows folds[0].test_start on
    oos_y: np.ndarray
    metrics: dict  # metrics.scores of the out-of-sample predictions
    fold_metrics: list[dict]
    reliability: list[dict]
    rows: int
    positives: int
    first_ts: int
    last_ts: int
    sources: tuple[str, ...]
    reference_bins: dict[str, dict]  # feature -> {"edges", "shares"} (serve.psi)
    standardise: dict[str, list[float]]  # median, mean, scale per feature (serve.OnlineModel)
    importance: list[dict] = field(default_factory=list)  # feature, auc_drop, std; largest first


def new_model(kind: str) -> Any:
    """An unfitted model of `kind` with the settings the module docstring explains."""
    if kind == "gbm":
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(
            max_depth=2,
            learning_rate=0.05,
            max_iter=100,
            min_samples_leaf=50,
            l2_regularization=1.0,
            early_stopping=False,
            random_state=SEED,
        )
    if kind == "logistic":
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        return make_pipeline(
            # keep_empty_features: a feature never known in training stays a column (of 0s),
            # so the model's inputs are always the 49 features in their order
            SimpleImputer(strategy="median", keep_empty_features=True),
            StandardScaler(),
            LogisticRegression(C=1.0, max_iter=1000),
        )
    raise ValueError(f"model kind {kind!r}: use one of {', '.join(KINDS)}")


def walk_forward_folds(ts: np.ndarray, folds: int) -> list[Fold]:
    """folds + 1 time-ordered blocks; fold k trains on blocks < k and predicts block k."""
    n = len(ts)
    cuts = [round(n * k / (folds + 1)) for k in range(folds + 2)]
    # a cut moves back to the first row of its timestamp: equal times stay in one block
    inner = [int(np.searchsorted(ts, ts[c], side="left")) for c in cuts[1:-1]]
    bounds = [0, *inner, n]
    if any(b <= a for a, b in itertools.pairwise(bounds)):
        raise ValueError(
            f"{n} rows fall on too few distinct times for {folds} walk-forward folds; "
            "use more data or fewer --folds"
        )
    return [Fold(train_end=bounds[k], test_end=bounds[k + 1]) for k in range(1, folds + 1)]


def train(
    dataset: Dataset,
    label: str = "tp_first",
    kind: str = "gbm",
    folds: int = 5,
    threshold: float = 0.5,
    progress: Progress | None = None,
) -> TrainResult:
    """Walk-forward validate a model of `kind` on `label`, then fit it on every row.

    Rows whose label is NaN (outcome unknown) are left out. ValueError (one line, saying what
    is needed) for an unknown label or kind, too few rows, or one outcome only in a training
    window."""
    if label not in LABELS:
        raise ValueError(f"label {label!r}: use one of {', '.join(LABELS)}")
    if kind not in KINDS:
        raise ValueError(f"model kind {kind!r}: use one of {', '.join(KINDS)}")
    if folds < 1:
        raise ValueError(f"folds = {folds}: walk-forward needs at least 1 fold")
    if not 0 < threshold < 1:
        raise ValueError(f"threshold = {threshold:g}: a probability strictly between 0 and 1")
    x, y, ts = _known_rows(dataset, label)
    _check_rows(y, label, folds)
    from threadpoolctl import threadpool_limits

    new_model(kind)  # imports the model's libraries: the limit reaches only those loaded
    with threadpool_limits(limits=1):
        return _train(
            dataset.names, dataset.sources, x, y, ts, label, kind, folds, threshold, progress
        )


def _train(
    names: tuple[str, ...],
    sources: tuple[str, ...],
    x: np.ndarray,
    y: np.ndarray,
    ts: np.ndarray,
    label: str,
    kind: str,
    folds: int,
    threshold: float,
    progress: Progress | None,
) -> TrainResult:
    plan = walk_forward_folds(ts, folds)
    steps = folds + 2  # the folds, the importance, the final fit
    report = progress or (lambda done, total: None)

    oos_p, fold_metrics = [], []
    for k, fold in enumerate(plan):
        _check_window(y[: fold.train_end], label, k, folds)
        model = new_model(kind).fit(x[: fold.train_end], y[: fold.train_end])
        p = model.predict_proba(x[fold.test_start : fold.test_end])[:, 1]
        oos_p.append(p)
        y_test = y[fold.test_start : fold.test_end]
        fold_metrics.append(
            {
                "train_rows": fold.train_end,
                "test_rows": len(y_test),
                "test_positives": int(y_test.sum()),
                "first_ts": int(ts[fold.test_start]),
                "last_ts": int(ts[fold.test_end - 1]),
                "auc": _finite(auc(y_test, p)),
            }
        )
        report(k + 1, steps)
    last = plan[-1]
    importance = permutation_importance(model, x[last.test_start :], y[last.test_start :], names)
    report(folds + 1, steps)
    final = new_model(kind).fit(x, y)
    report(steps, steps)

    p_all = np.concatenate(oos_p)
    y_oos = y[plan[0].test_start :]
    return TrainResult(
        model=final,
        kind=kind,
        label=label,
        names=tuple(names),
        threshold=threshold,
        folds=plan,
        oos_p=p_all,
        oos_y=y_oos,
        metrics=scores(y_oos, p_all, threshold),
        fold_metrics=fold_metrics,
        reliability=reliability(y_oos, p_all),
        rows=len(y),
        positives=int(y.sum()),
        first_ts=int(ts[0]),
        last_ts=int(ts[-1]),
        sources=tuple(sources),
        reference_bins={n: reference_bins(x[:, j]) for j, n in enumerate(names)},
        standardise=standardise(x),
        importance=importance,
    )


def _known_rows(dataset: Dataset, label: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows with a known `label`, in time order (a builder may join files' rows)."""
    y = np.asarray(dataset.labels[label], dtype=np.float64)
    keep = ~np.isnan(y)
    ts = np.asarray(dataset.ts, dtype=np.int64)[keep]
    order = np.argsort(ts, kind="stable")
    x = np.asarray(dataset.features, dtype=np.float64)[keep][order]
    return x, y[keep][order], ts[order]


def _check_rows(y: np.ndarray, label: str, folds: int) -> None:
    need = MIN_ROWS_PER_BLOCK * (folds + 1)
    if len(y) < need:
        raise ValueError(
            f"label {label}: {len(y)} setups with a known outcome; walk-forward with {folds} "
            f"folds needs at least {need} ({MIN_ROWS_PER_BLOCK} per block): use more data or "
            "fewer --folds"
        )
    positives = int(y.sum())
    negatives = len(y) - positives
    if min(positives, negatives) < MIN_PER_CLASS:
        raise ValueError(
            f"label {label}: {positives} positive and {negatives} negative outcomes in "
            f"{len(y)} setups; a model needs at least {MIN_PER_CLASS} of each: use more data "
            "or another --label"
        )


def _check_window(y: np.ndarray, label: str, k: int, folds: int) -> None:
    positives = int(y.sum())
    if 0 < positives < len(y):
        return
    outcome = "positive" if positives else "negative"
    raise ValueError(
        f"label {label}: the {len(y)} setups before fold {k + 1} of {folds} are all "
        f"{outcome}; every training window needs both outcomes (at least one of each in the "
        "first block): use more data or fewer --folds"
    )


def permutation_importance(
    model: Any, x: np.ndarray, y: np.ndarray, names: tuple[str, ...]
) -> list[dict]:
    """Each feature's AUC drop on (x, y) when its column is shuffled (mean and standard
    deviation over IMPORTANCE_REPEATS shuffles, seeded); [] with one outcome. A feature's
    shuffles go through the model in one call: a call per shuffle costs 5x the time."""
    if not 0 < y.sum() < len(y):
        return []
    rng = np.random.default_rng(SEED)
    base = auc(y, model.predict_proba(x)[:, 1])
    n = len(y)
    rows = []
    for j, name in enumerate(names):
        shuffled = np.tile(x, (IMPORTANCE_REPEATS, 1))
        for r in range(IMPORTANCE_REPEATS):
            shuffled[r * n : (r + 1) * n, j] = x[rng.permutation(n), j]
        p = model.predict_proba(shuffled)[:, 1]
        drops = [base - auc(y, p[r * n : (r + 1) * n]) for r in range(IMPORTANCE_REPEATS)]
        rows.append(
            {"feature": name, "auc_drop": float(np.mean(drops)), "std": float(np.std(drops))}
        )
    return sorted(rows, key=lambda r: -r["auc_drop"])


def standardise(x: np.ndarray) -> dict[str, list[float]]:
    """What SimpleImputer(median) then StandardScaler learn from x (an all-NaN column: median
    0, scale 1), for models that take standardised inputs."""
    with np.errstate(all="ignore"):
        known = ~np.isnan(x).all(axis=0)
        median = np.zeros(x.shape[1])
        median[known] = np.nanmedian(x[:, known], axis=0)
    filled = np.where(np.isnan(x), median, x)
    mean = filled.mean(axis=0)
    scale = filled.std(axis=0)
    scale[scale == 0] = 1.0  # StandardScaler's rule for a constant column
    return {"median": median.tolist(), "mean": mean.tolist(), "scale": scale.tolist()}


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
