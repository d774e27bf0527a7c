"""Typed, frozen pipeline config: YAML overlays merged in order, then --set overrides, then ${ENV} values."""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.errors import ConfigError

BASE_CONFIG = Path(__file__).resolve().parent.parent / "conf" / "base.yaml"
_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SparkConfig(_Frozen):
    master: str = "local[2]"
    app_name: str = "sparktrain"
    ui_port: int | None = None  # None switches the Spark UI off
    shuffle_partitions: int = Field(8, ge=1)
    arrow_batch_size: int = Field(100_000, ge=1)
    # Input split size: small enough that every core gets several splits of a file (even rounds of tasks).
    max_partition_mb: int = Field(32, ge=1)
    local_dir: str | None = None
    extra: dict[str, str] = Field(default_factory=dict)


class SourceConfig(_Frozen):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    format: Literal["csv", "json", "parquet"]
    path: str
    schema_: dict[str, str] = Field(alias="schema", min_length=1)
    options: dict[str, str] = Field(default_factory=dict)
    # Secondary (lookup) sources feed the SQL join; only the primary source counts as "input rows".
    primary: bool = False


class RuleConfig(_Frozen):
    """A row for which the SQL `when` is true goes to quarantine with `reason`."""

    when: str
    reason: str


class RangeConfig(_Frozen):
    min: float | None = None
    max: float | None = None


class CleaningConfig(_Frozen):
    required: list[str] = Field(default_factory=list)
    ranges: dict[str, RangeConfig] = Field(default_factory=dict)
    allowed: dict[str, list[str]] = Field(default_factory=dict)
    # Columns whose nulls send the row to quarantine; other nulls are kept (the feature spec imputes them).
    quarantine_nulls: list[str] = Field(default_factory=list)
    dedup_on: list[str] = Field(default_factory=list)
    rules: list[RuleConfig] = Field(default_factory=list)
    # Label rules only apply when a label is expected (prepare), not at scoring time.
    label_rules: list[RuleConfig] = Field(default_factory=list)
    # Longer strings are quarantined at read time (protects memory and the categorical vocabulary).
    max_string_length: int = Field(4096, ge=1)


class DataConfig(_Frozen):
    sources: list[SourceConfig] = Field(default_factory=list)
    query: str | None = None
    key_columns: list[str] = Field(default_factory=list)
    date_column: str | None = None


class NumericFeature(_Frozen):
    name: str
    log1p: bool = False
    clip: tuple[float, float] | None = None
    missing_indicator: bool = True


class CategoricalFeature(_Frozen):
    name: str
    top_k: int = Field(50, ge=1)


class TimestampFeature(_Frozen):
    name: str
    parts: list[Literal["hour", "dow", "month"]] = Field(default_factory=lambda: ["hour", "dow", "month"])


class LabelConfig(_Frozen):
    column: str
    task: Literal["binary", "multiclass", "regression"] = "binary"


class FeaturesConfig(_Frozen):
    numeric: list[NumericFeature] = Field(default_factory=list)
    categorical: list[CategoricalFeature] = Field(default_factory=list)
    timestamps: list[TimestampFeature] = Field(default_factory=list)
    label: LabelConfig | None = None


class SplitConfig(_Frozen):
    method: Literal["hash", "time"] = "hash"
    # hash: split on a stable xxhash64 of `key` into [0, 1) buckets
    key: str | None = None
    val_fraction: float = Field(0.1, ge=0, lt=1)
    test_fraction: float = Field(0.1, ge=0, lt=1)
    # time: half-open [start, end) ISO dates on `column`; rows outside every range are "holdout" (new data)
    column: str | None = None
    train: tuple[str, str] | None = None
    val: tuple[str, str] | None = None
    test: tuple[str, str] | None = None
    seed: int = 42


class PrepareConfig(_Frozen):
    row_group_rows: int = Field(131_072, ge=1024)
    output_files: int = Field(4, ge=1)


