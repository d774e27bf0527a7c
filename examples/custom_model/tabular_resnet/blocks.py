"""The residual block: x + Dropout(Linear(Dropout(ReLU(Linear(Norm(x)))))) (pre-normalisation)."""

from torch import nn


class ResidualBlock(nn.Module):
    def __init__(self, width: int, expansion: float, dropout: float):
        super().__init__()
        inner = int(width * expansion)
        self.body = nn.Sequential(
            nn.BatchNorm1d(width),
            nn.Linear(width, inner),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(inner, width),
            nn.Dropout(dropout),
        )

    def forward(self, x):
        return x + self.body(x)
