"""nn.Modules for tabular features: a linear baseline and an MLP with one embedding per categorical column."""

from __future__ import annotations

import math

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU}


def default_embedding_dim(cardinality: int) -> int:
    """fastai's rule of thumb, capped at 16: small vocabularies get small vectors."""
    return max(2, min(16, round(1.6 * cardinality**0.56)))


class LinearModel(nn.Module):
    """Linear / logistic / softmax regression: a weight per numeric column and per category (one-hot)."""

    def __init__(self, num_numeric: int, cardinalities: list[int], out_dim: int):
        super().__init__()
        self.numeric = nn.Linear(num_numeric, out_dim)
        # An embedding of width out_dim summed over columns is exactly a one-hot linear term.
        self.categorical = nn.ModuleList(nn.Embedding(c, out_dim) for c in cardinalities)
        for emb in self.categorical:
            nn.init.zeros_(emb.weight)

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        out = self.numeric(x_num)
        for i, emb in enumerate(self.categorical):
            out = out + emb(x_cat[:, i])
        return out


class TabularMLP(nn.Module):
    """Numeric columns + categorical embeddings -> hidden layers (norm, activation, dropout) -> output."""

    def __init__(
        self,
        num_numeric: int,
        cardinalities: list[int],
        out_dim: int,
        hidden: list[int],
        activation: str = "relu",
        dropout: float = 0.0,
        norm: str = "none",
        embedding_dim: int | None = None,
    ):
        super().__init__()
        dims = [embedding_dim or default_embedding_dim(c) for c in cardinalities]
        self.embeddings = nn.ModuleList(nn.Embedding(c, d) for c, d in zip(cardinalities, dims, strict=True))
        layers: list[nn.Module] = []
        width = num_numeric + sum(dims)
        for size in hidden:
            layers.append(nn.Linear(width, size))
            if norm == "batch":
                layers.append(nn.BatchNorm1d(size))
            elif norm == "layer":
                layers.append(nn.LayerNorm(size))
            layers.append(ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, out_dim))
        self.body = nn.Sequential(*layers)
        for emb in self.embeddings:
            nn.init.normal_(emb.weight, std=1.0 / math.sqrt(emb.embedding_dim))

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        parts = [x_num] + [emb(x_cat[:, i]) for i, emb in enumerate(self.embeddings)]
        return self.body(torch.cat(parts, dim=1))


def build_model(model_cfg: dict, num_numeric: int, cardinalities: list[int], out_dim: int) -> nn.Module:
    """Build from plain values (a dict from ModelConfig), so workers need no config objects."""
    if model_cfg["type"] == "linear":
        return LinearModel(num_numeric, cardinalities, out_dim)
    return TabularMLP(
        num_numeric,
        cardinalities,
        out_dim,
        hidden=list(model_cfg["hidden"]),
        activation=model_cfg["activation"],
        dropout=model_cfg["dropout"],
        norm=model_cfg["norm"],
        embedding_dim=model_cfg.get("embedding_dim"),
    )
