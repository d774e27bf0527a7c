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
from pipeline.model.spec import FeatureSpec

DEFAULT_THRESHOLD = 0.5


def output_columns(task: str) -> list[tuple[str, str]]:
    """(name, mlflow type) of the prediction columns for a task."""
    if task == "binary":
        return [("probability", "double"), ("prediction", "long")]
    if task == "multiclass":
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
            return pd.DataFrame(
                {"probability": scores.astype(np.float64), "prediction": (scores >= self.threshold).astype(np.int64)}
            )
        if self.task == "multiclass":
            classes = np.asarray(self.spec.label.classes, dtype=object)
            return pd.DataFrame(
                {"probability": scores.max(axis=1).astype(np.float64), "prediction": classes[scores.argmax(axis=1)]}
            )
        return pd.DataFrame({"prediction": scores.astype(np.float64)})
