"""TabularResNet and its factory. Reads the batch by the names sparktrain documents: `numeric`, `categorical`."""

import torch
from torch import nn

from tabular_resnet.blocks import ResidualBlock


class TabularResNet(nn.Module):
    def __init__(self, num_numeric, cardinalities, output_dim, width, blocks, expansion, dropout, embedding_dim):
        super().__init__()
        self.embeddings = nn.ModuleList(nn.Embedding(c, embedding_dim) for c in cardinalities)
        self.stem = nn.Linear(num_numeric + embedding_dim * len(cardinalities), width)
        self.blocks = nn.Sequential(*(ResidualBlock(width, expansion, dropout) for _ in range(blocks)))
        self.head = nn.Sequential(nn.BatchNorm1d(width), nn.ReLU(), nn.Linear(width, output_dim))

    def forward(self, batch):
        parts = [batch["numeric"]] if "numeric" in batch else []
        if "categorical" in batch:
            parts += [emb(batch["categorical"][:, i]) for i, emb in enumerate(self.embeddings)]
        return self.head(self.blocks(self.stem(torch.cat(parts, dim=1))))


def build(inputs, params):
    """sparktrain's factory contract: (a description of the batch, train.model.params) -> nn.Module."""
    return TabularResNet(
        num_numeric=inputs.num_numeric,
        cardinalities=inputs.cardinalities,
        output_dim=inputs.output_dim,
        width=params.get("width", 128),
        blocks=params.get("blocks", 2),
        expansion=params.get("expansion", 2.0),
        dropout=params.get("dropout", 0.1),
        embedding_dim=params.get("embedding_dim", 8),
    )
