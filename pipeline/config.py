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
    # Attribute docstrings become field descriptions: the README's config reference is generated from them.
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class SparkConfig(_Frozen):
    master: str = "local[2]"
    """Spark master URL: local[k], local-cluster[n,cores,mb], spark://host:7077, yarn, k8s://..."""
    app_name: str = "sparktrain"
    """Application name shown in the Spark UI and the master's application list."""
    ui_port: int | None = None
    """Spark UI port; null switches the UI off."""
    shuffle_partitions: int = Field(8, ge=1)
    """spark.sql.shuffle.partitions (joins, de-duplication, aggregations)."""
    arrow_batch_size: int = Field(100_000, ge=1)
    """spark.sql.execution.arrow.maxRecordsPerBatch: rows per batch handed to the scoring UDF."""
    max_partition_mb: int = Field(32, ge=1)
    """Input split size: small enough that every core gets several splits of a file."""
    local_dir: str | None = None
    """spark.local.dir for shuffle and spill files; null keeps Spark's default (/tmp)."""
    extra: dict[str, str] = Field(default_factory=dict)
    """Any other Spark conf, e.g. {spark.executor.memory: 4g}."""


class SourceConfig(_Frozen):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    """View name of the source in data.query."""
    format: Literal["csv", "json", "parquet"]
    """csv (with header), json (JSON lines) or parquet."""
    path: str
    """File, folder, glob or Hadoop URI; may contain {date} for date-partitioned input."""
    schema_: dict[str, str] = Field(alias="schema", min_length=1)
    """Column -> Spark SQL type; text input is read as strings and cast, failed casts are quarantined."""
    options: dict[str, str] = Field(default_factory=dict)
    """Spark reader options, e.g. {nullValue: NA, sep: ';'}."""
    primary: bool = False
    """The source whose rows are the pipeline's input rows; the others are lookups for the join."""


class RuleConfig(_Frozen):
    """A row for which the SQL `when` is true goes to quarantine with `reason`."""

    when: str
    """Spark SQL boolean expression over the joined columns."""
    reason: str
    """Text written to the quarantined row's _reason."""


class RangeConfig(_Frozen):
    min: float | None = None
    """Smallest allowed value (inclusive); null: no lower bound."""
    max: float | None = None
    """Largest allowed value (inclusive); null: no upper bound."""


class CleaningConfig(_Frozen):
    required: list[str] = Field(default_factory=list)
    """Columns that must not be null."""
    ranges: dict[str, RangeConfig] = Field(default_factory=dict)
    """Column -> {min, max}; values outside are quarantined (NaN always is)."""
    allowed: dict[str, list[str]] = Field(default_factory=dict)
    """Column -> allowed values."""
    quarantine_nulls: list[str] = Field(default_factory=list)
    """Columns whose nulls send the row to quarantine; other nulls are kept and imputed."""
    dedup_on: list[str] = Field(default_factory=list)
    """Key columns: one row per key is kept (chosen by a row hash, the same on every rerun)."""
    rules: list[RuleConfig] = Field(default_factory=list)
    """Free SQL rules, applied in prepare and in scoring."""
    label_rules: list[RuleConfig] = Field(default_factory=list)
    """Rules that apply only where a label is expected (prepare), not at scoring time."""
    max_string_length: int = Field(4096, ge=1)
    """Longer strings are quarantined at read time (protects memory and the vocabularies)."""


class DataConfig(_Frozen):
    sources: list[SourceConfig] = Field(default_factory=list)
    """The raw inputs, each registered as a view for the query."""
    query: str | None = None
    """Spark SQL over the source views (joins, derived columns); null: the primary source as is."""
    key_columns: list[str] = Field(default_factory=list)
    """Columns that identify a row; copied into predictions."""
    date_column: str | None = None
    """Date/timestamp column that `score --date` selects on."""


class NumericFeature(_Frozen):
    name: str
    """Column name."""
    log1p: bool = False
    """Apply sign(x)*log1p(|x|) before standardising (long-tailed values)."""
    clip: tuple[float, float] | None = None
    """[low, high] applied before the transform."""
    missing_indicator: bool = True
    """Add a 0/1 column telling the model the value was imputed (median of train)."""


class CategoricalFeature(_Frozen):
    name: str
    """Column name."""
    top_k: int = Field(50, ge=1)
    """Vocabulary size from the train split; rarer values share an out-of-vocabulary bucket."""


class TimestampFeature(_Frozen):
    name: str
    """Timestamp column name."""
    parts: list[Literal["hour", "dow", "month"]] = Field(default_factory=lambda: ["hour", "dow", "month"])
    """Cyclic parts encoded as sin/cos."""


class LabelConfig(_Frozen):
    column: str
    """Label column."""
    task: Literal["binary", "multiclass", "regression"] = "binary"
    """binary (0/1 label), multiclass (any values, classes from train) or regression."""


class FeaturesConfig(_Frozen):
    numeric: list[NumericFeature] = Field(default_factory=list)
    """Numeric inputs: median imputation, optional clip/log1p, standardisation (fitted on train)."""
    categorical: list[CategoricalFeature] = Field(default_factory=list)
    """Categorical inputs, one embedding each."""
    timestamps: list[TimestampFeature] = Field(default_factory=list)
    """Timestamp inputs."""
    label: LabelConfig | None = None
    """What to predict; required to prepare training data."""


