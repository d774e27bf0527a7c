"""What a network is given: the batch's named tensors and a small description of them (the factory contract).

Used by the training ranks (the loader fills these tensors from Parquet), by the registered model (clean columns
-> the same tensors with pandas) and by the driver's pre-launch model check (an example batch). Plain values and
torch only: a user's factory can rely on nothing else.

A batch is a mapping {tensor name: tensor}: `numeric` (float32 [B, n]) and `categorical` (int64 [B, k]), each
present only when the feature spec has such columns, and one float32 [B, C, H, W] tensor per image feature, named
after its column, and one int64 [B, max_len] tensor of token ids per text feature (0 = padding, 1 = unknown), also
named after its column, and one float32 [B, length] tensor per array feature. The label is never in it. Images
travel as uint8 (4x fewer bytes through the loader and to the device) and become normalised floats on the device
(`to_model_view`), so a model only ever sees the float form.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from pipeline.model.spec import FeatureSpec

NUMERIC, CATEGORICAL, IMAGE, TOKENS, ARRAY = "numeric", "categorical", "image", "tokens", "array"
Batch = dict[str, torch.Tensor]


@dataclass(frozen=True)
class TensorInput:
    """One named tensor of the batch: per-row shape, dtype, the feature columns behind it."""

    name: str
    shape: tuple[int, ...]  # per row, without the batch dimension
    dtype: str  # torch dtype name as the model sees it: "float32", "int64"
    columns: tuple[str, ...]
    cardinalities: tuple[int, ...] = ()  # categorical: indices run 0..cardinality-1 (0 = null, 1 = unseen)
    kind: str = NUMERIC  # numeric, categorical, image, tokens or array
    stored_dtype: str = ""  # how the loader carries it when that differs from `dtype` (images: uint8, tokens: int32)
    mean: tuple[float, ...] = ()  # image: per channel, of pixel / 255 on train (the model sees (x - mean) / std)
    std: tuple[float, ...] = ()

    @property
    def loader_dtype(self) -> str:
        return self.stored_dtype or self.dtype

    @property
    def packed(self) -> bool:
        """One Parquet column holds the whole per-row tensor (image pixels, token ids), not one column per value."""
        return self.kind in (IMAGE, TOKENS, ARRAY)


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
    def array_width(self) -> int:
        """Values of every array tensor together (the built-in mlp concatenates them with the numeric columns)."""
        return sum(t.shape[0] for t in self.of_kind(ARRAY))

    @property
    def cardinalities(self) -> list[int]:
        tensor = self.tensors.get(CATEGORICAL)
        return list(tensor.cardinalities) if tensor else []

    def of_kind(self, kind: str) -> list[TensorInput]:
        return [t for t in self.tensors.values() if t.kind == kind]

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
        tensors[CATEGORICAL] = TensorInput(
            CATEGORICAL, (len(columns),), "int64", columns, tuple(spec.cardinalities), kind=CATEGORICAL
        )
    for image in spec.images:
        tensors[image.name] = TensorInput(
            image.name,
            image.shape,
            "float32",
            (image.column,),
            kind=IMAGE,
            stored_dtype="uint8",
            mean=image.mean,
            std=image.std,
        )
    for text in spec.texts:
        tensors[text.name] = TensorInput(
            text.name, (text.max_len,), "int64", (text.column,), (text.size,), kind=TOKENS, stored_dtype="int32"
        )
    for array in spec.arrays:
        tensors[array.name] = TensorInput(array.name, (array.length,), "float32", (array.column,), kind=ARRAY)
    label = spec.label
    task = label.task if label else "binary"
    return ModelInputs(tensors, task, spec.num_classes, tuple(label.classes) if label else ())


def batch_from_frame(spec: FeatureSpec, frame: pd.DataFrame) -> Batch:
    """Clean columns -> the batch mapping in its stored form, with the spec's pandas transforms (scoring,
    threshold choice); `to_model_view` turns it into what the network takes."""
    numeric, categorical = spec.transform_pandas(frame)
    batch = batch_from_arrays(numeric, categorical)
    pixels = spec.transform_images(frame)
    for image in spec.images:
        batch[image.name] = torch.from_numpy(pixels[image.column])
    tokens = spec.transform_texts(frame)
    for text in spec.texts:
        batch[text.name] = torch.from_numpy(tokens[text.column])
    arrays = spec.transform_arrays(frame)
    for array in spec.arrays:
        batch[array.name] = torch.from_numpy(arrays[array.column])
    return batch


def to_model_view(batch: Batch, inputs: ModelInputs) -> Batch:
    """Stored form -> the model's: uint8 images become float32 (x / 255 - mean) / std, int32 token ids int64.
    Call it on the device."""
    out = dict(batch)
    for tensor in inputs.of_kind(TOKENS):
        out[tensor.name] = batch[tensor.name].long()
    for tensor in inputs.of_kind(IMAGE):
        x = batch[tensor.name]
        mean, std = _channel_constants(tuple(tensor.mean), tuple(tensor.std), x.device)
        out[tensor.name] = (x.to(torch.float32) / 255.0 - mean) / std
    return out


@functools.lru_cache(maxsize=16)
def _channel_constants(mean: tuple, std: tuple, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std as [1, C, 1, 1] tensors on `device`, built once (not a host-to-device copy per
    batch)."""
    shaped = (torch.tensor(v, dtype=torch.float32, device=device).view(1, -1, 1, 1) for v in (mean, std))
    return tuple(shaped)


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
