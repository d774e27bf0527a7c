"""The per-rank training loop, written once for every backend: epochs, validation, early stop, checkpoints.

Runs inside Horovod or TorchDistributor rank processes. It receives a TrainPlan of plain values (resolved on the
driver) and never touches Spark. Resume is exact: each epoch's data order and dropout RNG are seeded from
(seed, epoch, rank), and the checkpoint holds weights, optimizer state, counters and history.
"""

from __future__ import annotations

import contextlib
import logging
import time

import torch

from pipeline import faults
from pipeline.model.factory import build_network, resolve
from pipeline.model.inputs import ModelInputs, model_inputs
from pipeline.model.losses import label_dtype, loss_fn
from pipeline.model.spec import LabelSpec
from pipeline.worker.augment import Augmenter
from pipeline.worker.backends import RankBackend, unwrap
from pipeline.worker.checkpoint import (
    checkpoint_state,
    load_checkpoint,
    rank_random_state,
    restore_random_state,
    resume_point,
    save_best_weights,
    save_checkpoint,
)
from pipeline.worker.device import rank_device, to_device
from pipeline.worker.loader import ShardedParquetLoader
from pipeline.worker.metrics import MetricSums, higher_is_better
from pipeline.worker.placement import worker_placement
from pipeline.worker.plan import EpochCallback, RankResult, TrainPlan
from pipeline.worker.precision import Precision

log = logging.getLogger("pipeline.worker.loop")


def _loader(plan: TrainPlan, split: str, backend: RankBackend, shuffle: bool) -> ShardedParquetLoader:
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
    )


def _training_loss(plan: TrainPlan):
    """train.loss (a user's `f(logits, target) -> scalar`) or the task's own loss."""
    if plan.loss is None:
        return lambda logits, y: loss_fn(plan.task, logits, y)
    return resolve(plan.loss)


