"""The registered MLflow model: clean columns in, predictions out (feature spec + state_dict weights).

Runs wherever the model is loaded (Spark executors, a REST server): imports no pyspark. Weights are a plain
state_dict loaded with weights_only=True, so loading a model never unpickles arbitrary objects. The same class
serves spark_udf and `mlflow models serve`.
"""

from __future__ import annotations

import json
import os

import mlflow.pyfunc
import numpy as np
import pandas as pd
import torch

from pipeline.model.losses import predict as predict_from_logits
from pipeline.model.networks import build_model
from pipeline.model.spec import FeatureSpec

THREADS_ENV = "SPARKTRAIN_PREDICT_THREADS"
ARTIFACT_SPEC = "feature_spec"
ARTIFACT_WEIGHTS = "weights"
ARTIFACT_MODEL = "model_config"


def output_columns(task: str) -> list[tuple[str, str]]:
    """(name, mlflow type) of the prediction columns for a task."""
    if task == "binary":
        return [("probability", "double"), ("prediction", "long")]
    if task == "multiclass":
        return [("probability", "double"), ("prediction", "string")]
    return [("prediction", "double")]


class TabularModel(mlflow.pyfunc.PythonModel):
    """Applies the feature spec's pandas transform, then the network; batch-wise, no per-row Python."""

    def load_context(self, context) -> None:
        # One thread per Python worker by default: spark_udf runs one worker per task slot.
        torch.set_num_threads(int(os.environ.get(THREADS_ENV, "1")))
        with open(context.artifacts[ARTIFACT_SPEC], encoding="utf-8") as handle:
            self.spec = FeatureSpec.from_json(handle.read())
        with open(context.artifacts[ARTIFACT_MODEL], encoding="utf-8") as handle:
            self.model_config = json.load(handle)
        self.task = self.spec.label.task
        self.net = build_model(
            self.model_config, len(self.spec.numeric_columns), self.spec.cardinalities, self.spec.num_classes
        )
        state = torch.load(context.artifacts[ARTIFACT_WEIGHTS], map_location="cpu", weights_only=True)
        self.net.load_state_dict(state)
        self.net.eval()

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        numeric, categorical = self.spec.transform_pandas(model_input)
        with torch.inference_mode():
            logits = self.net(torch.from_numpy(numeric), torch.from_numpy(categorical))
            scores = predict_from_logits(self.task, logits).numpy()
        if self.task == "binary":
            return pd.DataFrame(
                {"probability": scores.astype(np.float64), "prediction": (scores >= 0.5).astype(np.int64)}
            )
        if self.task == "multiclass":
            classes = np.asarray(self.spec.label.classes, dtype=object)
            return pd.DataFrame(
                {"probability": scores.max(axis=1).astype(np.float64), "prediction": classes[scores.argmax(axis=1)]}
            )
        return pd.DataFrame({"prediction": scores.astype(np.float64)})
