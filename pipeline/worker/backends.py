"""What differs between Horovod and torch DDP, behind one declared interface (RankBackend) used by the loop.

Runs in the training ranks. Each backend supplies: process-group init, rank/size/local_rank, the distributed
optimizer or model wrapper, broadcast of initial parameters and optimizer state (and of buffers such as batch
norm's running statistics) from rank 0, a sum-allreduce,
and object allgather/broadcast. The driver picks one through the table in pipeline/launch/launchers.py.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, ClassVar, Protocol

import torch

from pipeline.worker.device import DeviceChoice, rank_device


class RankBackend(Protocol):
    """One rank's view of the process group; constructing it joins the group."""

    name: ClassVar[str]
    rank: int
    size: int
    local_rank: int
    device: torch.device  # pipeline/worker/device.py's rule, applied before any collective on the device
    device_choice: DeviceChoice

    def wrap(
        self, model, optimizer, fp16_allreduce: bool, backward_passes_per_step: int, grouped_allreduce: bool
    ) -> tuple[Any, Any]: ...

    def broadcast_state(self, model, optimizer) -> None: ...

    def broadcast_buffers(self, model) -> None: ...

    def no_sync(self, model) -> contextlib.AbstractContextManager: ...

    def step(self, optimizer, model, grad_clip: float | None, scaler=None) -> None: ...

    def allreduce_sum(self, tensor: torch.Tensor, name: str) -> torch.Tensor: ...

    def allgather_object(self, obj) -> list: ...

    def broadcast_object(self, obj): ...

    def shutdown(self) -> None: ...


class HorovodBackend:
    """Horovod (Gloo on CPU, NCCL where built): gradients averaged by hvd.DistributedOptimizer."""

    name = "horovod"

    def __init__(self, use_gpu: bool) -> None:
        import horovod.torch as hvd

        self.hvd = hvd
        hvd.init()
        self.rank, self.size, self.local_rank = hvd.rank(), hvd.size(), hvd.local_rank()
        self.device, self.device_choice = rank_device(use_gpu, self.local_rank, _horovod_task_gpus())

    def wrap(self, model, optimizer, fp16_allreduce: bool, backward_passes_per_step: int, grouped_allreduce: bool):
        """`grouped_allreduce` (train.grouped_allreduce): all gradients in one grouped allreduce per step, one
        negotiation instead of one per tensor as backward makes it ready."""
        hvd = self.hvd
        compression = hvd.Compression.fp16 if fp16_allreduce else hvd.Compression.none
        optimizer = hvd.DistributedOptimizer(
            optimizer,
            named_parameters=model.named_parameters(),
            compression=compression,
            backward_passes_per_step=backward_passes_per_step,
            groups=1 if grouped_allreduce else None,
        )
        return model, optimizer

    def broadcast_state(self, model, optimizer) -> None:
        self.hvd.broadcast_parameters(model.state_dict(), root_rank=0)
        self.hvd.broadcast_optimizer_state(optimizer, root_rank=0)

    def broadcast_buffers(self, model) -> None:
        self.hvd.broadcast_parameters(list(model.named_buffers()), root_rank=0)

    def no_sync(self, model):
        # Horovod counts backward passes itself (backward_passes_per_step); nothing to suspend.
        return contextlib.nullcontext()

    def step(self, optimizer, model, grad_clip: float | None, scaler=None) -> None:
        """`scaler`: fp16's GradScaler; it must unscale the averaged gradients, so they are synchronised first."""
        if grad_clip is None and scaler is None:
            optimizer.step()
            return
        optimizer.synchronize()  # gradients are averaged now, so clipping sees the global gradient
        if scaler is not None:
            scaler.unscale_(optimizer)
        # skip_synchronize: the gradients were averaged above, so step must not synchronize them again.
        _clip_and_step(optimizer, model, grad_clip, scaler, optimizer.skip_synchronize())

    def allreduce_sum(self, tensor: torch.Tensor, name: str) -> torch.Tensor:
        return self.hvd.allreduce(tensor, op=self.hvd.Sum, name=name)

    def allgather_object(self, obj) -> list:
        return self.hvd.allgather_object(obj, name="allgather_object")

    def broadcast_object(self, obj):
        return self.hvd.broadcast_object(obj, root_rank=0, name="broadcast_object")

    def shutdown(self) -> None:
        self.hvd.shutdown()