def train(plan: TrainPlan, backend: RankBackend, on_epoch: EpochCallback | None = None) -> RankResult:
    """Train to plan.epochs or early stop, resuming from the checkpoint when one exists.

    Returns:
        on every rank, rank 0's result (history, best epoch/metric, test metrics, best weights, placement).
    """
    torch.set_num_threads(plan.threads_per_worker)
    device = rank_device(backend.local_rank)
    rank0 = backend.rank == 0
    workers = backend.allgather_object(worker_placement(backend.rank))
    train_data = _loader(plan, "train", backend, shuffle=True)
    usable_steps = train_data.steps_per_epoch - train_data.steps_per_epoch % plan.backward_passes_per_step
    if usable_steps == 0:
        raise ValueError(
            f"train split has too few rows for {backend.size} workers x batch_size={plan.batch_size} "
            f"(smallest shard: {min(train_data.shard_rows)} rows). Fix: lower train.batch_size or train.num_proc"
        )
    val_data = _loader(plan, "val", backend, shuffle=False)
    test_data = _loader(plan, "test", backend, shuffle=False)

    torch.manual_seed(plan.seed)  # same initial weights everywhere; rank 0's are broadcast anyway
    spec = plan.spec
    inputs = model_inputs(spec)
    model = build_network(plan.model, inputs).to(device)
    augment = Augmenter(inputs, plan.augment["flip"], plan.augment["crop_padding"], plan.seed, device)
    precision = Precision(plan.precision, device, log_it=rank0)
    training_loss = _training_loss(plan)
    optimizer = torch.optim.AdamW(model.parameters(), lr=plan.lr, weight_decay=plan.weight_decay)

    state = load_checkpoint(plan.checkpoint_dir)
    point = resume_point(state, backend.rank, backend.size)
    history, best, resumed_from_step = point.history, point.best, point.skip_steps
    if state is not None:
        model.load_state_dict(state["model"])
        if rank0:
            where = f", and {point.skip_steps} steps of the next" if point.skip_steps else ""
            log.info("resuming from checkpoint: epoch %d of %d already done%s", point.start_epoch, plan.epochs, where)
    model, optimizer = backend.wrap(model, optimizer, plan.fp16_allreduce, plan.backward_passes_per_step)
    if state is not None:
        # After wrapping: hvd.DistributedOptimizer re-creates the optimizer from its param_groups only,
        # so Adam moments loaded earlier would be silently dropped.
        optimizer.load_state_dict(state["optimizer"])
    backend.broadcast_state(unwrap(model), optimizer)

    target_lr = plan.lr * (backend.size if plan.scale_lr_by_workers else 1)
    warmup_steps = plan.warmup_epochs * usable_steps
    stopped_early = best["bad_epochs"] >= plan.patience
    epoch_seconds: list[float] = []
    fault = faults.train_step_fault()  # the test seam; None in production
    stopped_by_callback = False
    for epoch in range(point.start_epoch, plan.epochs):
        if stopped_early:
            break
        started = time.perf_counter()
        torch.manual_seed(plan.seed * 1_000_003 + epoch * 1_009 + backend.rank)  # exact resume of dropout
        model.train()
        augment.start_epoch(epoch, backend.rank)
        sums = MetricSums(plan.task, plan.spec.label)
        skip, point.skip_steps = point.skip_steps, 0  # steps of this epoch a mid-epoch checkpoint already holds
        if skip and point.rank_state is not None:
            restore_random_state(point.rank_state, device, augment.generator)
            sums.restore(point.rank_state["sums"])
        for step, (batch, y) in enumerate(train_data.train_epoch(epoch)):
            if step >= usable_steps:
                break
            if step < skip:
                continue  # the same batches in the same order as before the failure; they are already trained on
            if fault == (epoch, step, backend.rank):
                faults.exit_now(f"train step {fault}", faults.TRAIN_STEP_EXIT_CODE)
            global_step = epoch * usable_steps + step
            for group in optimizer.param_groups:
                group["lr"] = _lr_at(global_step, warmup_steps, plan.lr, target_lr)
            batch, y = augment(to_device(batch, device, inputs)), y.to(device, non_blocking=True)
            last_micro = (step + 1) % plan.backward_passes_per_step == 0
            with contextlib.nullcontext() if last_micro else backend.no_sync(model):
                with precision.autocast():
                    logits = model(batch)
                    loss = training_loss(logits, y)
                precision.backward(loss / plan.backward_passes_per_step)
            sums.update(logits.detach().float(), y)  # autocast may give bf16/fp16 logits
            if last_micro:
                backend.step(optimizer, model, plan.grad_clip, precision.scaler)
                optimizer.zero_grad()  # Horovod's wrapper takes no set_to_none
                every = plan.checkpoint_every_steps
                if every and (step + 1) % every == 0 and step + 1 < usable_steps:
                    ranks = backend.allgather_object(rank_random_state(device, augment.generator, sums.as_tensor()))
                    if rank0:
                        state = checkpoint_state(
                            unwrap(model).state_dict(), optimizer.state_dict(), epoch - 1, best, history
                        )
                        partial = {"epoch": epoch, "step": step + 1, "ranks": ranks}
                        save_checkpoint(plan.checkpoint_dir, {**state, "partial": partial})
        train_seconds = time.perf_counter() - started
        train_metrics = MetricSums.finalize(
            plan.task, backend.allreduce_sum(sums.as_tensor(), f"train{epoch}"), "train"
        )
        _sync_buffers(model, backend)
        val_metrics = _evaluate(model, val_data, inputs, plan.spec.label, backend, device, f"val{epoch}", "val")
        seconds = time.perf_counter() - started
        epoch_seconds.append(seconds)
        samples = usable_steps * plan.batch_size * backend.size
        record = {
            "epoch": epoch,
            **train_metrics,
            **val_metrics,
            "samples_per_s": samples / seconds,
            "train_samples_per_s": samples / train_seconds,  # optimisation steps only, without validation
            "epoch_seconds": seconds,
        }
        history.append(record)

        value = val_metrics[plan.monitor]
        improved = best["metric"] is None or (
            value > best["metric"] if higher_is_better(plan.monitor) else value < best["metric"]
        )
        if improved:
            best = {
                "metric": value,
                "epoch": epoch,
                "bad_epochs": 0,
                "weights": {k: v.detach().cpu().clone() for k, v in unwrap(model).state_dict().items()},
            }
        else:
            best["bad_epochs"] += 1
        stopped_early = best["bad_epochs"] >= plan.patience
        asked_to_stop = False
        if rank0:
            # Callbacks (MLflow metrics, a trial's pruner) before the checkpoint: a process killed in between
            # repeats this epoch on resume rather than leaving it without metrics. The progress line comes
            # last, so it means "done and saved".
            if on_epoch is not None:
                asked_to_stop = bool(on_epoch(record, epoch))
            save_checkpoint(
                plan.checkpoint_dir,
                checkpoint_state(unwrap(model).state_dict(), optimizer.state_dict(), epoch, best, history),
            )
            _log_epoch(plan, record, epoch, epoch_seconds)
        # Every rank got the same callback, so all of them take part in this broadcast, or none does.
        if on_epoch is not None and backend.broadcast_object(asked_to_stop):
            stopped_by_callback = True
            if rank0:
                log.info("stopping after epoch %d: an epoch callback asked to (a pruned trial)", epoch + 1)
            break
    # Best weights everywhere (identical across ranks, since every rank applied the same averaged updates).
    if best["weights"] is not None:
        unwrap(model).load_state_dict(best["weights"])
    test_metrics = _evaluate(model, test_data, inputs, plan.spec.label, backend, device, "test", "test")
    result = None
    if rank0:
        best_path = save_best_weights(plan.checkpoint_dir, unwrap(model).state_dict())
        log.info(
            "done: best epoch %d %s=%.4f; test %s",
            best["epoch"] + 1,
            plan.monitor,
            best["metric"],
            " ".join(f"{k}={v:.4f}" for k, v in test_metrics.items()),
        )
        result = RankResult(
            history=history,
            best_epoch=best["epoch"],
            best_metric=best["metric"],
            test_metrics=test_metrics,
            resumed_from_epoch=point.start_epoch if point.resumed else None,
            epochs_run=len(history),
            stopped_early=stopped_early,
            best_model_path=best_path,
            world_size=backend.size,
            steps_per_epoch=usable_steps,
            workers=workers,
            stopped_by_callback=stopped_by_callback,
            resumed_from_step=resumed_from_step,
        )
    # Every rank returns rank 0's result: in local mode TorchDistributor keeps the output of whichever process
    # finishes last, which was sometimes rank 1's.
    return backend.broadcast_object(result)


