"""Epoch checkpoints (training ranks): written atomically by rank 0, read by every rank, loaded without unpickling."""

from __future__ import annotations

import os
from pathlib import Path

import torch

LAST = "last.pt"
BEST = "best_model.pt"


def save_checkpoint(directory: str, state: dict) -> None:
    """Write to a temp file then rename, so a kill mid-write leaves the previous checkpoint intact."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    tmp = path / f".{LAST}.tmp-{os.getpid()}"
    torch.save(state, tmp)
    os.replace(tmp, path / LAST)


def load_checkpoint(directory: str) -> dict | None:
    """The last completed epoch's state, or None. weights_only=True: tensors and plain containers only."""
    path = Path(directory) / LAST
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


def save_best_weights(directory: str, state_dict: dict) -> str:
    """The best epoch's weights as a plain CPU state_dict (what gets registered); returns the file's path."""
    path = str(Path(directory) / BEST)
    torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, path)
    return path
