"""Derive the training ranks' plan from the training config, field by field, on the driver.

Every TrainConfig field reaches the plan under its own name unless it is listed in DRIVER_ONLY (settings the
launcher consumes). A new training setting that is in neither makes `build_plan` fail at once, so it cannot be
silently forgotten; a unit test enumerates the fields too.
"""

from __future__ import annotations

import os

from pipeline.config.schema import PipelineConfig, TrainConfig
from pipeline.errors import DataError
from pipeline.layout import Layout
from pipeline.model.spec import FeatureSpec
from pipeline.worker.plan import TrainPlan

# Used by the launcher on the driver (pipeline/stages/launch.py), never by a rank.
DRIVER_ONLY = frozenset({"backend", "num_proc", "start_timeout_s", "nics", "horovod_cycle_time_ms"})


def build_plan(config: PipelineConfig, spec: FeatureSpec, layout: Layout, run_id: str) -> TrainPlan:
    """Resolve config into plain values for the ranks.

    Raises:
        DataError: the prepared spec has no label.
    """
    if spec.label is None:
        raise DataError("the feature spec has no label. Fix: set features.label and re-run prepare")
    return TrainPlan(layout=layout, run_id=run_id, spec=spec, **rank_settings(config.train))


def rank_settings(train: TrainConfig) -> dict:
    """Every non-driver training setting as a plain value (threads resolved, the model as a dict)."""
    settings = {name: getattr(train, name) for name in type(train).model_fields if name not in DRIVER_ONLY}
    settings["model"] = train.model.model_dump()
    settings["threads_per_worker"] = train.threads_per_worker or max(1, (os.cpu_count() or 1) // train.num_proc)
    return settings
