"""The built-in `cnn`: conv stages per image tensor, joined with any tabular inputs, then an MLP head.

A factory of the same contract as every model (pipeline/model/inputs.py): `cnn(inputs, params)`. Each image tensor
(float32 [B, C, H, W], already normalised) goes through stages of two 3x3 convolutions with batch norm and ReLU
followed by 2x2 max-pooling (VGG-style, the "simple CNN" of MNIST-like tutorials), then global average pooling.
Numeric columns and categorical embeddings, when the spec has them, join the pooled image features before the
head. Runs in the training ranks and wherever the registered model is loaded.
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.model.inputs import CATEGORICAL, IMAGE, NUMERIC, ModelInputs
from pipeline.model.networks import default_embedding_dim


def conv_stage(in_channels: int, out_channels: int, pool: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for channels_in in (in_channels, out_channels):
        layers += [
            nn.Conv2d(channels_in, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        ]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class ImageTower(nn.Module):
    """Conv stages (pooling while the image is at least 2 pixels high and wide), then global average pooling."""

    def __init__(self, shape: tuple[int, int, int], channels: list[int]):
        super().__init__()
        in_channels, height, width = shape
        stages = []
        for out_channels in channels:
            pool = min(height, width) >= 2
            stages.append(conv_stage(in_channels, out_channels, pool))
            in_channels = out_channels
            if pool:
                height, width = height // 2, width // 2
        self.stages = nn.Sequential(*stages)
        self.out_features = in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(x).mean(dim=(2, 3))


class ConvNet(nn.Module):
    def __init__(self, inputs: ModelInputs, channels: list[int], hidden: list[int], dropout: float, embedding_dim):
        super().__init__()
        self.image_names = [t.name for t in inputs.of_kind(IMAGE)]
        self.towers = nn.ModuleDict({t.name: ImageTower(t.shape, channels) for t in inputs.of_kind(IMAGE)})
        dims = [embedding_dim or default_embedding_dim(c) for c in inputs.cardinalities]
        self.embeddings = nn.ModuleList(nn.Embedding(c, d) for c, d in zip(inputs.cardinalities, dims, strict=True))
        width = sum(t.out_features for t in self.towers.values()) + inputs.num_numeric + sum(dims)
        layers: list[nn.Module] = []
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU(inplace=True)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, inputs.output_dim))
        self.head = nn.Sequential(*layers)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = [self.towers[name](batch[name]) for name in self.image_names]
        if NUMERIC in batch:
            parts.append(batch[NUMERIC])
        parts += [emb(batch[CATEGORICAL][:, i]) for i, emb in enumerate(self.embeddings)]
        return self.head(torch.cat(parts, dim=1))


def cnn(inputs: ModelInputs, params: dict) -> nn.Module:
    """Factory of train.model.type=cnn; params are train.model's channels, hidden, dropout and embedding_dim."""
    if not inputs.of_kind(IMAGE):
        raise ValueError(
            "train.model.type cnn needs at least one image input, and the feature spec has none. Fix: declare "
            "features.images (and re-run prepare), or use type mlp"
        )
    return ConvNet(inputs, list(params["channels"]), list(params["hidden"]), params["dropout"], params["embedding_dim"])
