"""How much a test metric on a small test split can be trusted: a percentile bootstrap interval (driver side).

Runs on the driver after registration, on the registered model's predictions for the test split (already in
memory for the plots). Only for small splits (under SMALL_TEST_ROWS rows), where one 10% split of a table of a
few thousand rows moves a metric by several points: the interval is logged beside the metric, printed in the
summary, and promotion does not call a candidate better when it beats the champion by less than its half-width.
All 1,000 resamples are scored at once with numpy (AUC by the rank-sum formula, scipy's rankdata): a few
milliseconds for a few hundred rows.
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
    picks = np.random.default_rng(seed).integers(0, rows, (RESAMPLES, rows))  # one resample per row of picks
    values = score(truth[picks], predicted[picks])
    values = values[np.isfinite(values)]
    if len(values) < RESAMPLES // 2:
        return None  # e.g. resamples of a tiny binary split that hold a single class
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return Interval(float(low), float(high), rows)


def _auc(truth: np.ndarray, probability: np.ndarray) -> np.ndarray:
    """ROC AUC of every resample at once (rows of the arrays), by the rank-sum (Mann-Whitney) formula with tied
    scores given their average rank, as scikit-learn's roc_auc_score computes it; NaN for a one-class resample."""
    from scipy.stats import rankdata

    ranks = rankdata(probability, axis=1)
    positives = truth.sum(axis=1)
    negatives = truth.shape[1] - positives
    with np.errstate(divide="ignore", invalid="ignore"):
        return ((ranks * truth).sum(axis=1) - positives * (positives + 1) / 2) / (positives * negatives)


_SCORES = {
    "auc": _auc,
    "accuracy": lambda truth, predicted: np.mean(truth == predicted, axis=1),
    "rmse": lambda truth, predicted: np.sqrt(np.mean((truth - predicted) ** 2, axis=1)),
    "mae": lambda truth, predicted: np.mean(np.abs(truth - predicted), axis=1),
}


def point_score(metric: str, truth: np.ndarray, predicted: np.ndarray) -> float | None:
    """`metric` (auc / accuracy / rmse / mae, with or without a test_ prefix) of one set of rows, by the same rules
    as the resamples; None for a metric without a rule here, NaN for AUC of a single class."""
    score = _SCORES.get(metric.removeprefix("test_"))
    if score is None or len(truth) == 0:
        return None
    return float(score(np.asarray(truth)[None, :], np.asarray(predicted)[None, :])[0])
