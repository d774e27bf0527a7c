"""The config's shape: every section and key, its type, bounds, default and meaning (typed, frozen).

Loading and merging YAML overlays lives in pipeline/config/load.py; the config reference in
docs/configuration.md is generated from these classes (pipeline/config/reference.py).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from pipeline.config.feature_sections import FeaturesConfig
from pipeline.config.frozen import Frozen, check_reference
from pipeline.config.model import AugmentConfig, ModelConfig
from pipeline.config.monitoring import MonitorConfig
from pipeline.config.retraining import RetrainConfig
from pipeline.config.source_entry import SourceConfig
from pipeline.config.tuning import TuneConfig


class SparkConfig(Frozen):
    master: str = "local[2]"
    """Spark master URL: local[k], local-cluster[n,cores,mb], spark://host:7077, yarn, k8s://..."""
    remote: str | None = None
    """Spark Connect endpoint (sc://host:15002): every stage runs through it, training with
    train.backend=torch_distributor; null: the SPARK_REMOTE variable, else a classic session on `master`."""
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


class RuleConfig(Frozen):
    """A row for which the SQL `when` is true goes to quarantine with `reason`."""

    when: str
    """Spark SQL boolean expression over the joined columns."""
    reason: str
    """Text written to the quarantined row's _reason."""


class RangeConfig(Frozen):
    min: float | None = None
    """Smallest allowed value (inclusive); null: no lower bound."""
    max: float | None = None
    """Largest allowed value (inclusive); null: no upper bound."""


class CleaningConfig(Frozen):
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


class DataConfig(Frozen):
    sources: list[SourceConfig] = Field(default_factory=list)
    """The raw inputs, each registered as a view for the query."""
    query: str | None = None
    """Spark SQL over the source views (joins, derived columns); null: the primary source as is."""
    key_columns: list[str] = Field(default_factory=list)
    """Columns that identify a row; copied into predictions."""
    date_column: str | None = None
    """Date/timestamp column that `score --date` selects on."""
    max_quarantine_fraction: float = Field(0.01, ge=0, le=1)
    """Share of input rows that may go to quarantine for problems no cleaning setting declared (unreadable lines,
    failed casts, label values outside the classes) before prepare or score fails; below it, a WARNING. Rows your
    own cleaning settings quarantine are reported, not limited."""


class SplitConfig(Frozen):
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


class PrepareConfig(Frozen):
    row_group_rows: int = Field(131_072, ge=1024)
    """Parquet row group size of features/ (the trainer shards by row group)."""
    output_files: int = Field(4, ge=1)
    """Files per split in features/."""


