"""Epoch checkpoints: written atomically by rank 0, read by every rank, loaded without unpickling code."""

from __future__ import annotations

import os
from pathlib import Path

import torch

LAST = "last.pt"


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