class SplitConfig(_Frozen):
    method: Literal["hash", "time"] = "hash"
    """hash: stable xxhash64 of `key`; time: date ranges on `column`."""
    key: str | None = None
    """hash: column hashed into [0, 1) buckets."""
    val_fraction: float = Field(0.1, ge=0, lt=1)
    """hash: share of rows for validation."""
    test_fraction: float = Field(0.1, ge=0, lt=1)
    """hash: share of rows for test."""
    column: str | None = None
    """time: date column."""
    train: tuple[str, str] | None = None
    """time: [start, end) ISO dates of the train split."""
    val: tuple[str, str] | None = None
    """time: [start, end) of the validation split."""
    test: tuple[str, str] | None = None
    """time: [start, end) of the test split; rows outside every range are "holdout" (new data)."""
    seed: int = 42
    """hash: seed of the hash."""


class PrepareConfig(_Frozen):
    row_group_rows: int = Field(131_072, ge=1024)
    """Parquet row group size of features/ (the trainer shards by row group)."""
    output_files: int = Field(4, ge=1)
    """Files per split in features/."""


class ModelConfig(_Frozen):
    type: Literal["linear", "mlp"] = "mlp"
    """linear (logistic/softmax/linear regression) or mlp."""
    hidden: list[int] = Field(default_factory=lambda: [256, 256])
    """mlp: hidden layer widths."""
    activation: Literal["relu", "gelu", "tanh", "silu"] = "relu"
    """mlp: activation."""
    dropout: float = Field(0.1, ge=0, lt=1)
    """mlp: dropout after each hidden layer."""
    norm: Literal["none", "batch", "layer"] = "layer"
    """mlp: normalisation after each hidden layer."""
    embedding_dim: int | None = Field(None, ge=1)
    """Embedding width of every categorical; null: min(16, ceil(1.6 * vocab^0.56)) per column."""


class TrainConfig(_Frozen):
    backend: Literal["horovod", "torch_distributor"] = "horovod"
    """horovod (horovod.spark.run) or torch_distributor (torch DDP through pyspark.ml.torch)."""
    num_proc: int = Field(2, ge=1)
    """Training processes (Spark tasks); must fit the task slots (checked before launch)."""
    epochs: int = Field(10, ge=1)
    """Maximum epochs."""
    batch_size: int = Field(1024, ge=1)
    """Rows per step per worker."""
    lr: float = Field(1e-3, gt=0)
    """AdamW learning rate per worker."""
    scale_lr_by_workers: bool = True
    """Multiply lr by num_proc (the global batch grows with the workers)."""
    warmup_epochs: float = Field(1.0, ge=0)
    """Linear warmup from lr to the scaled lr over this many epochs."""
    weight_decay: float = Field(0.0, ge=0)
    """AdamW weight decay."""
    grad_clip: float | None = Field(None, gt=0)
    """Clip the averaged gradient to this norm; null: no clipping."""
    backward_passes_per_step: int = Field(1, ge=1)
    """Gradient accumulation: local backward passes per allreduce."""
    fp16_allreduce: bool = False
    """Compress gradients to fp16 for the allreduce."""
    patience: int = Field(3, ge=1)
    """Early stopping: epochs without improvement of `monitor`."""
    monitor: str = "val_auc"
    """Validation metric for early stopping and the best epoch: val_loss, val_auc, val_accuracy, val_rmse, val_mae."""
    threads_per_worker: int | None = Field(None, ge=1)
    """Torch threads per worker; null: cores / num_proc."""
    shuffle_buffer_rows: int = Field(200_000, ge=1)
    """Rows in each worker's shuffle buffer (bounds the loader's memory)."""
    max_steps_per_epoch: int | None = Field(None, ge=1)
    """Cap on steps per epoch (quick runs); null: the whole shard."""
    seed: int = 7
    """Seed of weights, data order and dropout (with epoch and rank): resume is exact."""
    start_timeout_s: int = Field(120, ge=10)
    """Seconds Horovod waits for all workers to start."""
    nics: list[str] | None = None
    """Network interfaces for worker traffic, e.g. [lo] on one machine, [eth0] on a cluster; null: auto."""
    model: ModelConfig = Field(default_factory=ModelConfig)
    """The network."""


class TrackingConfig(_Frozen):
    uri: str = "sqlite:///work/mlflow.db"
    """MLflow tracking URI: sqlite:///... (local masters only) or http(s)://server."""
    artifact_root: str = "work/mlartifacts"
    """Artifact location of new experiments; mlflow-artifacts:/ proxies them through the server."""
    experiment: str = "sparktrain"
    """MLflow experiment name."""
    model_name: str = "sparktrain-model"
    """Registered model name."""
    promote_metric: str | None = None
    """Test metric that decides @champion; null: train.monitor on the test split."""


class ScoreConfig(_Frozen):
    input_sources: dict[str, str] = Field(default_factory=dict)
    """Source name -> path of new data to score (default: the source's own path)."""
    output_dir: str | None = None
    """Predictions folder; null: predictions/ under work_dir."""
    quarantine_dir: str | None = None
    """Rows that fail cleaning at scoring; null: score_quarantine/ under work_dir."""


class PipelineConfig(_Frozen):
    work_dir: str = "work"
    """Root of every output: prepared data, checkpoints, predictions (and the embedded MLflow store)."""
    spark: SparkConfig = Field(default_factory=SparkConfig)
    """The Spark session."""
    data: DataConfig = Field(default_factory=DataConfig)
    """Raw sources and the SQL that joins them."""
    cleaning: CleaningConfig = Field(default_factory=CleaningConfig)
    """Quarantine rules."""
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    """Model inputs and label."""
    split: SplitConfig = Field(default_factory=SplitConfig)
    """Train/val/test split."""
    prepare: PrepareConfig = Field(default_factory=PrepareConfig)
    """Layout of the prepared Parquet."""
    train: TrainConfig = Field(default_factory=TrainConfig)
    """Distributed training."""
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    """MLflow tracking and registry."""
    score: ScoreConfig = Field(default_factory=ScoreConfig)
    """Batch scoring."""

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