class TrainConfig(Frozen):
    backend: Literal["horovod", "torch_distributor"] = "horovod"
    """horovod (horovod.spark.run) or torch_distributor (torch DDP through pyspark.ml.torch)."""
    num_proc: int = Field(2, ge=1)
    """Training processes (Spark tasks); must fit the task slots (checked before launch)."""
    epochs: int | None = Field(None, ge=1)
    """Maximum epochs; null: enough for at least 2,000 optimizer steps, between 10 and 200 (early stopping ends
    sooner)."""
    batch_size: int | None = Field(None, ge=1)
    """Rows per step per worker; null: the largest power of two from 16 to 1024 that gives every worker at least
    50 steps per epoch on its train shard."""
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
    grouped_allreduce: bool = False
    """Horovod: all of a step's gradients in one grouped allreduce (one negotiation) instead of one per tensor as
    backward makes it ready (Horovod's `groups=1`). On 2 CPU cores it gained nothing (benchmarks/README.md)."""
    patience: int = Field(3, ge=1)
    """Early stopping: epochs without improvement of `monitor`."""
    monitor: str | None = None
    """Validation metric for early stopping and the best epoch: val_loss, val_auc, val_accuracy, val_rmse, val_mae;
    null: val_auc (binary), val_accuracy (multiclass), val_rmse (regression)."""
    decision_threshold: float | Literal["max_f1"] = Field(0.5)
    """binary: probability from which `prediction` is 1; max_f1 picks the threshold with the best F1 on the
    validation split. Recorded in the registered model."""
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
    max_restarts: int | None = Field(None, ge=0)
    """Relaunches of all ranks from the last checkpoint, in the same MLflow run, after a rank or its executor dies or
    a collective fails; a rank's own Python error (bad data, a model that raises) is never retried. null: 3 on a
    cluster master (standalone, YARN, Kubernetes, local-cluster), 0 on local[N], where a dead rank is a bug to see."""
    restart_wait_s: float = Field(120.0, ge=0)
    """Before a relaunch, how long to wait for the cluster to give back train.num_proc task slots (a lost executor
    is replaced by the cluster manager); then the job fails, naming both numbers."""
    checkpoint_every_steps: int | None = Field(None, ge=1)
    """Also checkpoint inside an epoch every this many optimizer steps, so a relaunch continues at that step with
    the same data order (exact, like epoch resume); null: at epoch ends only. A multiple of
    backward_passes_per_step."""
    nics: list[str] | None = None
    """Network interfaces for worker traffic, e.g. [lo] on one machine, [eth0] on a cluster; null: auto."""
    horovod_cycle_time_ms: float | None = Field(None, gt=0)
    """Horovod's background cycle (HOROVOD_CYCLE_TIME); null: Horovod's default (1 ms). Longer cycles cost
    fewer wake-ups on CPU-only machines: conf/local.yaml sets 5."""
    model: ModelConfig = Field(default_factory=ModelConfig)
    """The network."""
    loss: str | None = None
    """"package.module:function" called as function(logits, target) -> scalar tensor for training; null: the
    task's loss (binary cross-entropy, cross-entropy, MSE). Validation metrics always use the task's loss."""

    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    """Image augmentation (features.images only)."""
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    """Forward-pass precision through torch.autocast on GPU ranks (fp16 adds a gradient scaler); weights stay fp32.
    CPU ranks train in fp32 whatever the setting (not measured to help there)."""
    device: Literal["auto", "cpu", "gpu"] = "auto"
    """Where ranks compute. auto: GPU when Spark assigns GPUs to tasks (spark.task.resource.gpu.amount > 0; on a
    local master spark.driver.resource.gpu.amount > 0), else CPU, whatever the driver itself sees; gpu: always
    (a rank without CUDA fails with the fix); cpu: never."""
    deterministic: bool = True
    """GPU ranks use deterministic kernels (cuDNN, cuBLAS workspace), so resume stays bit-exact as on CPU; false:
    the fastest kernels, and a resumed run may end with slightly different weights."""

    _reference = field_validator("loss")(check_reference)


class TrackingConfig(Frozen):
    uri: str | None = None
    """MLflow tracking URI: sqlite:///... (local masters only) or http(s)://server; null: sqlite:///<work_dir>/mlflow.db."""
    artifact_root: str | None = None
    """Artifact location of new experiments; mlflow-artifacts:/ proxies them through the server; null:
    <work_dir>/mlartifacts."""
    experiment: str = "sparktrain"
    """MLflow experiment name."""
    model_name: str = "sparktrain-model"
    """Registered model name."""
    promote_metric: str | None = None
    """Test metric that decides @champion; null: train.monitor on the test split."""
    outage_limit_s: float = Field(300.0, gt=0)
    """How long training keeps going while the tracking server is away: rank 0 buffers epoch metrics and retries
    with backoff, and the driver sends what is missing after training; past this, the job fails naming the URL
    (the checkpoints stay, so re-running resumes)."""


class ScoreConfig(Frozen):
    input_sources: dict[str, str] = Field(default_factory=dict)
    """Source name -> path of new data to score (default: the source's own path)."""
    output_dir: str | None = None
    """Predictions folder; null: predictions/ under work_dir."""
    quarantine_dir: str | None = None
    """Rows that fail cleaning at scoring; null: score_quarantine/ under work_dir."""


class PipelineConfig(Frozen):
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
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)
    """Drift of each score batch against the model's reference profile."""
    retrain: RetrainConfig = Field(default_factory=RetrainConfig)
    """Champion/challenger retraining on a rolling window (`python -m pipeline retrain`)."""
    tune: TuneConfig = Field(default_factory=TuneConfig)
    """Hyperparameter search (`python -m pipeline tune`)."""

    @model_validator(mode="before")
    @classmethod
    def _embedded_store_under_work_dir(cls, data: Any) -> Any:
        """An unset tracking.uri / artifact_root lives under work_dir, so moving work_dir moves the store too."""
        if not isinstance(data, dict):
            return data
        work_dir = str(data.get("work_dir") or cls.model_fields["work_dir"].default).rstrip("/")
        tracking = data.get("tracking")
        tracking = dict(tracking) if isinstance(tracking, dict) else {}
        if tracking.get("uri") is None:
            tracking["uri"] = f"sqlite:///{work_dir}/mlflow.db"
        if tracking.get("artifact_root") is None:
            tracking["artifact_root"] = f"{work_dir}/mlartifacts"
        return {**data, "tracking": tracking}

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)
