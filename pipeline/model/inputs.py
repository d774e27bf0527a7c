"""What a network is given: the batch's named tensors and a small description of them (the factory contract).

Used by the training ranks (the loader fills these tensors from Parquet), by the registered model (clean columns
-> the same tensors with pandas) and by the driver's pre-launch model check (an example batch). Plain values and
torch only: a user's factory can rely on nothing else.

A batch is a mapping {tensor name: tensor}; today `numeric` (float32 [B, n]) and `categorical` (int64 [B, k]),
each present only when the feature spec has such columns. The label is never in it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from pipeline.model.spec import FeatureSpec

NUMERIC, CATEGORICAL = "numeric", "categorical"
Batch = dict[str, torch.Tensor]


@dataclass(frozen=True)
class TensorInput:
    """One named tensor of the batch: per-row shape, dtype, the feature columns behind it."""

    name: str
    shape: tuple[int, ...]  # per row, without the batch dimension
    dtype: str  # torch dtype name: "float32", "int64"
    columns: tuple[str, ...]
    cardinalities: tuple[int, ...] = ()  # categorical: indices run 0..cardinality-1 (0 = null, 1 = unseen)


@dataclass(frozen=True)
class ModelInputs:
    """Handed to every model factory: `factory(inputs, params) -> nn.Module`.

    `output_dim` is the width of the logits the forward must return: 1 for binary and regression ([B] or [B, 1]),
    the number of classes for multiclass ([B, classes]).
    """

    tensors: dict[str, TensorInput]
    task: str
    output_dim: int
    classes: tuple[str, ...] = ()

    @property
    def num_numeric(self) -> int:
        tensor = self.tensors.get(NUMERIC)
        return tensor.shape[0] if tensor else 0

    @property
    def cardinalities(self) -> list[int]:
        tensor = self.tensors.get(CATEGORICAL)
        return list(tensor.cardinalities) if tensor else []

    def describe(self) -> str:
        """One line per tensor, for error messages."""
        return ", ".join(f"{t.name} {t.dtype} [B, {', '.join(map(str, t.shape))}]" for t in self.tensors.values())


def model_inputs(spec: FeatureSpec) -> ModelInputs:
    """The description of the batch the feature spec produces."""
    tensors: dict[str, TensorInput] = {}
    if spec.numeric_columns:
        columns = tuple(spec.numeric_columns)
        tensors[NUMERIC] = TensorInput(NUMERIC, (len(columns),), "float32", columns)
    if spec.categorical_columns:
        columns = tuple(spec.categorical_columns)
        tensors[CATEGORICAL] = TensorInput(CATEGORICAL, (len(columns),), "int64", columns, tuple(spec.cardinalities))
    label = spec.label
    task = label.task if label else "binary"
    return ModelInputs(tensors, task, spec.num_classes, tuple(label.classes) if label else ())


def batch_from_frame(spec: FeatureSpec, frame: pd.DataFrame) -> Batch:
    """Clean columns -> the batch mapping, with the spec's pandas transform (scoring, threshold choice)."""
    numeric, categorical = spec.transform_pandas(frame)
    return batch_from_arrays(numeric, categorical)


def batch_from_arrays(numeric: np.ndarray, categorical: np.ndarray) -> Batch:
    """Only the tensors that have columns, so a model sees exactly the keys ModelInputs describes."""
    batch: Batch = {}
    if numeric.shape[1]:
        batch[NUMERIC] = torch.from_numpy(numeric)
    if categorical.shape[1]:
        batch[CATEGORICAL] = torch.from_numpy(categorical)
    return batch


def example_batch(inputs: ModelInputs, rows: int, seed: int = 0) -> Batch:
    """A small random batch of the right shapes, dtypes and index ranges (the driver's pre-launch forward)."""
    generator = torch.Generator().manual_seed(seed)
    batch: Batch = {}
    for name, tensor in inputs.tensors.items():
        if tensor.cardinalities:
            highs = torch.tensor(tensor.cardinalities, dtype=torch.float64)
            batch[name] = (torch.rand((rows, *tensor.shape), generator=generator, dtype=torch.float64) * highs).long()
        else:
            batch[name] = torch.randn((rows, *tensor.shape), generator=generator, dtype=getattr(torch, tensor.dtype))
    return batch


def describe_batch(batch: Batch) -> str:
    return ", ".join(f"{name} {str(t.dtype).removeprefix('torch.')} {list(t.shape)}" for name, t in batch.items())
