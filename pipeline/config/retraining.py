"""The `retrain` section: the rolling window a challenger trains on, the window it is compared with the champion
on, the margin it must win by, and the policy that says when to retrain (`python -m pipeline retrain`). Part of
the config schema (pipeline/config/schema.py assembles the sections)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from pipeline.config.frozen import Frozen

Trigger = Literal["schedule", "drift", "metric_floor"]


class RetrainConfig(Frozen):
    window_days: int = Field(273, ge=1)
    """Days of data the challenger trains on (the train split of its own prepare), ending where validation
    starts. 273 is nine months."""
    val_days: int = Field(14, ge=1)
    """Days after the train window: the challenger's validation split (early stopping, best epoch, threshold)."""
    compare_days: int = Field(14, ge=1)
    """The most recent labelled days, up to `retrain --date` included: both models predict these rows and the
    promotion metric decides. Neither trained on them (a champion whose own split overlaps them is refused)."""
    margin: float = Field(0.0, ge=0)
    """The challenger becomes @champion only when its metric beats the champion's on the compare window by more
    than this (in the metric's units, e.g. 0.005 AUC); it must also beat the constant predictor there."""
    when: list[Trigger] = Field(default_factory=lambda: ["schedule"])
    """What makes `retrain` train (any one suffices): schedule: every time it runs (cron or Airflow sets the
    cadence); drift: the compare window's score batches drifted (see drift_share); metric_floor: the realised
    metric of its evaluated dates is worse than metric_floor. Otherwise it says why not and exits 0."""
    drift_share: float = Field(0.3, gt=0, le=1)
    """drift: retrain when the share of features at or above monitor.warn_psi, averaged over the window's scored
    dates, reaches this (or any date failed at monitor.fail_psi)."""
    metric_floor: float | None = None
    """metric_floor: the realised metric (realised_auc, _accuracy, _rmse or _mae of the promotion metric) below
    which (above, for errors) the window's evaluated dates, weighted by labelled rows, call for retraining."""

    @model_validator(mode="after")
    def _floor_given(self) -> RetrainConfig:
        if "metric_floor" in self.when and self.metric_floor is None:
            raise ValueError(
                "retrain.when lists metric_floor but retrain.metric_floor is null. "
                "Fix: set retrain.metric_floor (e.g. 0.70 for AUC) or drop metric_floor from retrain.when"
            )
        return self
