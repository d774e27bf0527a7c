"""The built-in `text_cnn` network (Kim 2014, "Convolutional Neural Networks for Sentence Classification").

Per token tensor: embedding (row 0 = padding, kept at zero) -> parallel Conv1d of several kernel sizes -> ReLU ->
max over time; the towers, the numeric tensor and the categorical embeddings are concatenated -> dropout ->
linear head. Same factory contract as pipeline/model/networks.py; runs in the training ranks, in the driver's
pre-launch model check and wherever the registered model is loaded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from pipeline.model.inputs import CATEGORICAL, NUMERIC, TOKENS, ModelInputs
from pipeline.model.networks import default_embedding_dim

SUPPORTED_KINDS = (NUMERIC, CATEGORICAL, TOKENS)
DEFAULTS: dict[str, Any] = {"token_embedding_dim": 64, "kernel_sizes": (3, 4, 5), "filters": 64, "dropout": 0.5}


class ConvTower(nn.Module):
    """One token sequence [B, L] (int64, 0 = padding) -> [B, channels * len(kernel_sizes)]."""

    def __init__(self, vocab_size: int, embedding_dim: int, kernel_sizes: Sequence[int], channels: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
        self.convs = nn.ModuleList(nn.Conv1d(embedding_dim, channels, k) for k in kernel_sizes)
        self.min_len = max(kernel_sizes)

    @property
    def out_dim(self) -> int:
        return sum(conv.out_channels for conv in self.convs)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embedding(tokens).transpose(1, 2)  # [B, E, L]
        if x.shape[2] < self.min_len:  # sequences shorter than a kernel: pad with (zero) padding embeddings
            x = F.pad(x, (0, self.min_len - x.shape[2]))
        return torch.cat([F.relu(conv(x)).amax(dim=2) for conv in self.convs], dim=1)


class TextCNN(nn.Module):
    """Conv towers over every token tensor, plus the numeric and categorical tensors when present -> logits.

    Categorical columns get their own small embeddings (networks.default_embedding_dim), as in TabularMLP;
    `embedding_dim` is the token embedding width only.
    """

    def __init__(
        self,
        towers: dict[str, int],
        num_numeric: int,
        cardinalities: list[int],
        out_dim: int,
        embedding_dim: int,
        kernel_sizes: Sequence[int],
        channels: int,
        dropout: float,
    ):
        super().__init__()
        # A ModuleList plus the names (not a ModuleDict): tensor names may hold characters module names may not.
        self.token_names = tuple(towers)
        self.towers = nn.ModuleList(ConvTower(size, embedding_dim, kernel_sizes, channels) for size in towers.values())
        dims = [default_embedding_dim(c) for c in cardinalities]
        self.embeddings = nn.ModuleList(nn.Embedding(c, d) for c, d in zip(cardinalities, dims, strict=True))
        for emb in self.embeddings:
            nn.init.normal_(emb.weight, std=1.0 / math.sqrt(emb.embedding_dim))
        self.num_numeric = num_numeric
        width = sum(t.out_dim for t in self.towers) + num_numeric + sum(dims)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(width, out_dim)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = [tower(batch[name].long()) for name, tower in zip(self.token_names, self.towers, strict=True)]
        if self.num_numeric:
            parts.append(batch[NUMERIC])
        parts += [emb(batch[CATEGORICAL][:, i]) for i, emb in enumerate(self.embeddings)]
        return self.head(self.dropout(torch.cat(parts, dim=1)))


def _param(params: dict, key: str) -> Any:
    """A param or its default (a missing key and an explicit None both mean the default)."""
    value = params.get(key)
    return DEFAULTS[key] if value is None else value


def text_cnn(inputs: ModelInputs, params: dict) -> nn.Module:
    """Factory of the built-in `text_cnn`; params: token_embedding_dim, kernel_sizes, filters, dropout (all
    optional: train.model's keys of the same names)."""
    unsupported = [f"{t.name} ({t.kind})" for t in inputs.tensors.values() if t.kind not in SUPPORTED_KINDS]
    if unsupported:
        raise ValueError(f"text_cnn reads {list(SUPPORTED_KINDS)} tensors only; it cannot use {unsupported}")
    towers = {t.name: t.cardinalities[0] for t in inputs.tensors.values() if t.kind == TOKENS}
    if not towers:
        raise ValueError(f"text_cnn needs at least one text feature (token tensor); the inputs are {inputs.describe()}")
    kernel_sizes = [int(k) for k in _param(params, "kernel_sizes")]
    if not kernel_sizes or min(kernel_sizes) < 1:
        raise ValueError(f"text_cnn kernel_sizes must be a non-empty list of positive sizes, got {kernel_sizes}")
    return TextCNN(
        towers,
        inputs.num_numeric,
        inputs.cardinalities,
        inputs.output_dim,
        embedding_dim=int(_param(params, "token_embedding_dim")),
        kernel_sizes=kernel_sizes,
        channels=int(_param(params, "filters")),
        dropout=float(_param(params, "dropout")),
    )
