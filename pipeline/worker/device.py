"""Where a training rank computes (one rule for every backend), and how a host batch gets there.

Runs inside the training ranks. The rule (`choose_device`, a pure function so it is tested over simulated device
counts, visible-device lists and Spark task resources): no GPU unless the driver resolved train.device to use one;
then the GPU Spark assigned to this rank's task (`TaskContext.resources()`, which Horovod relays to its ranks),
else the rank's LOCAL_RANK among the devices CUDA_VISIBLE_DEVICES leaves visible (TorchDistributor narrows that
list to the task's GPUs itself); never an ordinal past the visible count, which is a clear error instead of CUDA's
"invalid device ordinal" or NCCL's "duplicate GPU" much later.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from pipeline.model.inputs import Batch, ModelInputs, to_model_view

log = logging.getLogger("pipeline.worker.device")
# cuBLAS reproducibility (NVIDIA's documented setting); read when cuBLAS starts, so it is set before any CUDA op.
CUBLAS_WORKSPACE = ":4096:8"
_FIX = (
    "Fix: give each rank its own GPU (spark.executor.resource.gpu.amount and spark.task.resource.gpu.amount=1, "
    "with a discovery script), or train.num_proc <= the GPUs of one machine, or train.device=cpu"
)


class DeviceError(RuntimeError):
    """A rank cannot use the GPU the configuration asks for; the message names the setting and the fix."""


@dataclass(frozen=True)
class DeviceChoice:
    """The device a rank uses and why (recorded with the rank's placement)."""

    device: str  # "cpu" or "cuda:N"
    reason: str
    spark_gpus: tuple[str, ...] = ()  # the GPU addresses Spark assigned to the rank's task


def choose_device(
    use_gpu: bool, local_rank: int, spark_gpus: list[str], visible: str | None, device_count: int
) -> DeviceChoice:
    """The device rule (module docstring). `visible`: CUDA_VISIBLE_DEVICES as set (None: unset), `device_count`:
    torch.cuda.device_count() in this process (0 without CUDA)."""
    gpus = tuple(spark_gpus)
    if not use_gpu:
        return DeviceChoice("cpu", "train.device resolved to cpu", gpus)
    assigned = f" (Spark assigned GPU {', '.join(gpus)} to its task)" if gpus else ""
    if device_count == 0:
        raise DeviceError(
            f"train.device asks for a GPU, but this rank sees no CUDA device{assigned}: torch "
            f"{torch.__version__} reports none. Fix: install CUDA torch on the workers (make setup on a GPU "
            "machine) or set train.device=cpu"
        )
    visible_ids = [v.strip() for v in visible.split(",") if v.strip()] if visible else None
    if gpus:
        ordinal, reason = _ordinal_of_address(gpus[0], visible_ids), f"Spark assigned GPU {gpus[0]} to its task"
    else:
        ordinal, reason = local_rank, f"local rank {local_rank}"
    if ordinal >= device_count:
        shown = f" (CUDA_VISIBLE_DEVICES={visible})" if visible is not None else ""
        raise DeviceError(
            f"this rank would use GPU ordinal {ordinal} ({reason}) but only {device_count} CUDA device(s) are "
            f"visible{shown}. {_FIX}"
        )
    return DeviceChoice(f"cuda:{ordinal}", reason, gpus)


def _ordinal_of_address(address: str, visible_ids: list[str] | None) -> int:
    """A Spark GPU address as a CUDA ordinal of this process: its position in CUDA_VISIBLE_DEVICES when that is
    set, else the address itself (discovery scripts report nvidia-smi's indices)."""
    if visible_ids is not None:
        if address not in visible_ids:
            raise DeviceError(
                f"Spark assigned GPU {address} to this task, but CUDA_VISIBLE_DEVICES={','.join(visible_ids)} hides "
                "it from the rank. Fix: unset CUDA_VISIBLE_DEVICES in the executors' environment, or make the GPU "
                "discovery script report the ids that CUDA_VISIBLE_DEVICES lists"
            )
        return visible_ids.index(address)
    if not address.isdigit():
        raise DeviceError(
            f"Spark assigned GPU address {address!r}, which is not a CUDA ordinal. Fix: make the GPU discovery "
            "script report nvidia-smi's indices (0, 1, ...)"
        )
    return int(address)


def rank_device(use_gpu: bool, local_rank: int, spark_gpus: list[str]) -> tuple[torch.device, DeviceChoice]:
    """Apply the rule in this process and make the choice current (before NCCL or any CUDA work starts)."""
    if use_gpu:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    count = torch.cuda.device_count() if use_gpu else 0
    choice = choose_device(use_gpu, local_rank, spark_gpus, os.environ.get("CUDA_VISIBLE_DEVICES"), count)
    device = torch.device(choice.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device, choice


def use_deterministic_kernels(device: torch.device, deterministic: bool) -> None:
    """train.deterministic on a GPU rank: cuDNN's deterministic convolutions and torch's deterministic algorithms
    (warning, not failing, for an op that has none), so a resumed run ends with the same weights as an
    uninterrupted one, as on CPU. Off: cuDNN may pick the fastest, non-deterministic kernels."""
    if device.type != "cuda":
        return
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic
    torch.use_deterministic_algorithms(deterministic, warn_only=True)


def device_batches(source: Iterator[tuple[Batch, torch.Tensor]], device: torch.device) -> Iterator:
    """On CUDA: (batch, label) pairs already on the device, each copied on a side stream one step ahead, so the
    host-to-device copy of batch n+1 overlaps the compute of batch n (the loader pinned them in its prefetch
    thread). Elsewhere the pairs pass through unchanged.

    Each copy records an event; the compute stream waits for that event only (not for the copy stream as a
    whole, which would also wait for the next batch's copy), and `record_stream` keeps the caching allocator
    from reusing a batch's memory while the compute stream still reads it.
    """
    if device.type != "cuda":
        yield from source
        return
    copies = torch.cuda.Stream(device)
    compute = torch.cuda.current_stream(device)

    def start(pair):
        batch, y = pair
        with torch.cuda.stream(copies):
            moved = {name: t.to(device, non_blocking=True) for name, t in batch.items()}
            label = y.to(device, non_blocking=True)
            done = torch.cuda.Event()
            done.record(copies)
        return moved, label, done

    pending = None
    for pair in source:
        following = start(pair)
        if pending is not None:
            yield _ready(pending, compute)
        pending = following
    if pending is not None:
        yield _ready(pending, compute)


def _ready(copied, compute) -> tuple[Batch, torch.Tensor]:
    moved, label, done = copied
    compute.wait_event(done)
    for tensor in (*moved.values(), label):
        tensor.record_stream(compute)
    return moved, label


def to_device(batch: Batch, device: torch.device, inputs: ModelInputs) -> Batch:
    """Host batch -> the model's view on `device`: copied as stored (uint8 images), normalised there.

    On CUDA the loader has already pinned the host tensors (in its prefetch thread), so the copy is asynchronous;
    batches from `device_batches` are already there (the copy is then a no-op).
    """
    if device.type == "cuda":
        moved = {name: t.to(device, non_blocking=True) for name, t in batch.items()}
    else:
        moved = batch
    return to_model_view(moved, inputs)
