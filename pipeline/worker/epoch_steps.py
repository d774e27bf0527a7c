"""The optimisation steps of one training epoch: lr warmup, gradient accumulation, mixed precision, mid-epoch
checkpoints and the train-step fault seam.

Runs inside the training ranks; pipeline/worker/loop.py builds an EpochSteps once per run and calls it per epoch.
Resume inside an epoch is exact: the epoch's dropout and augmentation RNG are seeded from (seed, epoch, rank), and
the steps a mid-epoch checkpoint already holds are read again but not trained on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from pipeline import faults
from pipeline.model.inputs import ModelInputs
from pipeline.worker.augment import Augmenter
from pipeline.worker.backends import RankBackend, unwrap
from pipeline.worker.checkpoint import (
    ResumePoint,
    checkpoint_state,
    rank_random_state,
    restore_random_state,
    save_checkpoint,
)
from pipeline.worker.device import device_batches, to_device
from pipeline.worker.loader import ShardedParquetLoader
from pipeline.worker.metrics import MetricSums
from pipeline.worker.plan import TrainPlan
from pipeline.worker.precision import Precision


@dataclass
class EpochSteps:
    """What every epoch's steps need, built once by the loop's set-up (model and optimizer already wrapped), so
    one epoch is a single call rather than a dozen arguments."""

    plan: TrainPlan
    backend: RankBackend
    device: torch.device
    inputs: ModelInputs
    model: Any  # the backend's wrapper (DDP) or the plain module (Horovod)
    optimizer: Any  # hvd.DistributedOptimizer or the plain AdamW
    augment: Augmenter
    precision: Precision
    training_loss: Callable
    train_data: ShardedParquetLoader
    usable_steps: int  # steps per epoch, rounded down to whole backward_passes_per_step
    target_lr: float
    warmup_steps: float
    fault: tuple[int, int, int] | None  # the test seam; None in production

    def run(self, epoch: int, point: ResumePoint, best: dict, history: list) -> MetricSums:
        """Train one epoch, skipping the steps a mid-epoch checkpoint in `point` already holds (then forgotten, so
        later epochs run whole). `best` and `history` go into mid-epoch checkpoints. Returns this rank's training
        metric sums; the loop allreduces them."""
        backend = self.backend
        torch.manual_seed(self.plan.seed * 1_000_003 + epoch * 1_009 + backend.rank)  # exact resume of dropout
        self.model.train()
        self.augment.start_epoch(epoch, backend.rank)
        sums = MetricSums(self.plan.task, self.plan.spec.label, self.device)
        skip, point.skip_steps = point.skip_steps, 0  # steps of this epoch a mid-epoch checkpoint already holds
        if skip and point.rank_state is not None:
            restore_random_state(point.rank_state, self.device, self.augment.generator)
            sums.restore(point.rank_state["sums"])
        for step, (batch, y) in enumerate(device_batches(self.train_data.train_epoch(epoch), self.device)):
            if step >= self.usable_steps:
                break
            if step < skip:
                continue  # the same batches in the same order as before the failure; they are already trained on
            if self.fault == (epoch, step, backend.rank):
                faults.exit_now(f"train step {self.fault}", faults.TRAIN_STEP_EXIT_CODE)
            if self._train_step(epoch, step, batch, y, sums):
                self._checkpoint_mid_epoch(epoch, step, sums, best, history)
        return sums

    def _train_step(self, epoch: int, step: int, batch, y: torch.Tensor, sums: MetricSums) -> bool:
        """One micro-batch: warmup lr, augment, forward and backward; the optimizer steps on the last micro-batch
        of each backward_passes_per_step. Returns whether it stepped (only then may a checkpoint follow)."""
        plan, backend, model, optimizer = self.plan, self.backend, self.model, self.optimizer
        global_step = epoch * self.usable_steps + step
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(global_step, self.warmup_steps, plan.lr, self.target_lr)
        batch, y = self.augment(to_device(batch, self.device, self.inputs)), y.to(self.device, non_blocking=True)
        last_micro = (step + 1) % plan.backward_passes_per_step == 0
        with contextlib.nullcontext() if last_micro else backend.no_sync(model):
            with self.precision.autocast():
                logits = model(batch)
                loss = self.training_loss(logits, y)
            self.precision.backward(loss / plan.backward_passes_per_step)
        sums.update(logits.detach().float(), y)  # autocast may give bf16/fp16 logits
        if last_micro:
            backend.step(optimizer, model, plan.grad_clip, self.precision.scaler)
            optimizer.zero_grad()  # Horovod's wrapper takes no set_to_none
        return last_micro

    def _checkpoint_mid_epoch(self, epoch: int, step: int, sums: MetricSums, best: dict, history: list) -> None:
        """Every checkpoint_every_steps (not at the epoch's end, whose checkpoint the loop writes): rank 0 saves the
        weights with every rank's RNG states and metric sums, so a resume continues this epoch exactly."""
        every = self.plan.checkpoint_every_steps
        if every and (step + 1) % every == 0 and step + 1 < self.usable_steps:
            # Every rank takes part in the allgather; only rank 0 writes.
            ranks = self.backend.allgather_object(
                rank_random_state(self.device, self.augment.generator, sums.as_tensor())
            )
            if self.backend.rank == 0:
                model_state, optimizer_state = unwrap(self.model).state_dict(), self.optimizer.state_dict()
                scaler = self.precision.scaler_state()
                state = checkpoint_state(model_state, optimizer_state, epoch - 1, best, history, scaler)
                partial = {"epoch": epoch, "step": step + 1, "ranks": ranks}
                save_checkpoint(self.plan.checkpoint_dir, {**state, "partial": partial})


def _lr_at(step: float, warmup_steps: float, base_lr: float, target_lr: float) -> float:
    """Linear warmup from the single-worker lr to the worker-scaled lr (Goyal et al., 2017)."""
    if warmup_steps <= 0 or step >= warmup_steps:
        return target_lr
    return base_lr + (target_lr - base_lr) * step / warmup_steps
