"""A custom training loss (train.loss: "tabular_resnet.losses:focal_loss"): binary focal loss (Lin et al., 2017)."""

import torch
from torch.nn import functional as F


def focal_loss(logits, target, gamma: float = 2.0):
    """Down-weights easy examples: mean of (1 - p_t)^gamma * BCE. logits [B] or [B, 1], target 0/1 floats [B]."""
    logits = logits.reshape(-1)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = torch.exp(-bce)
    return ((1 - p_t) ** gamma * bce).mean()
