"""Choose a binary model's decision threshold on the validation split (driver side, before registration)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from pipeline.model.predictor import Predictor
from pipeline.model.spec import FeatureSpec
from pipeline.worker.checkpoint import load_weights

log = logging.getLogger(__name__)


def choose_threshold(spec: FeatureSpec, model_config: dict, weights_path: str, validation: pd.DataFrame) -> float:
    """The probability threshold with the best F1 on `validation` (clean rows with the label), via sklearn."""
    from sklearn.metrics import precision_recall_curve

    state = load_weights(weights_path)
    scores = Predictor(spec, model_config, state).scores(validation[spec.input_columns])
    y_true = spec.label.binary_targets(validation[spec.label.column])
    keep = ~np.isnan(y_true)
    precision, recall, thresholds = precision_recall_curve(y_true[keep], scores[keep])
    f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
    best = int(np.argmax(f1))
    log.info("decision threshold %.4f: best F1 %.4f on %d validation rows", thresholds[best], f1[best], keep.sum())
    return float(thresholds[best])
