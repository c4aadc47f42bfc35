"""Serving a setup model: its probability in microseconds, drift, and an online twin.

`Predictor` compiles a saved model into numpy arrays, because scikit-learn's predict_proba
validates its input on every call and costs far more than a setup's budget (100 us,
benchmarks/models.py) for one row:
- logistic: imputation, scaling and the coefficients fold into one weight vector and an
  intercept (w / scale, b - sum(w * mean / scale)): NaN becomes the training median, then one
  dot product and a sigmoid;
- gbm: every tree's nodes go into flat arrays (children as indices into them, a leaf its own
  two children), and all trees step down one level at a time together: at a node a value at or
  below the threshold goes left, NaN goes where the training taught it (missing_go_to_left),
  exactly sklearn's rule; the leaves' values add to the baseline log-odds.
Both give sklearn's predict_proba to 1e-12 (tests/test_models.py).

Drift: `psi` compares a feature's recent values with its training distribution (the decile
bins `reference_bins` stores), the population stability index
    PSI = sum over bins of (a - e) * ln(a / e),
a and e the recent and training shares of a bin (NaN is a bin of its own), each floored at
PSI_EPS so an empty bin counts as rare rather than infinitely surprising. Read it as: under 0.1
stable, 0.1 to 0.25 a shift to watch, above 0.25 ([models] psi_alert) a different market than
the model was trained on. `DriftWatch` keeps the last psi_window setups' features.

`OnlineModel` is a logistic model (SGDClassifier, log loss) taught one outcome at a time as
outcomes become known, on inputs standardised with the batch model's training figures; its
rolling score (AUC and log loss over the last 200 outcomes of the predictions made before each
was taught) shows next to the batch model's whether the market has moved away from the batch.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mikrobot_tui.trading.models.metrics import RollingScore

PSI_EPS = 1e-4
DRIFT_BINS = 10


def _sigmoid(raw: float) -> float:
    if raw >= 0:
        return 1.0 / (1.0 + math.exp(-raw))
    z = math.exp(raw)  # no overflow for very negative log-odds
    return z / (1.0 + z)


def _sigmoids(raw: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -raw))  # 1 / (1 + e^-raw) without overflow


class Predictor:
    """The probability a model gives one setup's features (FEATURE_NAMES order, NaN unknown).
    Built from anything with `.model` and `.kind`: a LoadedModel or a TrainResult."""

    def __init__(self, loaded: Any) -> None:
        self.kind = loaded.kind
        if self.kind == "logistic":
            self._compile_linear(loaded.model)
            self._one, self._many = self._linear, self._linear_batch
        elif self.kind == "gbm":
            self._compile_trees(loaded.model)
            self._one, self._many = self._trees, self._trees_batch
        else:
            raise ValueError(f"model kind {self.kind!r}: use gbm or logistic")

    def probability(self, x: np.ndarray) -> float:
        """One setup: x is (F,) float64."""
        return self._one(x)

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Many setups at once: x is (n, F)."""
        return self._many(x)

    def _compile_linear(self, pipeline: Any) -> None:
        imputer, scaler, logistic = (step for _, step in pipeline.steps)
        coef = logistic.coef_[0] / scaler.scale_
        self._fill = np.asarray(imputer.statistics_, dtype=np.float64)
        self._w = np.ascontiguousarray(coef, dtype=np.float64)
        self._b = float(logistic.intercept_[0] - np.dot(coef, scaler.mean_))

    def _linear(self, x: np.ndarray) -> float:
        filled = np.where(np.isnan(x), self._fill, x)
        return _sigmoid(float(filled @ self._w) + self._b)

    def _linear_batch(self, x: np.ndarray) -> np.ndarray:
        raw = np.where(np.isnan(x), self._fill, x) @ self._w + self._b
        return _sigmoids(raw)

    def _compile_trees(self, model: Any) -> None:
        trees = [iteration[0].nodes for iteration in model._predictors]
        if any(t["is_categorical"].any() for t in trees):
            raise ValueError("categorical splits are not compiled; train without categories")
        sizes = [len(t) for t in trees]
        offsets = np.cumsum([0, *sizes[:-1]]).astype(np.intp)
        nodes = np.concatenate(trees)
        shift = np.repeat(offsets, sizes)
        me = np.arange(len(nodes), dtype=np.intp)
        leaf = nodes["is_leaf"].astype(bool)
        self._roots = offsets
        self._feature = np.where(leaf, 0, nodes["feature_idx"]).astype(np.intp)
        self._threshold = nodes["num_threshold"].astype(np.float64)
        self._nan_left = nodes["missing_go_to_left"].astype(bool)
        self._left = np.where(leaf, me, nodes["left"].astype(np.intp) + shift)
        self._right = np.where(leaf, me, nodes["right"].astype(np.intp) + shift)
        self._value = nodes["value"].astype(np.float64)
        self._depth = int(nodes["depth"].max())
        self._baseline = float(np.ravel(model._baseline_prediction)[0])

    def _trees(self, x: np.ndarray) -> float:
        at = self._roots
        nan = np.isnan(x)
        for _ in range(self._depth):
            f = self._feature[at]
            left = (x[f] <= self._threshold[at]) | (nan[f] & self._nan_left[at])
            at = np.where(left, self._left[at], self._right[at])
        return _sigmoid(self._baseline + float(self._value[at].sum()))

    def _trees_batch(self, x: np.ndarray) -> np.ndarray:
        rows = np.arange(len(x))[:, None]
        at = np.broadcast_to(self._roots, (len(x), len(self._roots)))
        nan = np.isnan(x)
        for _ in range(self._depth):
            f = self._feature[at]
            left = (x[rows, f] <= self._threshold[at]) | (nan[rows, f] & self._nan_left[at])
            at = np.where(left, self._left[at], self._right[at])
        raw = self._baseline + self._value[at].sum(axis=1)
        return _sigmoids(raw)


