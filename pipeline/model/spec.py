"""FeatureSpec: everything fitted on the train split, as JSON, with a pandas/numpy transform (no pyspark).

The registered model carries this file and calls `transform_pandas`, so it works in spark_udf and in
`mlflow models serve` alike. `pipeline/data/features.py` implements the same arithmetic in Spark; a parity test
pins them.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.model.tensor_specs import ArraySpec, ImageSpec
from pipeline.model.text import TextVocab

SPEC_VERSION = 1
NULL_INDEX = 0  # categorical index for a missing value
OOV_INDEX = 1  # categorical index for a value not in the train vocabulary
PERIODS = {"hour": 24.0, "dow": 7.0, "month": 12.0}


@dataclass(frozen=True)
class NumericStats:
    name: str
    median: float
    mean: float
    std: float
    log1p: bool = False
    clip: tuple[float, float] | None = None
    missing_indicator: bool = True


@dataclass(frozen=True)
class CategoricalVocab:
    name: str
    vocab: tuple[str, ...]

    @property
    def cardinality(self) -> int:
        return len(self.vocab) + 2  # + null + OOV


@dataclass(frozen=True)
class TimestampParts:
    name: str
    parts: tuple[str, ...]


@dataclass(frozen=True)
class LabelSpec:
    column: str
    task: str
    classes: tuple[str, ...] = ()
    positive: str | None = None  # binary: the value meaning 1 (null: the label is already 0/1)
    # regression: the network learns (shaped(y) - mean) / std, shaped = log1p when log1p is set (fitted on train)
    mean: float = 0.0
    std: float = 1.0
    log1p: bool = False

    def to_original(self, values):
        """Network outputs or scaled targets -> the label's own units (numpy arrays or torch tensors)."""
        x = values * self.std + self.mean
        if self.log1p:
            return np.expm1(x) if isinstance(x, np.ndarray) else x.expm1()
        return x

    def binary_targets(self, values: pd.Series) -> np.ndarray:
        """Raw binary label values -> 0.0 / 1.0 (NaN where missing), as the training data encodes them."""
        if self.positive is None:
            return pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        text = category_text(values)
        return np.where(text.isna().to_numpy(), np.nan, (text == self.positive).to_numpy(dtype="float64", na_value=0.0))


