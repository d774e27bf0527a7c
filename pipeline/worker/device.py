"""Where a training rank computes, and how a host batch gets there (pinned, non-blocking on CUDA; normalised there).

Runs inside the training ranks.
"""

from __future__ import annotations

import torch

from pipeline.model.inputs import Batch, ModelInputs, to_model_view


def rank_device(local_rank: int) -> torch.device:
    """This rank's GPU (by local rank) where CUDA is present, else the CPU."""
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        return torch.device(f"cuda:{local_rank}")
    return torch.device("cpu")


def to_device(batch: Batch, device: torch.device, inputs: ModelInputs) -> Batch:
    """Host batch -> the model's view on `device`: copied as stored (uint8 images), normalised there.

    With CUDA the host tensors are pinned first, so the copy is asynchronous and overlaps the previous step.
    """
    if device.type == "cuda":
        moved = {name: t.pin_memory().to(device, non_blocking=True) for name, t in batch.items()}
    else:
        moved = batch
    return to_model_view(moved, inputs)
