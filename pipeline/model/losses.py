"""Losses and predictions from logits, per task: shared by the training ranks and the registered model."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def loss_fn(task: str, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if task == "binary":
        return F.binary_cross_entropy_with_logits(logits.squeeze(1), y)
    if task == "multiclass":
        return F.cross_entropy(logits, y, ignore_index=-1)
    return F.mse_loss(logits.squeeze(1), y)


def label_dtype(task: str) -> torch.dtype:
    return torch.int64 if task == "multiclass" else torch.float32


def predict(task: str, logits: torch.Tensor) -> torch.Tensor:
    """Probability of the positive class (binary), class probabilities (multiclass) or the value."""
    if task == "binary":
        return torch.sigmoid(logits.squeeze(1))
    if task == "multiclass":
        return torch.softmax(logits, dim=1)
    return logits.squeeze(1)