@dataclass(frozen=True)
class FeatureSpec:
    input_schema: dict[str, str]
    numeric: tuple[NumericStats, ...] = ()
    categorical: tuple[CategoricalVocab, ...] = ()
    timestamps: tuple[TimestampParts, ...] = ()
    label: LabelSpec | None = None
    key_columns: tuple[str, ...] = ()
    images: tuple[ImageSpec, ...] = ()
    texts: tuple[TextVocab, ...] = ()
    arrays: tuple[ArraySpec, ...] = ()
    version: int = SPEC_VERSION
    schema_hash: str = field(default="")

    # ---- layout -------------------------------------------------------------------------------------
    @property
    def numeric_columns(self) -> list[str]:
        """Float32 feature columns, in the order the model reads them."""
        cols = []
        for n in self.numeric:
            cols.append(f"num__{n.name}")
            if n.missing_indicator:
                cols.append(f"miss__{n.name}")
        for t in self.timestamps:
            for part in t.parts:
                cols += [f"ts__{t.name}__{part}_sin", f"ts__{t.name}__{part}_cos"]
        return cols

    @property
    def categorical_columns(self) -> list[str]:
        return [f"cat__{c.name}" for c in self.categorical]

    @property
    def cardinalities(self) -> list[int]:
        return [c.cardinality for c in self.categorical]

    @property
    def input_columns(self) -> list[str]:
        """Clean columns the transform needs (the model's input signature)."""
        names = [n.name for n in self.numeric] + [c.name for c in self.categorical] + [t.name for t in self.timestamps]
        names += [i.name for i in self.images] + [t.name for t in self.texts] + [a.name for a in self.arrays]
        return list(dict.fromkeys(names))

    @property
    def num_classes(self) -> int:
        return len(self.label.classes) if self.label and self.label.task == "multiclass" else 1

    # ---- JSON ---------------------------------------------------------------------------------------
    def with_hash(self) -> FeatureSpec:
        payload = json.dumps(self.input_schema, sort_keys=True).encode()
        return replace(self, schema_hash=hashlib.sha256(payload).hexdigest()[:16])

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=False)

    @staticmethod
    def from_json(text: str) -> FeatureSpec:
        raw = json.loads(text)
        if raw.get("version") != SPEC_VERSION:
            raise ValueError(
                f"feature spec version {raw.get('version')} is not supported (expected {SPEC_VERSION}). "
                "Fix: re-run prepare with this version of the pipeline"
            )
        return FeatureSpec(
            input_schema=dict(raw["input_schema"]),
            numeric=tuple(
                NumericStats(**{**n, "clip": tuple(n["clip"]) if n.get("clip") else None}) for n in raw["numeric"]
            ),
            categorical=tuple(CategoricalVocab(c["name"], tuple(c["vocab"])) for c in raw["categorical"]),
            timestamps=tuple(TimestampParts(t["name"], tuple(t["parts"])) for t in raw["timestamps"]),
            label=LabelSpec(**{**raw["label"], "classes": tuple(raw["label"]["classes"])}) if raw["label"] else None,
            key_columns=tuple(raw.get("key_columns", ())),
            images=tuple(
                ImageSpec(**{**i, "mean": tuple(i["mean"]), "std": tuple(i["std"])}) for i in raw.get("images", ())
            ),
            texts=tuple(TextVocab.from_dict(t) for t in raw.get("texts", ())),
            arrays=tuple(ArraySpec(**a) for a in raw.get("arrays", ())),
            version=raw["version"],
            schema_hash=raw["schema_hash"],
        )

    @staticmethod
    def load(path: str | Path) -> FeatureSpec:
        return FeatureSpec.from_json(Path(path).read_text(encoding="utf-8"))

    # ---- transform ----------------------------------------------------------------------------------
    def transform_pandas(self, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Clean columns -> (float32 [n, numeric], int64 [n, categorical]); same numbers as Spark's transform.

        Raises:
            KeyError: naming the input column that is missing.
        """
        missing = [c for c in self.input_columns if c not in df.columns]
        if missing:
            raise KeyError(f"input is missing column(s) {missing} required by the feature spec")
        n = len(df)
        numeric = np.empty((n, len(self.numeric_columns)), dtype=np.float32)
        j = 0
        for stats in self.numeric:
            values = pd.to_numeric(df[stats.name], errors="raise").astype("float64").to_numpy()
            is_missing = ~np.isfinite(values)
            numeric[:, j] = standardize(np.where(is_missing, stats.median, values), stats)
            j += 1
            if stats.missing_indicator:
                numeric[:, j] = is_missing
                j += 1
        for ts in self.timestamps:
            column = pd.to_datetime(df[ts.name])
            if column.dt.tz is not None:
                column = column.dt.tz_convert("UTC").dt.tz_localize(None)
            for part in ts.parts:
                angle = 2 * math.pi * _time_part(column, part) / PERIODS[part]
                numeric[:, j] = np.nan_to_num(np.sin(angle))
                numeric[:, j + 1] = np.nan_to_num(np.cos(angle))
                j += 2
        categorical = np.empty((n, len(self.categorical)), dtype=np.int64)
        for k, cat in enumerate(self.categorical):
            categorical[:, k] = _index(df[cat.name], cat.vocab)
        return numeric, categorical

    def transform_images(self, df: pd.DataFrame) -> dict[str, np.ndarray]:
        """Image columns (encoded file bytes, or file paths) -> {ImageSpec.column: uint8 [n, C, H, W]}.

        Raises:
            ImageDecodeError: naming the column, the row and why the file cannot be used.
        """
        from pipeline.model.images import ImageDecodeError, decode_many

        out = {}
        for image in self.images:
            try:
                out[image.column] = decode_many(list(df[image.name]), image.mode, image.height, image.width)
            except ImageDecodeError as exc:
                raise ImageDecodeError(f"column {image.name!r}: {exc}") from None
        return out

    def transform_arrays(self, df: pd.DataFrame) -> dict[str, np.ndarray]:
        """Array columns (lists or numpy arrays per row) -> {ArraySpec.column: float32 [n, length]}.

        Raises:
            ValueError: naming the column and the first row whose array is missing or has another length.
        """
        out = {}
        for array in self.arrays:
            values = np.empty((len(df), array.length), dtype=np.float32)
            for row, value in enumerate(df[array.name]):
                size = None if value is None else len(value)
                if size != array.length:
                    raise ValueError(
                        f"column {array.name!r}, row {row}: array of length {size}, the model needs {array.length}"
                    )
                values[row] = np.asarray(value, dtype=np.float32)
            out[array.column] = values
        return out

    def transform_texts(self, df: pd.DataFrame) -> dict[str, np.ndarray]:
        """Text columns -> {TextVocab.column: int32 [n, max_len]} token ids (the same code Spark's UDF runs)."""
        return {text.column: text.encode(df[text.name]) for text in self.texts}


def standardize(values: np.ndarray, stats: NumericStats) -> np.ndarray:
    """clip -> signed log1p -> (x - mean) / std, in float64 like Spark does, then float32."""
    x = values
    if stats.clip is not None:
        x = np.clip(x, stats.clip[0], stats.clip[1])
    if stats.log1p:
        x = np.sign(x) * np.log1p(np.abs(x))
    return ((x - stats.mean) / stats.std).astype(np.float32)


def _time_part(column: pd.Series, part: str) -> np.ndarray:
    if part == "hour":
        return (column.dt.hour + column.dt.minute / 60.0).to_numpy(dtype="float64", na_value=np.nan)
    if part == "dow":  # 0 = Monday, as data/features.py computes it
        return column.dt.dayofweek.to_numpy(dtype="float64", na_value=np.nan)
    return (column.dt.month - 1).to_numpy(dtype="float64", na_value=np.nan)


def category_text(values: pd.Series) -> pd.Series:
    """Values as the strings Spark's cast(... as string) gives (integers without '.0')."""
    if pd.api.types.is_bool_dtype(values):
        return values.astype("boolean").astype("string").str.lower()
    if pd.api.types.is_integer_dtype(values):
        return values.astype("Int64").astype("string")
    return values.astype("string")


def _index(values: pd.Series, vocab: tuple[str, ...]) -> np.ndarray:
    text = category_text(values)
    lookup = {v: i + 2 for i, v in enumerate(vocab)}
    mapped = text.map(lookup)
    out = np.where(text.isna().to_numpy(), NULL_INDEX, mapped.fillna(OOV_INDEX).to_numpy(dtype="float64"))
    return out.astype(np.int64)
