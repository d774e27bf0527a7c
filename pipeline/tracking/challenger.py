"""Champion against challenger on the same rows (driver side, inside the challenger's train run).

`retrain` trains a challenger whose test split is the most recent labelled window. Both registered pyfuncs
predict that split's clean rows, so the two metrics come from the same rows, the same code path as scoring and
the same metric rules (pipeline/evaluation/bootstrap.py); the challenger takes @champion only when it beats the
champion there by more than retrain.margin and beats the constant predictor. Compared with registry.promote,
which reads each version's own logged test metric (each measured on its own test split), this is the fair test
once the data has moved on.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import numpy as np

from pipeline.errors import ConfigError
from pipeline.evaluation.bootstrap import point_score
from pipeline.model.spec import LabelSpec
from pipeline.tracking import registry, runs
from pipeline.tracking.registry import CHAMPION, Promotion, RegisteredModel
from pipeline.worker.metrics import higher_is_better

log = logging.getLogger(__name__)

# (model, metric, constant baseline on the window, the window's rows, the model's predictions of them) -> decision
Promoter = Callable[[RegisteredModel, str, "float | None", object, object], Promotion]


def window_metric(metric: str, label: LabelSpec, rows, predictions) -> float | None:
    """`metric` of one model's pyfunc `predictions` of `rows` (pandas, label column included); rows without a
    label are left out. None: the metric has no rule on a window (e.g. test_loss)."""
    name = metric.removeprefix("test_")
    outcome = rows[label.column]
    if label.task == "binary":
        truth = label.binary_targets(outcome)
        predicted = (
            predictions["probability"].to_numpy(dtype="float64")
            if name == "auc"
            else label.binary_targets(predictions["prediction"])
        )
    elif label.task == "regression":
        truth = outcome.to_numpy(dtype="float64", na_value=np.nan)
        predicted = predictions["prediction"].to_numpy(dtype="float64")
    else:
        truth = outcome.astype("string").to_numpy(dtype=object, na_value=None)
        predicted = predictions["prediction"].astype("string").to_numpy(dtype=object)
    known = np.array([value is not None and value == value for value in truth], dtype=bool)
    return point_score(name, truth[known], predicted[known])


def compare_on_window(margin: float, label: LabelSpec) -> Promoter:
    """A promotion rule for train.run: the challenger (the version just registered) against @champion on the
    challenger's test split, by more than `margin`."""

    def decide(model: RegisteredModel, metric: str, baseline: float | None, rows, predictions) -> Promotion:
        challenger_value = window_metric(metric, label, rows, predictions)
        if challenger_value is None:
            raise ConfigError(
                f"retrain compares models by {metric}, which has no rule on a window. Fix: set "
                "tracking.promote_metric to test_auc, test_accuracy, test_rmse or test_mae"
            )
        champion = current_champion(model.name)
        champion_value = _champion_value(champion, metric, rows) if champion else None
        runs.log_metrics(
            {f"window_{metric}": challenger_value}
            | ({f"champion_window_{metric}": champion_value} if champion_value is not None else {})
        )
        promoted, why, beats = _verdict(metric, challenger_value, champion, champion_value, baseline, margin)
        if promoted:
            from mlflow.tracking import MlflowClient

            higher = higher_is_better(metric)
            promoted, why = registry.take_champion(
                MlflowClient(), model, metric, challenger_value, champion, False, higher, why
            )
        log.info("challenger %s v%s: %s (%s)", model.name, model.version, "champion" if promoted else "kept", why)
        return Promotion(
            model=model.name,
            candidate_version=model.version,
            promoted=promoted,
            reason=why,
            metric=metric,
            candidate_metric=challenger_value,
            champion_metric=champion_value,
            previous_champion_version=str(champion.version) if champion else None,
            baseline_metric=baseline,
            beats_baseline=beats,
        )

    return decide


def _verdict(metric, challenger, champion, champion_value, baseline, margin) -> tuple[bool, str, bool | None]:
    """(promote?, why, beats the baseline?) before any alias moves."""
    higher = higher_is_better(metric)
    beats = None if baseline is None else (challenger > baseline if higher else challenger < baseline)
    if math.isnan(challenger):
        return False, f"{metric} is undefined on the compare window (a single class?): not promoted", beats
    if beats is False:
        return False, f"{metric} {challenger:.5f} does not beat the constant baseline {baseline:.5f}", beats
    if champion is None:
        return True, "no champion yet", beats
    if champion_value is None or math.isnan(champion_value):
        return True, f"champion v{champion.version} has no {metric} on the window", beats
    gain = challenger - champion_value if higher else champion_value - challenger
    verdict = "beats" if gain > margin else "does not beat"
    why = (
        f"on the compare window {metric} {challenger:.5f} vs champion v{champion.version} {champion_value:.5f}: "
        f"{verdict} it by more than the margin {margin:g} (by {gain:+.5f})"
    )
    return gain > margin, why, beats


def current_champion(name: str):
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        return MlflowClient().get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def _champion_value(champion, metric: str, rows) -> float | None:
    """The champion's metric on the same rows, through its own pyfunc (its own features, threshold and code)."""
    uri = f"models:/{champion.name}/{champion.version}"
    spec = registry.load_spec(uri)
    missing = sorted(set(spec.input_columns) - set(rows.columns))
    if missing:
        raise ConfigError(
            f"champion v{champion.version} reads columns {missing} that the challenger's features do not have, "
            "so both cannot predict the same rows. Fix: keep those columns in features.*, or promote by hand "
            "(python -m pipeline train --force-promote)"
        )
    predictions = registry.load_pyfunc(uri).predict(rows[list(spec.input_columns)])
    return window_metric(metric, spec.label, rows, predictions)
