"""Bootstrap intervals of small test splits, and the promotion rule that will not call noise better."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from pipeline.evaluation.bootstrap import Interval, metric_interval
from pipeline.tracking.registry import _beyond_noise


def test_interval_brackets_the_metric_and_narrows_with_rows():
    rng = np.random.default_rng(1)
    truth = (rng.random(900) < 0.3).astype(float)
    probability = np.clip(truth * 0.3 + rng.random(900) * 0.7, 0, 1)
    wide = metric_interval("test_auc", truth[:150], probability[:150])
    narrow = metric_interval("test_auc", truth, probability)
    assert wide.low < roc_auc_score(truth[:150], probability[:150]) < wide.high and wide.rows == 150
    assert narrow.half_width < wide.half_width
    assert metric_interval("test_auc", np.zeros(1200), np.zeros(1200)) is None  # not a small split
    assert metric_interval("test_loss", truth, probability) is None  # no rule for it
    rmse = metric_interval("test_rmse", np.arange(100.0), np.arange(100.0) + rng.normal(size=100))
    assert 0.7 < rmse.low < 1.0 < rmse.high < 1.3


def test_a_margin_inside_the_noise_is_not_better():
    noise = Interval(0.70, 0.80, 158)
    kept, why = _beyond_noise("test_auc", 0.76, 0.74, noise, "test_auc beats champion")
    assert not kept and "within the noise (+-0.0500 on 158 test rows): not called better" in why
    promoted, why = _beyond_noise("test_rmse", 1.0, 1.2, Interval(0.95, 1.05, 300), "test_rmse beats champion")
    assert promoted and "more than the noise" in why


def test_vectorised_auc_matches_scikit_learn_with_ties():
    from pipeline.evaluation.bootstrap import _auc

    rng = np.random.default_rng(2)
    truth = (rng.random((5, 80)) < 0.4).astype(float)
    probability = np.round(rng.random((5, 80)), 1)  # many ties
    expected = [roc_auc_score(t, p) for t, p in zip(truth, probability, strict=True)]
    np.testing.assert_allclose(_auc(truth, probability), expected)
