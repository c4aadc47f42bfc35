"""How good a model's probabilities were: AUC, log loss, Brier score, a reliability table.

Plain numpy, so serving and the cockpit can score predictions without importing
scikit-learn. `y` holds outcomes 1/0, `p` the probabilities predicted for them.

- AUC: the chance that a random setup that worked got a higher probability than a random one
  that did not (ties count half); 0.5 is no skill, 1 a perfect ranking. It says nothing about
  whether the probabilities themselves are right.
- Log loss: the mean of -ln(p) over the setups that worked and -ln(1 - p) over the rest (p kept
  inside [1e-15, 1 - 1e-15]); predicting the base rate b every time scores
  -(b ln b + (1 - b) ln(1 - b)), 0.693 at b = 0.5. Lower is better.
- Brier score: the mean of (p - y)^2; the base rate every time scores b(1 - b). Lower is better.
- Reliability: the predictions cut into deciles of p (each bin a tenth of the setups; a setup
  model's probabilities cover a narrow range, so fixed-width bins would leave most empty), each
  with its count, mean prediction and observed rate. Calibrated: mean prediction close to the
  observed rate in every bin. Lift: the top bin's rate above the bottom bin's.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

EPS = 1e-15  # log loss keeps p this far from 0 and 1
RELIABILITY_BINS = 10


def auc(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve (the Mann-Whitney U over n_pos * n_neg); NaN with one class."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    n_pos = int(np.sum(y == 1))
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    order = np.argsort(p, kind="mergesort")
    sorted_p = p[order]
    ranks = np.empty(len(p), dtype=np.float64)
    # tied probabilities share the mean of their ranks (1-based)
    starts = np.flatnonzero(np.r_[True, sorted_p[1:] != sorted_p[:-1]])
    ends = np.r_[starts[1:], len(p)]
    for start, end in zip(starts, ends, strict=True):
        ranks[order[start:end]] = (start + end + 1) / 2.0
    u = float(ranks[y == 1].sum()) - n_pos * (n_pos + 1) / 2.0
    return u / (n_pos * n_neg)


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    y = np.asarray(y, dtype=np.float64)
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    if len(y) == 0:
        return math.nan
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def brier(y: np.ndarray, p: np.ndarray) -> float:
    y = np.asarray(y, dtype=np.float64)
    if len(y) == 0:
        return math.nan
    return float(np.mean((np.asarray(p, dtype=np.float64) - y) ** 2))


def reliability(y: np.ndarray, p: np.ndarray, bins: int = RELIABILITY_BINS) -> list[dict]:
    """Deciles of p (lowest first): count, low and high p, mean p, observed rate. Fewer rows
    than bins give fewer bins; a bin never splits equal probabilities."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    order = np.argsort(p, kind="mergesort")
    cuts = [round(len(p) * k / bins) for k in range(bins + 1)]
    rows = []
    start = 0
    for cut in cuts[1:]:
        end = cut
        # move the cut past equal probabilities, so one value never falls in two bins
        while 0 < end < len(p) and p[order[end]] == p[order[end - 1]]:
            end += 1
        if end <= start:
            continue
        idx = order[start:end]
        rows.append(
            {
                "count": len(idx),
                "p_low": float(p[idx[0]]),
                "p_high": float(p[idx[-1]]),
                "mean_predicted": float(p[idx].mean()),
                "observed_rate": float(y[idx].mean()),
            }
        )
        start = end
    return rows


def scores(y: np.ndarray, p: np.ndarray, threshold: float) -> dict:
    """The out-of-sample figures a trained model keeps (registry JSON; NaN as None)."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    predicted = p >= threshold
    tp = int(np.sum(predicted & (y == 1)))
    fp = int(np.sum(predicted & (y == 0)))
    fn = int(np.sum(~predicted & (y == 1)))
    tn = int(np.sum(~predicted & (y == 0)))
    return {
        "auc": _finite(auc(y, p)),
        "log_loss": _finite(log_loss(y, p)),
        "brier": _finite(brier(y, p)),
        "base_rate": _finite(float(y.mean()) if len(y) else math.nan),
        "threshold": threshold,
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / (tp + fn) if tp + fn else None,
        "rows": len(y),
        "positives": int(np.sum(y == 1)),
        "predicted_positive": tp + fp,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
    }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


class RollingScore:
    """AUC and log loss of the last `window` (prediction, outcome) pairs: a live model's score
    as outcomes arrive (each prediction recorded before its outcome taught the model)."""

    def __init__(self, window: int = 200) -> None:
        self.window = window
        self._p: deque[float] = deque(maxlen=window)
        self._y: deque[float] = deque(maxlen=window)

    def add(self, p: float, y: float) -> None:
        self._p.append(float(p))
        self._y.append(float(y))

    def __len__(self) -> int:
        return len(self._p)

    def auc(self) -> float:
        return auc(np.fromiter(self._y, float), np.fromiter(self._p, float))

    def log_loss(self) -> float:
        return log_loss(np.fromiter(self._y, float), np.fromiter(self._p, float))
