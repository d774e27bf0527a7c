"""Clean columns -> predictions with a fitted spec and trained weights: the registered model's core.

Used inside the pyfunc (Spark executors, a REST server) and on the driver before registration (choosing the
decision threshold on the validation split). Plain torch + pandas: no MLflow, no Spark.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from pipeline.model.factory import build_network
from pipeline.model.inputs import batch_from_frame, model_inputs, to_model_view
from pipeline.model.losses import predict as predict_from_logits
from pipeline.model.spec import FeatureSpec, LabelSpec

DEFAULT_THRESHOLD = 0.5


def output_columns(label: LabelSpec) -> list[tuple[str, str]]:
    """(name, mlflow type) of the prediction columns for a label.

    Binary: `prediction` in the label's own terms (0/1, or the class value such as "yes" when `label.positive` is
    set) and `probability_of`, the class `probability` is the probability of, on every row.
    """
    if label.task == "binary":
        kind = "long" if label.positive is None else "string"
        return [("probability", "double"), ("prediction", kind), ("probability_of", "string")]
    if label.task == "multiclass":
        return [("probability", "double"), ("prediction", "string")]
    return [("prediction", "double")]


class Predictor:
    """The network with its feature transform; batch-wise, no per-row Python."""

    def __init__(self, spec: FeatureSpec, model_config: dict, state_dict: dict):
        self.spec = spec
        self.task = spec.label.task
        self.threshold = float(model_config.get("decision_threshold", DEFAULT_THRESHOLD))
        self.inputs = model_inputs(spec)
        self.net = build_network(model_config, self.inputs)
        self.net.load_state_dict(state_dict)
        self.net.eval()

    def scores(self, frame: pd.DataFrame) -> np.ndarray:
        """P(positive) (binary), class probabilities (multiclass) or the value in the label's units (regression)."""
        batch = to_model_view(batch_from_frame(self.spec, frame), self.inputs)
        with torch.inference_mode():
            logits = self.net(batch)
            scores = predict_from_logits(self.task, logits).numpy()
        if self.task == "regression":
            return self.spec.label.to_original(scores.astype(np.float64))
        return scores

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        scores = self.scores(frame)
        if self.task == "binary":
            return self._binary(scores.astype(np.float64))
        if self.task == "multiclass":
            classes = np.asarray(self.spec.label.classes, dtype=object)
            return pd.DataFrame(
                {"probability": scores.max(axis=1).astype(np.float64), "prediction": classes[scores.argmax(axis=1)]}
            )
        return pd.DataFrame({"prediction": scores.astype(np.float64)})

    def _binary(self, probability: np.ndarray) -> pd.DataFrame:
        positive = probability >= self.threshold
        label = self.spec.label
        if label.positive is None:
            prediction, named = positive.astype(np.int64), "1"
        else:
            # Specs written before the label's classes were stored have no negative value to name: 0/1 then.
            negative = next((c for c in label.classes if c != label.positive), None)
            prediction = np.where(positive, label.positive, negative) if negative else positive.astype(np.int64)
            named = label.positive
        return pd.DataFrame({"probability": probability, "prediction": prediction, "probability_of": named})
