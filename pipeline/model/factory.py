"""Resolve `module:function` references (model factories, custom losses) and build the network from plain values.

One code path for every model: the built-in `linear` and `mlp` are factories in pipeline/model/networks.py named
by the same kind of reference as a user's `train.model.factory`. Runs in the training ranks, in the registered
model and in the driver's pre-launch check.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from torch import nn

from pipeline.model.inputs import ModelInputs

BUILTIN_FACTORIES = {"linear": "pipeline.model.networks:linear", "mlp": "pipeline.model.networks:mlp"}
BUILTIN_PARAMS = ("hidden", "activation", "dropout", "norm", "embedding_dim")  # train.model keys of `mlp`


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
