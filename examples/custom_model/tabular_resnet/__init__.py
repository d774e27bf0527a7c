"""A residual MLP over numeric columns and categorical embeddings (the "ResNet" of Gorishniy et al., 2021).

A user's model for sparktrain: `build(inputs, params)` is the factory that train.model.factory names.
"""

from tabular_resnet.model import build

__all__ = ["build"]