class DDPBackend:
    """torch.distributed (gloo on CPU, nccl on GPU) with DistributedDataParallel; env set by TorchDistributor."""

    name = "torch_distributor"

    def __init__(self, use_gpu: bool) -> None:
        import torch.distributed as dist

        self.dist = dist
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        # TorchDistributor already narrowed CUDA_VISIBLE_DEVICES to the task's GPUs (and its torchrun children
        # have no TaskContext), so the rule goes by LOCAL_RANK. The device is current before NCCL starts.
        self.device, self.device_choice = rank_device(use_gpu, self.local_rank, [])
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if self.device.type == "cuda" else "gloo")
        self.rank, self.size = dist.get_rank(), dist.get_world_size()

    def wrap(self, model, optimizer, fp16_allreduce: bool, backward_passes_per_step: int, grouped_allreduce: bool):
        """`grouped_allreduce` is Horovod's; DDP buckets gradients itself."""
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        wrapped = DistributedDataParallel(model, device_ids=ids)  # broadcasts rank 0's parameters
        if fp16_allreduce:
            from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

            wrapped.register_comm_hook(None, default_hooks.fp16_compress_hook)
        return wrapped, optimizer

    def broadcast_state(self, model, optimizer) -> None:
        """Rank 0's parameters. The optimizer state is not sent: it is empty on a fresh start and every rank read
        it from the same checkpoint on resume (pickling CUDA state through broadcast_object_list would put it
        on one device)."""
        for tensor in model.state_dict().values():
            self.dist.broadcast(tensor.data if hasattr(tensor, "data") else tensor, src=0)

    def broadcast_buffers(self, model) -> None:
        for buffer in model.buffers():
            self.dist.broadcast(buffer, src=0)

    def no_sync(self, model):
        return model.no_sync()

    def step(self, optimizer, model, grad_clip: float | None, scaler=None) -> None:
        if scaler is not None and grad_clip is not None:
            scaler.unscale_(optimizer)
        _clip_and_step(optimizer, model, grad_clip, scaler, contextlib.nullcontext())

    def allreduce_sum(self, tensor: torch.Tensor, name: str) -> torch.Tensor:
        moved = tensor.to(self.device)
        self.dist.all_reduce(moved, op=self.dist.ReduceOp.SUM)
        return moved.cpu()

    def allgather_object(self, obj) -> list:
        gathered: list = [None] * self.size
        self.dist.all_gather_object(gathered, obj)
        return gathered

    def broadcast_object(self, obj):
        payload = [obj]
        self.dist.broadcast_object_list(payload, src=0)
        return payload[0]

    def shutdown(self) -> None:
        self.dist.destroy_process_group()


def _horovod_task_gpus() -> list[str]:
    """The GPU addresses Spark assigned to the task that launched this Horovod rank (horovod.spark relays
    TaskContext.resources() to the rank); empty outside horovod.spark or without GPU resources."""
    try:
        from horovod.spark.task import get_available_devices
    except ImportError:
        return []
    return [str(address) for address in get_available_devices()]


def unwrap(model):
    """The plain nn.Module inside a DDP wrapper (state_dict keys without 'module.')."""
    return getattr(model, "module", model)


def _clip_and_step(
    optimizer, model, grad_clip: float | None, scaler, stepping: contextlib.AbstractContextManager
) -> None:
    """The end of both backends' `step`, written once: clip the (already unscaled) gradients, then step, through
    fp16's GradScaler when there is one. `stepping` wraps only the step, as Horovod's skip_synchronize must."""
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    with stepping:
        if scaler is None:
            optimizer.step()
        else:
            scaler.step(optimizer)
            scaler.update()
