"""Models build from plain config dicts; histogram AUC matches the exact AUC; allreduce sums compose."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from pipeline.model.networks import LinearModel, TabularMLP, build_model
from pipeline.worker.metrics import MetricSums, auc_from_histograms

MLP = {"type": "mlp", "hidden": [16, 8], "activation": "gelu", "dropout": 0.1, "norm": "batch"}


def test_models_output_shapes():
    x_num, x_cat = torch.randn(5, 3), torch.randint(0, 4, (5, 2))
    mlp = build_model(MLP, 3, [4, 4], 1)
    assert isinstance(mlp, TabularMLP) and mlp(x_num, x_cat).shape == (5, 1)
    linear = build_model({"type": "linear"}, 3, [4, 4], 3)
    assert isinstance(linear, LinearModel) and linear(x_num, x_cat).shape == (5, 3)


def test_histogram_auc_close_to_exact():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 20_000)
    scores = 1 / (1 + np.exp(-(rng.normal(size=y.size) + y * 0.8)))
    sums = MetricSums("binary")
    logits = torch.from_numpy(np.log(scores / (1 - scores))).float().unsqueeze(1)
    sums.update(logits, torch.from_numpy(y).float())
    auc = MetricSums.finalize("binary", sums.as_tensor(), "val")["val_auc"]
    assert abs(auc - roc_auc_score(y, scores)) < 1e-3


def test_sums_from_two_ranks_equal_one_pass():
    rng = np.random.default_rng(1)
    logits, y = torch.randn(1000, 1), torch.from_numpy(rng.integers(0, 2, 1000)).float()
    whole, part_a, part_b = MetricSums("binary"), MetricSums("binary"), MetricSums("binary")
    whole.update(logits, y)
    part_a.update(logits[:400], y[:400])
    part_b.update(logits[400:], y[400:])
    merged = MetricSums.finalize("binary", part_a.as_tensor() + part_b.as_tensor(), "v")
    single = MetricSums.finalize("binary", whole.as_tensor(), "v")
    assert merged.keys() == single.keys()
    for key in merged:
        assert abs(merged[key] - single[key]) < 1e-6  # float32 batch losses


def test_regression_metrics():
    sums = MetricSums("regression")
    sums.update(torch.tensor([[1.0], [3.0]]), torch.tensor([2.0, 3.0]))
    out = MetricSums.finalize("regression", sums.as_tensor(), "val")
    assert abs(out["val_mae"] - 0.5) < 1e-9 and abs(out["val_rmse"] - np.sqrt(0.5)) < 1e-9


def test_auc_degenerate_class_is_nan():
    assert np.isnan(auc_from_histograms(np.zeros(4), np.ones(4)))
