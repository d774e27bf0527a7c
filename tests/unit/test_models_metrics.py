"""Models build from plain config dicts; histogram AUC matches the exact AUC; allreduce sums compose."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from pipeline.model.factory import BUILTIN_FACTORIES, build_network
from pipeline.model.inputs import ModelInputs, TensorInput
from pipeline.model.networks import LinearModel, TabularMLP
from pipeline.worker.metrics import MetricSums, auc_from_histograms

MLP = {
    "factory": BUILTIN_FACTORIES["mlp"],
    "params": {"hidden": [16, 8], "activation": "gelu", "dropout": 0.1, "norm": "batch"},
}


def inputs(num_numeric: int, cardinalities: list[int], task="binary", out=1) -> ModelInputs:
    tensors = {}
    if num_numeric:
        tensors["numeric"] = TensorInput("numeric", (num_numeric,), "float32", ())
    if cardinalities:
        tensors["categorical"] = TensorInput("categorical", (len(cardinalities),), "int64", (), tuple(cardinalities))
    return ModelInputs(tensors, task, out)


def test_builtin_factories_take_the_batch_mapping():
    batch = {"numeric": torch.randn(5, 3), "categorical": torch.randint(0, 4, (5, 2))}
    mlp = build_network(MLP, inputs(3, [4, 4]))
    assert isinstance(mlp, TabularMLP) and mlp(batch).shape == (5, 1)
    linear = build_network({"factory": BUILTIN_FACTORIES["linear"], "params": {}}, inputs(3, [4, 4], "multiclass", 3))
    assert isinstance(linear, LinearModel) and linear(batch).shape == (5, 3)


def test_builtins_work_with_only_one_kind_of_column():
    only_categorical = {"categorical": torch.randint(0, 4, (5, 2))}
    assert build_network(MLP, inputs(0, [4, 4]))(only_categorical).shape == (5, 1)
    linear = build_network({"factory": BUILTIN_FACTORIES["linear"], "params": {}}, inputs(0, [4, 4]))
    assert linear(only_categorical).shape == (5, 1)
    assert build_network(MLP, inputs(3, []))({"numeric": torch.randn(5, 3)}).shape == (5, 1)


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
