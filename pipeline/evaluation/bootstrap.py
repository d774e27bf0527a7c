"""How much a test metric on a small test split can be trusted: a percentile bootstrap interval (driver side).

Runs on the driver after registration, on the registered model's predictions for the test split (already in
memory for the plots). Only for small splits (under SMALL_TEST_ROWS rows), where one 10% split of a table of a
few thousand rows moves a metric by several points: the interval is logged beside the metric, printed in the
summary, and promotion does not call a candidate better when it beats the champion by less than its half-width.
scikit-learn computes AUC; the resampling itself is a few lines of numpy (1,000 resamples of under 1,000 rows
take well under a second).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SMALL_TEST_ROWS = 1_000
RESAMPLES = 1_000
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    rows: int

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def metric_interval(metric: str, truth: np.ndarray, predicted: np.ndarray, seed: int = 0) -> Interval | None:
    """The 95% percentile bootstrap interval of `metric` (test_auc / _accuracy / _rmse / _mae), or None when the
    split is not small or the metric has no resampling rule here."""
    score = _SCORES.get(metric.removeprefix("test_"))
    rows = len(truth)
    if score is None or rows >= SMALL_TEST_ROWS or rows < 2:
        return None
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(RESAMPLES):
        pick = rng.integers(0, rows, rows)
        value = score(truth[pick], predicted[pick])
        if value is not None:
            values.append(value)
    if len(values) < RESAMPLES // 2:
        return None  # e.g. resamples of a tiny binary split that hold a single class
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return Interval(float(low), float(high), rows)


def _auc(truth: np.ndarray, probability: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    if truth.min() == truth.max():
        return None
    return float(roc_auc_score(truth, probability))


_SCORES = {
    "auc": _auc,
    "accuracy": lambda truth, predicted: float(np.mean(truth == predicted)),
    "rmse": lambda truth, predicted: float(np.sqrt(np.mean((truth - predicted) ** 2))),
    "mae": lambda truth, predicted: float(np.mean(np.abs(truth - predicted))),
}
