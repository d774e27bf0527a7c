"""Checkpoints (training ranks): written atomically by rank 0, read by every rank, loaded without unpickling; on a
local disk, HDFS or an object store alike (pipeline/storage/).

A checkpoint is taken at the end of each epoch and, with train.checkpoint_every_steps, inside one. The mid-epoch
kind adds where the epoch stands (`partial`: the epoch, the steps done, and each rank's random-number state and
metric sums at that point), so a relaunch continues at that step and ends with the weights an uninterrupted run
would have: the loader's batch order is a function of (seed, epoch, rank) alone.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field

import torch

from pipeline import faults
from pipeline.storage.files import exists, read_bytes, write_bytes
from pipeline.storage.uri_fs import join

log = logging.getLogger("pipeline.worker.checkpoint")
LAST = "last.pt"
BEST = "best_model.pt"


def save_checkpoint(directory: str, state: dict) -> None:
    """Write the whole checkpoint atomically (pipeline/storage/files.py: a temporary file renamed over the last one
    on disks and HDFS, one whole object on object stores), so a kill mid-write leaves the previous one intact."""
    write_bytes(join(directory, LAST), _serialised(state))
    partial = state.get("partial")
    if partial is not None:
        faults.hold_after_checkpoint(partial["epoch"], partial["step"])  # the test seam; a no-op in production


def load_checkpoint(directory: str) -> dict | None:
    """The last checkpoint's state, or None. weights_only=True: tensors and plain containers only."""
    uri = join(directory, LAST)
    if not exists(uri):
        return None
    return load_weights(uri)


def load_weights(uri: str) -> dict:
    """A file this module wrote (checkpoint or best weights), on CPU, without unpickling anything but tensors and
    plain containers; `uri` is a path or any URI the storage layer reads."""
    return torch.load(io.BytesIO(read_bytes(uri)), map_location="cpu", weights_only=True)


def save_best_weights(directory: str, state_dict: dict) -> str:
    """The best epoch's weights as a plain CPU state_dict (what gets registered); returns the file's URI."""
    uri = join(directory, BEST)
    write_bytes(uri, _serialised({k: v.detach().cpu() for k, v in state_dict.items()}))
    return uri


def _serialised(state: dict) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def new_best() -> dict:
    """Early-stopping bookkeeping before any epoch: best metric, its epoch and weights, epochs without progress."""
    return {"metric": None, "epoch": -1, "weights": None, "bad_epochs": 0}


@dataclass
class ResumePoint:
    """Where this rank starts: the next epoch, the steps of it already done, and the state to carry on from."""

    start_epoch: int = 0
    skip_steps: int = 0
    history: list = field(default_factory=list)
    best: dict = field(default_factory=new_best)
    rank_state: dict | None = None  # this rank's RNG states and metric sums at `skip_steps` (mid-epoch only)
    resumed: bool = False
    scaler_state: dict | None = None  # fp16's GradScaler (loss scale and growth tracker)


def resume_point(state: dict | None, rank: int, size: int) -> ResumePoint:
    """Read a checkpoint (or None) into where rank `rank` of `size` continues."""
    if state is None:
        return ResumePoint()
    point = ResumePoint(
        start_epoch=state["epoch"] + 1,
        history=list(state["history"]),
        best={
            "metric": state["best_metric"],
            "epoch": state["best_epoch"],
            "weights": state["best_model"],
            "bad_epochs": state["bad_epochs"],
        },
        resumed=True,
        scaler_state=state.get("scaler"),
    )
    partial = state.get("partial")
    if partial is not None:
        if len(partial["ranks"]) == size:
            point.skip_steps = partial["step"]
            point.rank_state = partial["ranks"][rank]
        elif rank == 0:
            # Shards depend on the number of workers, so the step position means nothing with another count.
            log.warning(
                "the mid-epoch checkpoint was taken with %d workers, this run has %d: epoch %d restarts from its "
                "first step with the checkpoint's weights (not an exact resume)",
                len(partial["ranks"]),
                size,
                partial["epoch"] + 1,
            )
    return point


def checkpoint_state(
    model_state: dict,
    optimizer_state: dict,
    last_epoch: int,
    best: dict,
    history: list,
    scaler_state: dict | None = None,
) -> dict:
    """What a checkpoint holds after `last_epoch` (-1: none yet) completed; mid-epoch ones add `partial`, fp16
    runs their GradScaler's state (`scaler`)."""
    scaler = {"scaler": scaler_state} if scaler_state else {}
    return {
        **scaler,
        "epoch": last_epoch,
        "model": model_state,
        "optimizer": optimizer_state,
        "best_metric": best["metric"],
        "best_epoch": best["epoch"],
        "best_model": best["weights"],
        "bad_epochs": best["bad_epochs"],
        "history": history,
    }


def rank_random_state(device: torch.device, augment_generator: torch.Generator, sums: torch.Tensor) -> dict:
    """One rank's state inside an epoch: dropout's RNG (CPU, and CUDA's), the augmentation draws, metric sums."""
    state = {"cpu_rng": torch.get_rng_state(), "augment_rng": augment_generator.get_state(), "sums": sums}
    if device.type == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state(device)
    return state


def restore_random_state(state: dict, device: torch.device, augment_generator: torch.Generator) -> None:
    """Undo rank_random_state's capture (the metric sums are restored by the caller)."""
    torch.set_rng_state(state["cpu_rng"])
    augment_generator.set_state(state["augment_rng"])
    if "cuda_rng" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda_rng"], device)
