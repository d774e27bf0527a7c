"""Resolve `module:function` references (model factories, custom losses) and build the network from plain values.

One code path for every model: the built-ins (`linear`, `mlp`, `cnn`, `text_cnn`) are factories named by the
same kind of reference as a user's `train.model.factory`. Runs in the training ranks, in the registered
model and in the driver's pre-launch check.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from torch import nn

from pipeline.model.inputs import ModelInputs

BUILTIN_FACTORIES = {
    "linear": "pipeline.model.networks:linear",
    "mlp": "pipeline.model.networks:mlp",
    "cnn": "pipeline.model.cnn:cnn",
    "text_cnn": "pipeline.model.text_cnn:text_cnn",
}
# The train.model keys each built-in factory takes as params.
BUILTIN_PARAMS = {
    "linear": (),
    "mlp": ("hidden", "activation", "dropout", "norm", "embedding_dim"),
    "cnn": ("channels", "hidden", "dropout", "embedding_dim"),
    "text_cnn": ("kernel_sizes", "filters", "token_embedding_dim", "dropout"),
}


def resolve(reference: str) -> Callable:
    """'package.module:function' -> the callable (ImportError / AttributeError propagate for the caller to word)."""
    module_name, _, attribute = reference.partition(":")
    target = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    return target


def build_network(model: dict, inputs: ModelInputs) -> nn.Module:
    """`model` is the resolved model dict ({"factory": ..., "params": {...}}) that the plan and the registry carry."""
    return resolve(model["factory"])(inputs, dict(model["params"]))