def _sync_buffers(model, backend: RankBackend) -> None:
    """Rank 0's buffers everywhere before evaluating: batch norm's running statistics are updated from each rank's
    own batches (Horovod never averages them), so without this every rank would evaluate a slightly different
    model, and a resumed run (whose ranks all restart from rank 0's checkpoint) would report other metrics than
    an uninterrupted one. Afterwards every rank holds exactly the model rank 0 checkpoints and registers."""
    if any(True for _ in unwrap(model).buffers()):  # same architecture on every rank: all call it, or none
        backend.broadcast_buffers(unwrap(model))


def _lr_at(step: float, warmup_steps: float, base_lr: float, target_lr: float) -> float:
    """Linear warmup from the single-worker lr to the worker-scaled lr (Goyal et al., 2017)."""
    if warmup_steps <= 0 or step >= warmup_steps:
        return target_lr
    return base_lr + (target_lr - base_lr) * step / warmup_steps


def _evaluate(
    model,
    loader: ShardedParquetLoader,
    inputs: ModelInputs,
    label: LabelSpec,
    backend: RankBackend,
    device,
    name: str,
    prefix: str,
) -> dict:
    task = label.task
    model.eval()
    sums = MetricSums(task, label)
    with torch.no_grad():
        for batch, y in loader.eval_batches():
            sums.update(model(to_device(batch, device, inputs)), y.to(device))
    return MetricSums.finalize(task, backend.allreduce_sum(sums.as_tensor(), name), prefix)


def _log_epoch(plan: TrainPlan, record: dict, epoch: int, epoch_seconds: list[float]) -> None:
    remaining = plan.epochs - epoch - 1
    eta = remaining * (sum(epoch_seconds) / len(epoch_seconds))
    shown = {
        k: v for k, v in record.items() if k not in ("epoch", "epoch_seconds", "samples_per_s", "train_samples_per_s")
    }
    log.info(
        "epoch %d/%d %s samples/s=%.0f %.1fs ETA %.0fs",
        epoch + 1,
        plan.epochs,
        " ".join(f"{k}={v:.4f}" for k, v in shown.items()),
        record["samples_per_s"],
        record["epoch_seconds"],
        eta,
    )