class ModelConfig(_Frozen):
    type: Literal["linear", "mlp"] = "mlp"
    hidden: list[int] = Field(default_factory=lambda: [256, 256])
    activation: Literal["relu", "gelu", "tanh", "silu"] = "relu"
    dropout: float = Field(0.1, ge=0, lt=1)
    norm: Literal["none", "batch", "layer"] = "layer"
    embedding_dim: int | None = Field(None, ge=1)  # None: min(16, ceil(1.6 * vocab^0.56))


class TrainConfig(_Frozen):
    backend: Literal["horovod", "torch_distributor"] = "horovod"
    num_proc: int = Field(2, ge=1)
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(1024, ge=1)
    lr: float = Field(1e-3, gt=0)
    scale_lr_by_workers: bool = True
    warmup_epochs: float = Field(1.0, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    grad_clip: float | None = Field(None, gt=0)
    backward_passes_per_step: int = Field(1, ge=1)
    fp16_allreduce: bool = False
    patience: int = Field(3, ge=1)
    monitor: str = "val_auc"
    threads_per_worker: int | None = Field(None, ge=1)  # None: cores / workers
    shuffle_buffer_rows: int = Field(200_000, ge=1)
    max_steps_per_epoch: int | None = Field(None, ge=1)
    seed: int = 7
    start_timeout_s: int = Field(120, ge=10)
    nics: list[str] | None = None  # e.g. ["lo"] for a single machine; None lets Horovod choose
    model: ModelConfig = Field(default_factory=ModelConfig)


class TrackingConfig(_Frozen):
    uri: str = "sqlite:///work/mlflow.db"
    artifact_root: str = "work/mlartifacts"
    experiment: str = "sparktrain"
    model_name: str = "sparktrain-model"
    promote_metric: str | None = None  # default: train.monitor on the test split


class ScoreConfig(_Frozen):
    input_sources: dict[str, str] = Field(default_factory=dict)  # source name -> path for new data
    output_dir: str | None = None
    quarantine_dir: str | None = None


class PipelineConfig(_Frozen):
    work_dir: str = "work"
    spark: SparkConfig = Field(default_factory=SparkConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    cleaning: CleaningConfig = Field(default_factory=CleaningConfig)
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    prepare: PrepareConfig = Field(default_factory=PrepareConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    score: ScoreConfig = Field(default_factory=ScoreConfig)

    def path(self, *parts: str) -> str:
        """A path under work_dir (absolute so executors and workers agree on it)."""
        return str(Path(self.work_dir).absolute().joinpath(*parts))

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


def _merge(base: dict, overlay: dict, origin: str, provenance: dict[str, str], prefix: str = "") -> dict:
    """Deep-merge overlay into base (lists replace), recording which file set each dotted key."""
    out = dict(base)
    for key, value in overlay.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value, origin, provenance, dotted + ".")
        else:
            out[key] = copy.deepcopy(value)
            provenance[dotted] = origin
    return out


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist. Fix: pass an existing file to --conf")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}. Fix: correct the syntax") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at top level, got {type(data).__name__}")
    return data


def _parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConfigError(f"--set {item!r} must look like key.path=value, e.g. --set train.epochs=3")
    key, raw = item.split("=", 1)
    keys = key.strip().split(".")
    if not all(keys):
        raise ConfigError(f"--set {item!r} has an empty key segment. Fix: e.g. --set train.epochs=3")
    return keys, yaml.safe_load(raw) if raw.strip() else ""


def _interpolate(value: Any, where: str) -> Any:
    """Replace ${VAR} / ${VAR:-default} in strings so secrets stay out of committed files."""
    if isinstance(value, dict):
        return {k: _interpolate(v, f"{where}.{k}" if where else k) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise ConfigError(
            f"{where}: environment variable ${{{name}}} is not set. "
            f"Fix: export {name}=... (or write ${{{name}:-default}})"
        )

    return _ENV_PATTERN.sub(replace, value)


def _describe(errors: Iterable[dict], provenance: dict[str, str]) -> str:
    lines = []
    for err in errors:
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-after"))
        loc = loc.replace("schema_", "schema")
        origin = _origin_of(loc, provenance)
        value = err.get("input")
        shown = "" if isinstance(value, dict) else f" (got {value!r})"
        msg = err["msg"].replace("Value error, ", "")
        if err["type"] == "extra_forbidden":
            msg = "unknown key; Fix: remove it or check its spelling against conf/base.yaml"
        lines.append(f"{loc or '<top level>'}{shown}: {msg} [set in {origin}]")
    return "invalid config:\n  " + "\n  ".join(lines)


def _origin_of(loc: str, provenance: dict[str, str]) -> str:
    parts = loc.split(".")
    for n in range(len(parts), 0, -1):
        key = ".".join(parts[:n])
        if key in provenance:
            return provenance[key]
    return "defaults"


def load_config(
    paths: Sequence[str | Path] = (), overrides: Sequence[str] = (), include_base: bool = True
) -> PipelineConfig:
    """Merge base.yaml, each overlay in order, then --set overrides, then ${ENV} values.

    Raises:
        ConfigError: naming key, file, bad value and fix for unknown keys, wrong types, contradictions.
    """
    provenance: dict[str, str] = {}
    merged: dict = {}
    files = ([BASE_CONFIG] if include_base else []) + [Path(p) for p in paths]
    for path in files:
        merged = _merge(merged, _read_yaml(path), str(path), provenance)
    for item in overrides:
        keys, value = _parse_override(item)
        nested: Any = value
        for key in reversed(keys):
            nested = {key: nested}
        merged = _merge(merged, nested, f"--set {item}", provenance)
    merged = _interpolate(merged, "")
    try:
        config = PipelineConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_describe(exc.errors(), provenance)) from None
    _check_cross_field(config)
    return config


def _check_cross_field(config: PipelineConfig) -> None:
    """Contradictions that span sections (each message names both settings and the fix)."""
    if config.data.sources:
        _check_split(config.split)
    names = [s.name for s in config.data.sources]
    if len(set(names)) != len(names):
        raise ConfigError(f"data.sources: duplicate source names {names}. Fix: give each source a unique name")
    primaries = [s.name for s in config.data.sources if s.primary]
    if len(config.data.sources) > 1 and len(primaries) != 1:
        raise ConfigError(
            f"data.sources: exactly one source must have primary: true when several are declared "
            f"(found {primaries or 'none'}). Fix: mark the table whose rows you predict on as primary"
        )
    if len(config.data.sources) > 1 and not config.data.query:
        raise ConfigError("data.query is empty but several sources are declared. Fix: write the SQL that joins them")
    task = config.features.label.task if config.features.label else None
    monitor = config.train.monitor
    classification_metrics = {"val_auc", "val_accuracy", "val_loss"}
    regression_metrics = {"val_rmse", "val_mae", "val_loss"}
    allowed = regression_metrics if task == "regression" else classification_metrics
    if task == "multiclass":
        allowed = {"val_accuracy", "val_loss"}
    if task and monitor not in allowed:
        raise ConfigError(
            f"train.monitor={monitor!r} is not a metric of a {task} task. Fix: use one of {sorted(allowed)}"
        )
    if config.train.model.type == "linear" and config.features.categorical and config.train.model.embedding_dim:
        raise ConfigError(
            "train.model.embedding_dim is set but train.model.type=linear uses one-hot weights. "
            "Fix: remove embedding_dim or use type: mlp"
        )


def _check_split(split: SplitConfig) -> None:
    if split.method == "hash" and not split.key:
        raise ConfigError(
            "split.key is empty but split.method=hash. Fix: set split.key to a column that identifies a row"
        )
    if split.method == "hash" and split.val_fraction + split.test_fraction >= 1:
        raise ConfigError(
            f"split.val_fraction + split.test_fraction = {split.val_fraction + split.test_fraction} leaves no "
            "training rows. Fix: make their sum < 1"
        )
    if split.method == "time" and not (split.column and split.train and split.val and split.test):
        raise ConfigError(
            "split.method=time needs split.column and split.train/val/test as [start, end) ISO dates. Fix: set all four"
        )


def dump_yaml(config: PipelineConfig) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)
