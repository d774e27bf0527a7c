"""The network settings of the `train` section: `train.model` (built-ins and your own) and `train.augment`. Part of
the config schema (pipeline/config/schema.py assembles the sections)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from pipeline.config.frozen import Frozen, check_reference


class ModelConfig(Frozen):
    type: Literal["linear", "mlp", "cnn", "text_cnn", "custom"] = "mlp"
    """linear (logistic/softmax/linear regression), mlp, cnn (images), text_cnn (token sequences; both with any
    tabular inputs), or custom: your own nn.Module from `factory`."""
    hidden: list[int] = Field(default_factory=lambda: [256, 256])
    """mlp: hidden layer widths; cnn: widths of the head after the convolutions."""
    channels: list[int] = Field(default_factory=lambda: [32, 64])
    """cnn: output channels of each conv stage (two 3x3 conv + batch norm + ReLU, then 2x2 max-pool)."""
    kernel_sizes: list[int] = Field(default_factory=lambda: [3, 4, 5])
    """text_cnn: widths (in tokens) of the parallel 1-D convolutions."""
    filters: int = Field(64, ge=1)
    """text_cnn: filters per kernel size."""
    token_embedding_dim: int = Field(64, ge=1)
    """text_cnn: width of the token embeddings."""
    activation: Literal["relu", "gelu", "tanh", "silu"] = "relu"
    """mlp: activation."""
    dropout: float = Field(0.1, ge=0, lt=1)
    """mlp, cnn: dropout after each hidden layer; text_cnn: before the output layer."""
    norm: Literal["none", "batch", "layer"] = "layer"
    """mlp: normalisation after each hidden layer."""
    embedding_dim: int | None = Field(None, ge=1)
    """Embedding width of every categorical; null: min(16, ceil(1.6 * vocab^0.56)) per column."""
    factory: str | None = None
    """custom: "package.module:function" called as function(inputs, params) -> nn.Module whose forward takes the
    batch mapping and returns logits (docs/custom_models.md)."""
    params: dict[str, Any] = Field(default_factory=dict)
    """custom: plain YAML values handed to the factory as `params`."""
    code: str | None = None
    """custom: a .py file or a package folder holding the factory's module; shipped to the training workers and
    into the registered model. null: the module is already importable everywhere (installed)."""

    _reference = field_validator("factory")(check_reference)

    @model_validator(mode="after")
    def _custom_keys_only_for_custom(self) -> ModelConfig:
        if self.type == "custom" and not self.factory:
            raise ValueError('type custom needs factory: "package.module:function". Fix: set train.model.factory')
        given = [key for key in ("factory", "code") if getattr(self, key)] + (["params"] if self.params else [])
        if self.type != "custom" and given:
            raise ValueError(
                f"{', '.join(given)} only apply to type custom (type is {self.type}). Fix: set train.model.type: "
                "custom, or remove them"
            )
        return self


class AugmentConfig(Frozen):
    """Train-time image augmentation, applied on the worker's device; never at validation, test or scoring."""

    flip: bool = False
    """Mirror each training image left-right with probability 1/2 (not for digits or text in images)."""
    crop_padding: int = Field(0, ge=0, le=64)
    """Pad each training image by this many pixels and crop it back at a random offset; 0: off."""
