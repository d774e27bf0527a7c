"""Derive the training ranks' plan from the training config on the driver: settings, automatic values, checks.

Every TrainConfig field reaches the plan under its own name unless it is listed in DRIVER_ONLY (settings the
launcher consumes). A new training setting that is in neither makes `draft_plan` fail at once, so it cannot be
silently forgotten; a unit test enumerates the fields too.

Settings left null are resolved here from the prepared data (documented in the config reference):
batch_size from the smallest worker shard, epochs from the steps per epoch, monitor from the task. The same
shard arithmetic as the ranks' loader (Parquet metadata only) checks that every rank gets at least one step,
so a batch larger than a shard is a config error in seconds, not a failure inside Horovod.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass

from pipeline.config.model import ModelConfig
from pipeline.config.schema import PipelineConfig, TrainConfig
from pipeline.errors import ConfigError, DataError
from pipeline.launch.model_check import ModelCheck, check_model
from pipeline.layout import Layout
from pipeline.model.factory import BUILTIN_FACTORIES, BUILTIN_PARAMS
from pipeline.model.spec import FeatureSpec
from pipeline.storage.files import parquet_dataset
from pipeline.worker.loader import assign_shards, list_row_groups
from pipeline.worker.plan import TrainPlan

log = logging.getLogger(__name__)
# Used on the driver only, never by a rank: by the launcher (pipeline/launch/launchers.py) or at registration.
DRIVER_ONLY = frozenset(
    {
        "backend",
        "num_proc",
        "start_timeout_s",
        "nics",
        "horovod_cycle_time_ms",
        "decision_threshold",
        "max_restarts",
        "restart_wait_s",
        "device",  # resolved against Spark's GPU resources at launch (pipeline/launch/gpu_resources.py)
    }
)
MIN_STEPS_PER_EPOCH = 50  # automatic batch size: every worker gets at least this many steps per epoch
AUTO_BATCH_RANGE = (16, 1024)
MIN_TOTAL_STEPS = 2_000  # automatic epochs: at least this many optimizer steps in all ...
AUTO_EPOCH_RANGE = (10, 200)  # ... within these bounds; early stopping ends most runs sooner
MONITOR_BY_TASK = {"binary": "val_auc", "multiclass": "val_accuracy", "regression": "val_rmse"}


@dataclass(frozen=True)
class ShardFacts:
    """Train split rows as the ranks will see them (from Parquet metadata, as the loader assigns row groups)."""

    train_rows: int
    smallest_shard_rows: int
    row_groups: int


@dataclass(frozen=True)
class PlanDraft:
    """A rank plan resolved and checked before its MLflow run exists: the slow, failing parts happen first."""

    layout: Layout
    spec: FeatureSpec
    settings: dict  # every rank setting, automatic values resolved (rank_settings)
    check: ModelCheck  # the model built and run on one batch; carries the shipped code

    def for_run(self, run_id: str) -> TrainPlan:
        return TrainPlan(layout=self.layout, run_id=run_id, spec=self.spec, model_code=self.check.code, **self.settings)


def draft_plan(config: PipelineConfig, spec: FeatureSpec, layout: Layout) -> PlanDraft:
    """Resolve config into plain values for the ranks and check the model, before any run is opened.

    Raises:
        DataError / ConfigError: see rank_settings and check_model; both fail in seconds on the driver.
    """
    settings = rank_settings(config, spec, layout)
    return PlanDraft(layout, spec, settings, check_model(config.train, settings["model"], spec))


def build_plan(config: PipelineConfig, spec: FeatureSpec, layout: Layout, run_id: str) -> TrainPlan:
    """The one constructor of a rank plan (train, tune and the tests): draft_plan for the run `run_id`."""
    return draft_plan(config, spec, layout).for_run(run_id)


def rank_settings(config: PipelineConfig, spec: FeatureSpec, layout: Layout) -> dict:
    """Every non-driver training setting as a plain value, automatic ones resolved, checked against the data.

    Raises:
        DataError: the spec has no label. ConfigError: a batch that leaves some rank without a single step.
    """
    if spec.label is None:
        raise DataError("the feature spec has no label. Fix: set features.label and re-run prepare")
    train = config.train
    settings = configured_settings(train)
    facts = shard_facts(layout, train.num_proc)
    batch = train.batch_size or auto_batch_size(facts.smallest_shard_rows)
    steps = usable_steps(facts.smallest_shard_rows, batch, train)
    if facts.row_groups < train.num_proc:
        raise ConfigError(
            f"the train split has {facts.row_groups} Parquet row group(s) for train.num_proc={train.num_proc} "
            "workers, so some worker would get no data (workers share the split by row group). Fix: raise "
            "prepare.output_files or lower prepare.row_group_rows and re-run prepare, or lower train.num_proc"
        )
    if steps == 0:
        raise ConfigError(
            f"train.batch_size={batch} x train.backward_passes_per_step={train.backward_passes_per_step} leaves "
            f"no full step for some worker: the train split has {facts.train_rows} rows in {facts.row_groups} row "
            f"group(s) over train.num_proc={train.num_proc} workers, the smallest share {facts.smallest_shard_rows} "
            "rows. Fix: lower train.batch_size (or leave it null for an automatic size) or train.num_proc"
        )
    every = train.checkpoint_every_steps
    if every is not None and every % train.backward_passes_per_step:
        raise ConfigError(
            f"train.checkpoint_every_steps={every} is not a multiple of train.backward_passes_per_step="
            f"{train.backward_passes_per_step}: a checkpoint must fall after an optimizer step, not between the "
            f"accumulated passes. Fix: set train.checkpoint_every_steps to a multiple of "
            f"{train.backward_passes_per_step}"
        )
    epochs = train.epochs or auto_epochs(steps)
    monitor = train.monitor or MONITOR_BY_TASK[spec.label.task]
    settings.update(batch_size=batch, epochs=epochs, monitor=monitor)
    log.info(
        "train split %d rows, %d workers (smallest share %d rows): batch %d/worker%s, %d steps/epoch, "
        "up to %d epochs%s, monitor %s%s",
        facts.train_rows,
        train.num_proc,
        facts.smallest_shard_rows,
        batch,
        "" if train.batch_size else " (auto)",
        steps,
        epochs,
        "" if train.epochs else " (auto)",
        monitor,
        "" if train.monitor else " (auto)",
    )
    return settings


def configured_settings(train: TrainConfig) -> dict:
    """The rank-side fields as configured (threads resolved, the model as a dict); automatic ones still null."""
    settings = {name: getattr(train, name) for name in type(train).model_fields if name not in DRIVER_ONLY}
    settings["model"] = resolved_model(train.model)
    settings["augment"] = train.augment.model_dump()
    settings["threads_per_worker"] = train.threads_per_worker or max(1, (os.cpu_count() or 1) // train.num_proc)
    return settings


def resolved_model(model: ModelConfig) -> dict:
    """The model as the ranks and the registered model build it: a factory reference and its plain params.

    Built-ins resolve to their factories in pipeline/model/networks.py, so every model takes one code path.
    """
    if model.type == "custom":
        return {"type": "custom", "factory": model.factory, "params": dict(model.params)}
    params = {key: getattr(model, key) for key in BUILTIN_PARAMS[model.type]}
    return {"type": model.type, "factory": BUILTIN_FACTORIES[model.type], "params": params}


def shard_facts(layout: Layout, num_proc: int) -> ShardFacts:
    groups = list_row_groups(parquet_dataset(layout.prepared.features("train")))
    shards = assign_shards(groups, num_proc)
    return ShardFacts(sum(g.rows for g in groups), min(sum(g.rows for g in s) for s in shards), len(groups))


def auto_batch_size(smallest_shard_rows: int) -> int:
    """Largest power of two in AUTO_BATCH_RANGE giving MIN_STEPS_PER_EPOCH steps on the smallest shard."""
    low, high = AUTO_BATCH_RANGE
    target = smallest_shard_rows / MIN_STEPS_PER_EPOCH
    size = 2 ** math.floor(math.log2(target)) if target >= 1 else 1
    return int(min(high, max(low, size)))


def usable_steps(smallest_shard_rows: int, batch: int, train: TrainConfig) -> int:
    """Steps per epoch every rank can take (the loader's rule), whole gradient-accumulation groups only."""
    steps = smallest_shard_rows // batch
    if train.max_steps_per_epoch is not None:
        steps = min(steps, train.max_steps_per_epoch)
    return steps - steps % train.backward_passes_per_step


def auto_epochs(steps_per_epoch: int) -> int:
    low, high = AUTO_EPOCH_RANGE
    return int(min(high, max(low, math.ceil(MIN_TOTAL_STEPS / steps_per_epoch))))
