"""The registered MLflow model: clean columns in, predictions out (feature spec + state_dict weights).

Runs wherever the model is loaded (Spark executors, a REST server): imports no pyspark. Weights are a plain
state_dict loaded with weights_only=True, so loading a model never unpickles arbitrary objects. The same class
serves spark_udf and `mlflow models serve`.
"""

from __future__ import annotations

import json
import os

import mlflow.pyfunc
import pandas as pd
import torch

from pipeline.model.predictor import Predictor
from pipeline.model.spec import FeatureSpec

THREADS_ENV = "SPARKTRAIN_PREDICT_THREADS"
ARTIFACT_SPEC = "feature_spec"
ARTIFACT_WEIGHTS = "weights"
ARTIFACT_MODEL = "model_config"
ARTIFACT_PROFILE = "reference_profile"  # optional: versions registered before monitoring have none


class TabularModel(mlflow.pyfunc.PythonModel):
    """Loads the spec, the model config and the weights from the model's artifacts into a Predictor."""

    def load_context(self, context) -> None:
        # One thread per Python worker by default: spark_udf runs one worker per task slot.
        torch.set_num_threads(int(os.environ.get(THREADS_ENV, "1")))
        self.artifact_paths = dict(context.artifacts)  # the score stage reads the reference profile from here
        with open(context.artifacts[ARTIFACT_SPEC], encoding="utf-8") as handle:
            self.spec = FeatureSpec.from_json(handle.read())
        with open(context.artifacts[ARTIFACT_MODEL], encoding="utf-8") as handle:
            model_config = json.load(handle)
        state = torch.load(context.artifacts[ARTIFACT_WEIGHTS], map_location="cpu", weights_only=True)
        self.predictor = Predictor(self.spec, model_config, state)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return self.predictor.predict(model_input)
