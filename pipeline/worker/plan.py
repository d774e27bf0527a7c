"""What crosses the driver/rank boundary: the plan (plain values in) and the rank's result (typed values out).

Built on the driver (pipeline/launch/planning.py derives it from the training config field by field), pickled into
each training rank. No config objects, no Spark: only the layout, the fitted feature spec and numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pipeline.layout import Layout
from pipeline.model.spec import FeatureSpec
from pipeline.worker.user_code import CodeArchive

# Called by rank 0 once per epoch with the epoch's metrics record and the epoch index (MLflow logging, a tuning
# trial's pruner: built on the driver, the rank only calls it). A true result stops training after this epoch on
# every rank (a pruned trial); None or False goes on.
EpochCallback = Callable[[dict, int], bool | None]


@dataclass(frozen=True)
class EpochCallbacks:
    """Several callbacks as one, called in order; training stops when any of them asks to."""

    callbacks: tuple[EpochCallback, ...]

    def __call__(self, record: dict, epoch: int) -> bool:
        stops = [bool(callback(record, epoch)) for callback in self.callbacks]
        return any(stops)


@dataclass(frozen=True)
class TrainPlan:
    """Everything a rank needs. Fields named like TrainConfig's carry that setting's resolved value."""

    layout: Layout
    run_id: str  # names the checkpoint folder (the MLflow run id when tracked)
    spec: FeatureSpec
    model: dict  # {"type", "factory": "module:function", "params"} (pipeline/launch/planning.py resolves it)
    epochs: int
    batch_size: int
    lr: float
    scale_lr_by_workers: bool
    warmup_epochs: float
    weight_decay: float
    grad_clip: float | None
    backward_passes_per_step: int
    fp16_allreduce: bool
    grouped_allreduce: bool  # Horovod: one grouped allreduce per step instead of one per gradient tensor
    patience: int
    monitor: str
    threads_per_worker: int
    shuffle_buffer_rows: int
    max_steps_per_epoch: int | None
    seed: int
    loss: str | None  # a user's "module:function", or null for the task's loss
    augment: dict  # {"flip": bool, "crop_padding": int}: train-time image augmentation (pipeline/worker/augment.py)
    precision: str  # fp32, bf16 or fp16 (pipeline/worker/precision.py; GPU only)
    checkpoint_every_steps: int | None  # also checkpoint inside an epoch (mid-epoch resume); null: epoch ends only
    deterministic: bool  # GPU ranks: deterministic kernels (pipeline/worker/device.py)
    model_code: CodeArchive | None = None  # train.model.code, zipped on the driver (not a TrainConfig field)
    use_gpu: bool = False  # train.device resolved by the launcher against Spark's GPU resources

    @property
    def checkpoint_dir(self) -> str:
        return self.layout.checkpoints(self.run_id)

    @property
    def task(self) -> str:
        return self.spec.label.task


@dataclass(frozen=True)
class RankResult:
    """Rank 0's outcome, which every rank returns."""

    history: list[dict]
    best_epoch: int
    best_metric: float | None
    test_metrics: dict[str, float]
    resumed_from_epoch: int | None
    epochs_run: int
    stopped_early: bool
    best_model_path: str
    world_size: int
    steps_per_epoch: int
    workers: list[dict]  # where each rank ran (pipeline/worker/placement.py)
    stopped_by_callback: bool = False  # an epoch callback asked to stop (a pruned tuning trial)
    resumed_from_step: int = 0  # steps of resumed_from_epoch a mid-epoch checkpoint already held

    @property
    def ended_on_its_best_epoch(self) -> bool:
        """The epoch budget ran out on the best epoch so far: the model may still have been improving."""
        return not self.stopped_early and not self.stopped_by_callback and self.best_epoch + 1 == self.epochs_run
