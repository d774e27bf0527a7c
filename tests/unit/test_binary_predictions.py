"""Binary predictions in the label's own terms: the class value, and the class the probability is of."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from pipeline.model.factory import build_network
from pipeline.model.inputs import model_inputs
from pipeline.model.predictor import Predictor, output_columns
from pipeline.model.spec import FeatureSpec, LabelSpec, NumericStats

LINEAR = {"factory": "pipeline.model.networks:linear", "params": {}}


def predictor(label: LabelSpec, threshold: float = 0.5) -> Predictor:
    spec = FeatureSpec(
        input_schema={"x": "double"},
        numeric=(NumericStats("x", median=0.0, mean=0.0, std=1.0, missing_indicator=False),),
        label=label,
    ).with_hash()
    net = build_network(LINEAR, model_inputs(spec))
    with torch.no_grad():  # P(positive) rises with x: sigmoid(4x)
        for name, value in net.state_dict().items():
            value.copy_(torch.full_like(value, 4.0 if "weight" in name else 0.0))
    return Predictor(spec, {**LINEAR, "decision_threshold": threshold}, net.state_dict())


def test_text_label_predicts_its_class_values():
    label = LabelSpec("answer", "binary", classes=("no", "yes"), positive="yes")
    result = predictor(label).predict(pd.DataFrame({"x": [-1.0, 2.0, 0.5]}))
    assert list(result.columns) == [name for name, _ in output_columns(label)]
    assert list(result["prediction"]) == ["no", "yes", "yes"]
    assert set(result["probability_of"]) == {"yes"}
    np.testing.assert_allclose(result["probability"], 1 / (1 + np.exp(-4 * np.array([-1.0, 2.0, 0.5]))), rtol=1e-6)


def test_zero_one_label_keeps_its_numbers():
    label = LabelSpec("late", "binary", classes=("0", "1"))
    result = predictor(label, threshold=0.9).predict(pd.DataFrame({"x": [0.2, 1.0]}))
    assert result["prediction"].dtype == np.int64 and list(result["prediction"]) == [0, 1]
    assert set(result["probability_of"]) == {"1"}
    assert output_columns(label) == [("probability", "double"), ("prediction", "long"), ("probability_of", "string")]
