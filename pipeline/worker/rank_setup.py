"""What a rank builds before its first epoch: the split loaders, the seeded model, optimizer and augmentation, and
the checkpoint's weights and progress when one exists.

Runs inside Horovod or TorchDistributor rank processes (pipeline/worker/loop.py calls it once per run). The order
is the same on every rank (collectives first, then the seeded model, then rank 0's state broadcast), so resume is
exact and no collective waits on a rank doing something else.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

from pipeline import faults
from pipeline.model.factory import build_network, resolve
from pipeline.model.inputs import model_inputs
from pipeline.model.losses import label_dtype, loss_fn
from pipeline.worker.augment import Augmenter
from pipeline.worker.backends import RankBackend, unwrap
from pipeline.worker.checkpoint import ResumePoint, load_checkpoint, resume_point
from pipeline.worker.device import use_deterministic_kernels
from pipeline.worker.epoch_steps import EpochSteps
from pipeline.worker.loader import ShardedParquetLoader
from pipeline.worker.placement import worker_placement
from pipeline.worker.plan import TrainPlan
from pipeline.worker.precision import Precision

# The loop's logger: set-up's lines (resuming from checkpoint) read as part of the training loop's story.
log = logging.getLogger("pipeline.worker.loop")


@dataclass
class RankSetup:
    """What set-up built, fixed for the whole run; the epochs only advance `point` (its skip_steps)."""

    plan: TrainPlan
    backend: RankBackend
    steps: EpochSteps
    val_data: ShardedParquetLoader
    test_data: ShardedParquetLoader
    workers: list[dict]  # where each rank ran (pipeline/worker/placement.py)
    point: ResumePoint


def set_up_rank(plan: TrainPlan, backend: RankBackend) -> RankSetup:
    """Everything before the first epoch, in an order every rank shares (collectives, then the seeded model):
    data, model, optimizer, and the checkpoint's weights and progress when one exists."""
    torch.set_num_threads(plan.threads_per_worker)
    device = backend.device
    use_deterministic_kernels(device, plan.deterministic)
    workers = backend.allgather_object(worker_placement(backend.rank, backend.device_choice))
    train_data, usable_steps = _training_data(plan, backend)
    val_data = _loader(plan, "val", backend, shuffle=False)
    test_data = _loader(plan, "test", backend, shuffle=False)

    torch.manual_seed(plan.seed)  # same initial weights everywhere; rank 0's are broadcast anyway
    inputs = model_inputs(plan.spec)
    model = build_network(plan.model, inputs).to(device)
    augment = Augmenter(inputs, plan.augment["flip"], plan.augment["crop_padding"], plan.seed, device)
    training_loss = _training_loss(plan)
    optimizer = torch.optim.AdamW(model.parameters(), lr=plan.lr, weight_decay=plan.weight_decay)
    model, optimizer, point = _resume_and_wrap(plan, backend, model, optimizer)
    precision = Precision(plan.precision, device, log_it=backend.rank == 0, scaler_state=point.scaler_state)

    steps = EpochSteps(
        plan=plan,
        backend=backend,
        device=device,
        inputs=inputs,
        model=model,
        optimizer=optimizer,
        augment=augment,
        precision=precision,
        training_loss=training_loss,
        train_data=train_data,
        usable_steps=usable_steps,
        target_lr=plan.lr * (backend.size if plan.scale_lr_by_workers else 1),
        warmup_steps=plan.warmup_epochs * usable_steps,
        fault=faults.train_step_fault(),
    )
    return RankSetup(plan, backend, steps, val_data, test_data, workers, point)


def _training_data(plan: TrainPlan, backend: RankBackend) -> tuple[ShardedParquetLoader, int]:
    """The train split's loader and its usable steps per epoch (whole backward_passes_per_step only); fails early,
    with the fix, when a shard is too small for even one step."""
    train_data = _loader(plan, "train", backend, shuffle=True)
    usable_steps = train_data.steps_per_epoch - train_data.steps_per_epoch % plan.backward_passes_per_step
    if usable_steps == 0:
        raise ValueError(
            f"train split has too few rows for {backend.size} workers x batch_size={plan.batch_size} "
            f"(smallest shard: {min(train_data.shard_rows)} rows). Fix: lower train.batch_size or train.num_proc"
        )
    return train_data, usable_steps


def _resume_and_wrap(plan: TrainPlan, backend: RankBackend, model, optimizer) -> tuple[Any, Any, ResumePoint]:
    """Load the checkpoint (if any) into the model, wrap model and optimizer for the backend, then restore the
    optimizer and broadcast rank 0's state. Returns the wrapped pair and where training resumes."""
    state = load_checkpoint(plan.checkpoint_dir)
    point = resume_point(state, backend.rank, backend.size)
    if state is not None:
        model.load_state_dict(state["model"])
        if backend.rank == 0:
            where = f", and {point.skip_steps} steps of the next" if point.skip_steps else ""
            log.info("resuming from checkpoint: epoch %d of %d already done%s", point.start_epoch, plan.epochs, where)
    model, optimizer = backend.wrap(
        model, optimizer, plan.fp16_allreduce, plan.backward_passes_per_step, plan.grouped_allreduce
    )
    if state is not None:
        # After wrapping: hvd.DistributedOptimizer re-creates the optimizer from its param_groups only,
        # so Adam moments loaded earlier would be silently dropped.
        optimizer.load_state_dict(state["optimizer"])
    backend.broadcast_state(unwrap(model), optimizer)
    return model, optimizer, point


def _loader(plan: TrainPlan, split: str, backend: RankBackend, shuffle: bool) -> ShardedParquetLoader:
    """This rank's shard of one split of the prepared features."""
    return ShardedParquetLoader(
        plan.layout.prepared.features(split),
        list(model_inputs(plan.spec).tensors.values()),
        "label",
        plan.batch_size,
        backend.rank,
        backend.size,
        shuffle=shuffle,
        seed=plan.seed,
        buffer_rows=plan.shuffle_buffer_rows,
        label_dtype=label_dtype(plan.task),
        max_steps=plan.max_steps_per_epoch,
        pin_memory=backend.device.type == "cuda",
    )


def _training_loss(plan: TrainPlan):
    """train.loss (a user's `f(logits, target) -> scalar`) or the task's own loss."""
    if plan.loss is None:
        return lambda logits, y: loss_fn(plan.task, logits, y)
    return resolve(plan.loss)
