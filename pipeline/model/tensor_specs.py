"""Fitted descriptions of the non-tabular inputs in the feature spec: images and number arrays (text: text.py).

Plain dataclasses stored in feature_spec.json; shipped inside the registered model with the rest of model/.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ImageSpec:
    """An image input: the column of encoded file bytes, how it is decoded, per-channel mean/std of train pixels."""

    name: str
    mode: str  # L or RGB
    height: int
    width: int
    mean: tuple[float, ...]  # per channel, of pixel / 255 over the train split
    std: tuple[float, ...]

    @property
    def channels(self) -> int:
        return len(self.mean)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)

    @property
    def column(self) -> str:
        """The features Parquet column: uint8 pixels, CHW order, channels x height x width bytes per row."""
        return f"img__{self.name}"


@dataclass(frozen=True)
class ArraySpec:
    """A fixed-length number array passed through as float32 (precomputed embeddings, sensor windows)."""

    name: str
    length: int

    @property
    def column(self) -> str:
        return f"arr__{self.name}"
