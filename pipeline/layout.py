"""Every path the pipeline reads or writes, built once from the config; the only module that spells them.

Plain frozen values (no config objects), so the driver hands the layout to training ranks inside their plan.
Paths are absolute, so executors and ranks started elsewhere resolve them the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.storage.uri_fs import is_local

if TYPE_CHECKING:
    from pipeline.config.schema import PipelineConfig

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class PreparedPaths:
    """What prepare writes under one root: the final folder, or a staging folder swapped in at the end."""

    root: str

    @property
    def spec_file(self) -> str:
        return f"{self.root}/feature_spec.json"

    @property
    def report_file(self) -> str:
        return f"{self.root}/quality_report.json"

    @property
    def profile_file(self) -> str:
        """The train rows' reference profile (pipeline/monitoring/profile.py): the model carries it to scoring."""
        return f"{self.root}/reference_profile.json"

    @property
    def clean_dir(self) -> str:
        return f"{self.root}/clean"

    @property
    def quarantine_dir(self) -> str:
        return f"{self.root}/quarantine"

    @property
    def features_dir(self) -> str:
        return f"{self.root}/features"

    @property
    def features_columns_file(self) -> str:
        return f"{self.features_dir}/_layout.json"

    def features(self, split: str) -> str:
        """Feature Parquet of one split (train, val or test): what the training ranks read."""
        return f"{self.features_dir}/{split}"

    @property
    def features_by_split_dir(self) -> str:
        """Spark's partitioned write, renamed into features/<split> before the swap."""
        return f"{self.root}/features_by_split"

    def written_split(self, split_column: str, split: str) -> str:
        return f"{self.features_by_split_dir}/{split_column}={split}"


def partition_name(day: str | None, batch_id: str | None, today: str) -> str:
    """`date=<day>` for a dated run, `batch=<id>` for a named batch, else `date=<today>` (the run's date)."""
    if batch_id is not None:
        return f"batch={batch_id}"
    return f"date={day or today}"


@dataclass(frozen=True)
class DatedOutput:
    """A folder of partitions (`date=YYYY-MM-DD` or `batch=<id>`), each published by swapping in a staging folder."""

    root: str

    def partition(self, name: str) -> str:
        return f"{self.root}/{name}"

    def staging(self, token: str) -> str:
        return f"{self.root}/.staging-{token}"

    def staged_partition(self, token: str, name: str) -> str:
        return f"{self.staging(token)}/{name}"

    @property
    def stale_staging_glob(self) -> str:
        return f"{self.root}/.staging-*"


@dataclass(frozen=True)
class Layout:
    work_dir: str
    predictions: DatedOutput
    score_quarantine: DatedOutput

    @classmethod
    def from_config(cls, config: PipelineConfig) -> Layout:
        # A URI stays a URI (Path() would turn s3a://b/w into a local folder named "s3a:"); a path becomes absolute.
        work = str(Path(config.work_dir).absolute()) if is_local(config.work_dir) else config.work_dir.rstrip("/")
        predictions = config.score.output_dir or f"{work}/predictions"
        quarantine = config.score.quarantine_dir or f"{work}/score_quarantine"
        return cls(work, DatedOutput(predictions.rstrip("/")), DatedOutput(quarantine.rstrip("/")))

    @property
    def prepared(self) -> PreparedPaths:
        return PreparedPaths(f"{self.work_dir}/prepared")

    def prepared_staging(self, token: str) -> PreparedPaths:
        return PreparedPaths(f"{self.prepared.root}.staging-{token}")

    @property
    def stale_prepared_glob(self) -> str:
        return f"{self.prepared.root}.staging-*"

    @property
    def tune_dir(self) -> str:
        """The study's default Optuna storage and the best trial's settings as a YAML overlay."""
        return f"{self.work_dir}/tune"

    @property
    def tune_storage(self) -> str:
        return f"sqlite:///{self.tune_dir}/optuna.db"

    @property
    def tune_best_overlay(self) -> str:
        return f"{self.tune_dir}/best_params.yaml"

    @property
    def monitoring_drift(self) -> DatedOutput:
        """Drift rows of each score batch, partitioned like the predictions (pipeline/monitoring/drift_output.py)."""
        return DatedOutput(f"{self.work_dir}/monitoring/drift")

    @property
    def monitoring_outcomes(self) -> DatedOutput:
        """Realised metrics of each scored partition once its outcomes arrived (pipeline/monitoring/outcomes.py)."""
        return DatedOutput(f"{self.work_dir}/monitoring/outcomes")

    def monitoring_report(self, first: str, last: str) -> str:
        """`report --from/--to`'s tables and charts (pipeline/stages/monitor_report.py): this stem + _by_<period>."""
        return f"{self.work_dir}/monitoring/reports/{first}_{last}"

    def checkpoints(self, run_id: str) -> str:
        """One training run's checkpoints (rank 0 writes, every rank reads on resume)."""
        return f"{self.work_dir}/checkpoints/{run_id}"
