"""The `features` section: what the model reads (numeric, categorical, timestamps, images, texts, arrays) and the
label. Part of the config schema (pipeline/config/schema.py assembles the sections)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from pipeline.config.frozen import Frozen


def not_a_tabular_tensor(value: str) -> str:
    """Image, text and array features name batch tensors, so they cannot take the tabular tensors' names."""
    if value in ("numeric", "categorical"):
        raise ValueError(f"{value!r} names a tensor of tabular features. Fix: alias the column in data.query")
    return value


class NumericFeature(Frozen):
    name: str
    """Column name."""
    log1p: bool = False
    """Apply sign(x)*log1p(|x|) before standardising (long-tailed values)."""
    clip: tuple[float, float] | None = None
    """[low, high] applied before the transform."""
    missing_indicator: bool = True
    """Add a 0/1 column telling the model the value was imputed (median of train), for columns with a null, NaN or
    infinite value in train; where train had none, a missing value at scoring time is imputed without one."""


class CategoricalFeature(Frozen):
    name: str
    """Column name."""
    top_k: int = Field(50, ge=1)
    """Vocabulary size from the train split; rarer values share an out-of-vocabulary bucket."""


class TimestampFeature(Frozen):
    name: str
    """Timestamp column name."""
    parts: list[Literal["hour", "dow", "month"]] = Field(default_factory=lambda: ["hour", "dow", "month"])
    """Cyclic parts encoded as sin/cos."""


class ImageFeature(Frozen):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    """Column of encoded image files (an image source's `content`); the model's tensor of the same name."""
    mode: Literal["L", "RGB"] = "RGB"
    """L: 1 channel (grayscale), RGB: 3; other modes are converted (transparency over white)."""
    size: tuple[int, int] = (64, 64)
    """[height, width] every image is resized to (bilinear)."""

    _reserved = field_validator("name")(not_a_tabular_tensor)

    @field_validator("size")
    @classmethod
    def _positive(cls, value: tuple[int, int]) -> tuple[int, int]:
        if min(value) < 1 or max(value) > 4096:
            raise ValueError(f"size {list(value)} must be [height, width] between 1 and 4096")
        return value


class TextFeature(Frozen):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    """Text column; the model's token-id tensor of the same name."""
    level: Literal["word", "char"] = "word"
    """word: runs of letters/digits (apostrophes inside words kept); char: characters (whitespace runs as one)."""
    lowercase: bool = True
    """Lower-case before tokenizing (after Unicode NFKC normalisation)."""
    top_k: int = Field(20_000, ge=1)
    """Vocabulary: the most frequent tokens of the train split; others map to the unknown id 1."""
    max_len: int = Field(64, ge=1, le=100_000)
    """Tokens kept per row (the first ones); shorter rows are padded with id 0."""

    _reserved = field_validator("name")(not_a_tabular_tensor)


class ArrayFeature(Frozen):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    """Column of fixed-length numbers (array<float> / array<double> in Parquet or JSON lines), e.g. precomputed
    embeddings or sensor windows; passed to the model as a float32 tensor of the same name, unscaled."""
    length: int = Field(ge=1, le=1_000_000)
    """Values per row; a row of another length, or with a null, NaN or infinite value, is quarantined."""

    _reserved = field_validator("name")(not_a_tabular_tensor)


class LabelConfig(Frozen):
    column: str
    """Label column."""
    task: Literal["binary", "multiclass", "regression"] = "binary"
    """binary (0/1 label), multiclass (any values, classes from train) or regression."""
    positive: str | None = None
    """binary: the value that means 1 (e.g. "Yes"); the other class is the most frequent other value (or the one in
    `classes`), and any third value goes to quarantine with its reason. null: the label is 0/1 (else quarantine)."""
    classes: list[str] = Field(default_factory=list)
    """binary / multiclass: the values the label may take (binary: two, `positive` one of them); a row with another
    value goes to quarantine. Empty: binary 0/1 or `positive` + the most frequent other value; multiclass: the
    input's values."""
    transform: Literal["standardize", "log_standardize", "none"] = "standardize"
    """regression: the target the network learns: (y - mean) / std fitted on train, the same after log1p (positive,
    skewed targets), or y as is. Predictions and metrics are always in the label's own units."""


class FeaturesConfig(Frozen):
    numeric: list[NumericFeature] = Field(default_factory=list)
    """Numeric inputs: median imputation, optional clip/log1p, standardisation (fitted on train)."""
    categorical: list[CategoricalFeature] = Field(default_factory=list)
    """Categorical inputs, one embedding each."""
    timestamps: list[TimestampFeature] = Field(default_factory=list)
    """Timestamp inputs."""
    images: list[ImageFeature] = Field(default_factory=list)
    """Image inputs: decoded, resized and stored as uint8 pixels; per-channel mean/std fitted on train."""
    texts: list[TextFeature] = Field(default_factory=list)
    """Text inputs: token ids of a vocabulary fitted on train, as fixed-length int32 sequences."""
    arrays: list[ArrayFeature] = Field(default_factory=list)
    """Fixed-length number arrays, passed through as float32 tensors (mlp uses them next to numeric columns)."""
    label: LabelConfig | None = None
    """What to predict; required to prepare training data."""

    @model_validator(mode="after")
    def _one_tensor_per_name(self) -> FeaturesConfig:
        names = [f.name for group in (self.images, self.texts, self.arrays) for f in group]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(
                f"{repeated} appear more than once in features.images / texts / arrays, and each names one tensor of "
                "the batch. Fix: alias the column in data.query to declare it twice"
            )
        return self
