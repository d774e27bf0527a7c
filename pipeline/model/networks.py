"""The built-in networks, `linear` and `mlp`, as factories of the same contract a user's model follows.

`linear(inputs, params)` and `mlp(inputs, params)` take the ModelInputs description and plain params and return a
module whose forward takes the batch mapping (pipeline/model/inputs.py). Runs in the training ranks and wherever
the registered model is loaded.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pipeline.model.inputs import ARRAY, CATEGORICAL, NUMERIC, ModelInputs

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

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        x_cat = batch.get(CATEGORICAL)
        x_num = batch.get(NUMERIC)
        if x_num is None:  # no numeric columns: the bias alone
            rows = x_cat.shape[0]
            x_num = torch.zeros(rows, 0, device=x_cat.device)
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
        arrays: tuple[str, ...] = (),
        array_width: int = 0,
    ):
        super().__init__()
        self.arrays = arrays  # names of array tensors, concatenated after the numeric columns
        dims = [embedding_dim or default_embedding_dim(c) for c in cardinalities]
        self.embeddings = nn.ModuleList(nn.Embedding(c, d) for c, d in zip(cardinalities, dims, strict=True))
        layers: list[nn.Module] = []
        width = num_numeric + array_width + sum(dims)
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

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = [batch[NUMERIC]] if NUMERIC in batch else []
        parts += [batch[name] for name in self.arrays]
        parts += [emb(batch[CATEGORICAL][:, i]) for i, emb in enumerate(self.embeddings)]
        return self.body(torch.cat(parts, dim=1))


def linear(inputs: ModelInputs, params: dict) -> nn.Module:
    """Factory of train.model.type=linear (takes no params)."""
    return LinearModel(inputs.num_numeric, inputs.cardinalities, inputs.output_dim)


def mlp(inputs: ModelInputs, params: dict) -> nn.Module:
    """Factory of train.model.type=mlp; params are train.model's hidden, activation, dropout, norm, embedding_dim.

    Array features (features.arrays) join the numeric columns."""
    return TabularMLP(
        inputs.num_numeric,
        inputs.cardinalities,
        inputs.output_dim,
        hidden=list(params["hidden"]),
        activation=params["activation"],
        dropout=params["dropout"],
        norm=params["norm"],
        embedding_dim=params.get("embedding_dim"),
        arrays=tuple(t.name for t in inputs.of_kind(ARRAY)),
        array_width=inputs.array_width,
    )