def reference_bins(values: np.ndarray, bins: int = DRIFT_BINS) -> dict:
    """A feature's training distribution: the inner decile edges (duplicates merged, so a
    feature of few values has fewer bins) and the share of values in each bin, (-inf, e1],
    (e1, e2], ... (e_last, inf), then the share of NaN."""
    values = np.asarray(values, dtype=np.float64)
    known = values[~np.isnan(values)]
    edges = np.unique(np.quantile(known, np.arange(1, bins) / bins)) if len(known) else []
    edges = np.asarray(edges, dtype=np.float64)
    return {"edges": edges.tolist(), "shares": bin_shares(edges, values).tolist()}


def bin_shares(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The share of `values` in each bin of `reference_bins` (len(edges) + 2 shares)."""
    values = np.asarray(values, dtype=np.float64)
    nan = np.isnan(values)
    idx = np.searchsorted(np.asarray(edges, dtype=np.float64), values[~nan], side="left")
    counts = np.bincount(idx, minlength=len(edges) + 1).astype(np.float64)
    return np.append(counts, float(nan.sum())) / max(len(values), 1)


def psi(reference: dict, values: np.ndarray) -> float:
    """The population stability index of `values` against a feature's `reference_bins`."""
    expected = np.maximum(np.asarray(reference["shares"], dtype=np.float64), PSI_EPS)
    actual = np.maximum(bin_shares(np.asarray(reference["edges"]), values), PSI_EPS)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


class DriftWatch:
    """The last `window` setups' features, and which features drifted past `alert` PSI."""

    def __init__(
        self, reference: dict[str, dict], names: tuple[str, ...], window: int = 200, alert=0.25
    ) -> None:
        self.reference = reference
        self.names = tuple(names)
        self.window = window
        self.alert = alert
        self._rows = np.full((window, len(self.names)), np.nan)
        self._seen = 0

    @classmethod
    def for_model(cls, loaded: Any, window: int = 200, alert: float = 0.25) -> DriftWatch:
        return cls(loaded.meta["drift"], loaded.names, window, alert)

    def add(self, x: np.ndarray) -> None:
        self._rows[self._seen % self.window] = x
        self._seen += 1

    def __len__(self) -> int:
        return min(self._seen, self.window)

    def psi(self) -> dict[str, float]:
        """Each feature's PSI over the last `window` setups; {} until there are that many.

        A part-filled window would be judged on too few rows: with n rows in 10 bins the PSI
        of an unchanged market is about 9 / n by chance alone (0.15 at 60 rows, over 0.25
        for some of 49 features), so drift is only judged on a whole window."""
        n = len(self)
        if n < self.window:
            return {}
        rows = self._rows[:n]
        return {name: psi(self.reference[name], rows[:, j]) for j, name in enumerate(self.names)}

    def alerts(self) -> list[tuple[str, float]]:
        """The features whose PSI is above `alert`, the largest first."""
        over = [(n, v) for n, v in self.psi().items() if v > self.alert]
        return sorted(over, key=lambda item: -item[1])


class OnlineModel:
    """A logistic model taught one setup's outcome at a time, on the batch model's
    standardisation; `score` rates its earlier predictions.

    SGDClassifier with log loss, L2 alpha 1e-3 and a constant step of 0.003: sklearn's default
    "optimal" schedule takes steps of about 1 / (alpha * t0) at first, far too long for single
    outcomes on 49 inputs (on synthetic setups it diverged to a log loss above 5); 0.003 kept
    it near the batch model's on the same rows."""

    def __init__(
        self, standardise: dict, window: int = 200, alpha: float = 1e-3, step: float = 0.003
    ) -> None:
        from sklearn.linear_model import SGDClassifier

        self._median = np.asarray(standardise["median"], dtype=np.float64)
        self._mean = np.asarray(standardise["mean"], dtype=np.float64)
        self._scale = np.asarray(standardise["scale"], dtype=np.float64)
        self.model = SGDClassifier(
            loss="log_loss", alpha=alpha, learning_rate="constant", eta0=step, random_state=0
        )
        self.score = RollingScore(window)
        self.updates = 0

    @classmethod
    def for_model(cls, loaded: Any, window: int = 200) -> OnlineModel:
        return cls(loaded.meta["standardise"], window)

    def _inputs(self, x: np.ndarray) -> np.ndarray:
        return (np.where(np.isnan(x), self._median, x) - self._mean) / self._scale

    def probability(self, x: np.ndarray) -> float:
        """0.5 until the first outcome is taught (the model knows nothing yet)."""
        if self.updates == 0:
            return 0.5
        raw = float(self._inputs(x) @ self.model.coef_[0]) + float(self.model.intercept_[0])
        return _sigmoid(raw)

    def update(self, x: np.ndarray, outcome: float, predicted: float | None = None) -> None:
        """Teach the setup `x`'s outcome (1 or 0). `predicted`: the probability this model
        gave the setup when it was decided; by default the one it would give now, before it
        learns the outcome. Either way the score sees a prediction made without it."""
        p = self.probability(x) if predicted is None else predicted
        self.score.add(p, outcome)
        self.model.partial_fit(self._inputs(x)[None, :], [int(outcome)], classes=[0, 1])
        self.updates += 1
