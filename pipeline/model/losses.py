"""Losses and predictions from logits, per task: shared by the training ranks and the registered model.

A network may return binary / regression logits as [B] or [B, 1] (the factory contract allows both); `flat`
brings them to [B] before any loss or prediction.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def flat(task: str, logits: torch.Tensor) -> torch.Tensor:
    """[B, 1] -> [B] for binary and regression; multiclass logits stay [B, classes]."""
    if task != "multiclass" and logits.dim() == 2 and logits.shape[1] == 1:
        return logits.squeeze(1)
    return logits


def loss_fn(task: str, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if task == "binary":
        return F.binary_cross_entropy_with_logits(flat(task, logits), y)
    if task == "multiclass":
        return F.cross_entropy(logits, y, ignore_index=-1)
    return F.mse_loss(flat(task, logits), y)


def label_dtype(task: str) -> torch.dtype:
    return torch.int64 if task == "multiclass" else torch.float32


def predict(task: str, logits: torch.Tensor) -> torch.Tensor:
    """Probability of the positive class (binary), class probabilities (multiclass) or the value."""
    if task == "binary":
        return torch.sigmoid(flat(task, logits))
    if task == "multiclass":
        return torch.softmax(logits, dim=1)
    return flat(task, logits)
