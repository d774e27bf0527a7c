"""The per-rank training loop, written once for every backend: epochs, validation, early stop, checkpoints.

Runs inside Horovod or TorchDistributor rank processes. It receives a TrainPlan of plain values (resolved on the
driver) and never touches Spark. Resume is exact: each epoch's data order and dropout RNG are seeded from
(seed, epoch, rank), and the checkpoint holds weights, optimizer state, counters and history. Set-up and resume
live in pipeline/worker/rank_setup.py, one epoch's optimisation steps in pipeline/worker/epoch_steps.py.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import torch

from pipeline.model.inputs import ModelInputs
from pipeline.model.spec import LabelSpec
from pipeline.worker.backends import RankBackend, unwrap
from pipeline.worker.checkpoint import checkpoint_state, save_best_weights, save_checkpoint
from pipeline.worker.device import to_device
from pipeline.worker.loader import ShardedParquetLoader
from pipeline.worker.metrics import MetricSums, higher_is_better
from pipeline.worker.plan import EpochCallback, RankResult, TrainPlan
from pipeline.worker.rank_setup import RankSetup, set_up_rank

log = logging.getLogger("pipeline.worker.loop")


@dataclass
class _Progress:
    """What the epochs change, carried from one phase of `train` to the next (set-up's results stay in RankSetup)."""

    history: list[dict]
    best: dict
    stopped_early: bool
    resumed_from_step: int  # the loaded point.skip_steps (the first epoch's steps zero point.skip_steps)
    epoch_seconds: list[float] = field(default_factory=list)
    stopped_by_callback: bool = False


def train(plan: TrainPlan, backend: RankBackend, on_epoch: EpochCallback | None = None) -> RankResult:
    """Train to plan.epochs or early stop, resuming from the checkpoint when one exists.

    Returns:
        on every rank, rank 0's result (history, best epoch/metric, test metrics, best weights, placement).
    """
    ready = set_up_rank(plan, backend)
    point = ready.point
    progress = _Progress(
        history=point.history,
        best=point.best,
        stopped_early=point.best["bad_epochs"] >= plan.patience,
        resumed_from_step=point.skip_steps,
    )
    for epoch in range(point.start_epoch, plan.epochs):
        if progress.stopped_early:
            break
        if _run_epoch(ready, progress, epoch, on_epoch):
            break
    return _finish(ready, progress)


def _run_epoch(ready: RankSetup, progress: _Progress, epoch: int, on_epoch: EpochCallback | None) -> bool:
    """One epoch: its training steps, the allreduced train metrics, validation, then early-stop bookkeeping and
    the checkpoint. Returns whether an epoch callback asked every rank to stop."""
    plan, backend, steps = ready.plan, ready.backend, ready.steps
    started = time.perf_counter()
    sums = steps.run(epoch, ready.point, progress.best, progress.history)
    if steps.device.type == "cuda":
        torch.cuda.synchronize(steps.device)  # queued GPU work belongs to this epoch's time (nothing else waits)
    train_seconds = time.perf_counter() - started
    train_metrics = MetricSums.finalize(plan.task, backend.allreduce_sum(sums.as_tensor(), f"train{epoch}"), "train")
    _sync_buffers(steps.model, backend)
    val_metrics = _evaluate(
        steps.model, ready.val_data, steps.inputs, plan.spec.label, backend, steps.device, f"val{epoch}", "val"
    )
    seconds = time.perf_counter() - started
    progress.epoch_seconds.append(seconds)
    samples = steps.usable_steps * plan.batch_size * backend.size
    record = {
        "epoch": epoch,
        **train_metrics,
        **val_metrics,
        "samples_per_s": samples / seconds,
        "train_samples_per_s": samples / train_seconds,  # optimisation steps only, without validation
        "epoch_seconds": seconds,
    }
    progress.history.append(record)
    _track_best(ready, progress, val_metrics[plan.monitor], epoch)
    return _report_and_checkpoint(ready, progress, record, epoch, on_epoch)


def _track_best(ready: RankSetup, progress: _Progress, value: float, epoch: int) -> None:
    """Keep the best epoch's weights (on CPU) or count one more epoch without improvement; decides early stop."""
    best = progress.best
    improved = best["metric"] is None or (
        value > best["metric"] if higher_is_better(ready.plan.monitor) else value < best["metric"]
    )
    if improved:
        progress.best = {
            "metric": value,
            "epoch": epoch,
            "bad_epochs": 0,
            "weights": {k: v.detach().cpu().clone() for k, v in unwrap(ready.steps.model).state_dict().items()},
        }
    else:
        best["bad_epochs"] += 1
    progress.stopped_early = progress.best["bad_epochs"] >= ready.plan.patience


def _report_and_checkpoint(
    ready: RankSetup, progress: _Progress, record: dict, epoch: int, on_epoch: EpochCallback | None
) -> bool:
    """Rank 0 calls the epoch callback, checkpoints and logs progress; then all ranks learn whether the callback
    asked to stop. Returns that answer (True: stop after this epoch)."""
    plan, backend, steps = ready.plan, ready.backend, ready.steps
    asked_to_stop = False
    if backend.rank == 0:
        # Callbacks (MLflow metrics, a trial's pruner) before the checkpoint: a process killed in between
        # repeats this epoch on resume rather than leaving it without metrics. The progress line comes
        # last, so it means "done and saved".
        if on_epoch is not None:
            asked_to_stop = bool(on_epoch(record, epoch))
        model_state, optimizer_state = unwrap(steps.model).state_dict(), steps.optimizer.state_dict()
        save_checkpoint(
            plan.checkpoint_dir,
            checkpoint_state(
                model_state, optimizer_state, epoch, progress.best, progress.history, steps.precision.scaler_state()
            ),
        )
        _log_epoch(plan, record, epoch, progress.epoch_seconds)
    # Every rank got the same callback, so all of them take part in this broadcast, or none does.
    if on_epoch is not None and backend.broadcast_object(asked_to_stop):
        progress.stopped_by_callback = True
        if backend.rank == 0:
            log.info("stopping after epoch %d: an epoch callback asked to (a pruned trial)", epoch + 1)
        return True
    return False


def _finish(ready: RankSetup, progress: _Progress) -> RankResult:
    """After the last epoch: the best weights on every rank, the test split, and rank 0's result for all ranks."""
    plan, backend, steps, best = ready.plan, ready.backend, ready.steps, progress.best
    # Best weights everywhere (identical across ranks, since every rank applied the same averaged updates).
    if best["weights"] is not None:
        unwrap(steps.model).load_state_dict(best["weights"])
    test_metrics = _evaluate(
        steps.model, ready.test_data, steps.inputs, plan.spec.label, backend, steps.device, "test", "test"
    )
    result = None
    if backend.rank == 0:
        best_path = save_best_weights(plan.checkpoint_dir, unwrap(steps.model).state_dict())
        log.info(
            "done: best epoch %d %s=%.4f; test %s",
            best["epoch"] + 1,
            plan.monitor,
            best["metric"],
            " ".join(f"{k}={v:.4f}" for k, v in test_metrics.items()),
        )
        result = RankResult(
            history=progress.history,
            best_epoch=best["epoch"],
            best_metric=best["metric"],
            test_metrics=test_metrics,
            resumed_from_epoch=ready.point.start_epoch if ready.point.resumed else None,
            epochs_run=len(progress.history),
            stopped_early=progress.stopped_early,
            best_model_path=best_path,
            world_size=backend.size,
            steps_per_epoch=steps.usable_steps,
            workers=ready.workers,
            stopped_by_callback=progress.stopped_by_callback,
            resumed_from_step=progress.resumed_from_step,
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
    sums = MetricSums(task, label, device)
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
