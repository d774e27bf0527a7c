"""The datasets a run used, as MLflow run inputs (driver side): lineage in the UI's Datasets column.

Raw sources, the clean table and the feature splits are logged with `mlflow.log_input` as metadata-only
datasets: a name, the source path, the schema, the row count (from prepare's quality report) and a digest of
the files' paths, sizes and modification times. Nothing is read to compute it, and a changed input shows as a
new digest.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass

from pipeline.config.schema import PipelineConfig
from pipeline.layout import Layout
from pipeline.storage import files
from pipeline.storage.folders import Storage
from pipeline.tracking.signature import SPARK_TO_MLFLOW

log = logging.getLogger(__name__)
SPLIT_CONTEXTS = {"train": "training", "val": "validation", "test": "test"}


@dataclass(frozen=True)
class UsedDataset:
    name: str
    path: str
    context: str  # source | clean | training | validation | test
    schema: dict[str, str]  # column -> Spark SQL type
    rows: int | None
    digest: str


def digest_of(spark, path: str) -> str:
    """16 hex digits over the files' paths, sizes and modification times (no file is read)."""
    found = Storage().glob_files(path)
    payload = json.dumps([(f.path, f.size, f.modified_ms) for f in found]).encode()
    return hashlib.sha256(payload).hexdigest()[:16]


def raw_sources(spark, config: PipelineConfig, rows: dict[str, int] | None = None) -> list[UsedDataset]:
    """The configured sources (paths with a {date} placeholder are listed as their glob)."""
    rows = rows or {}
    out = []
    for source in config.data.sources:
        path = source.path.replace("{date}", "*")
        digest = digest_of(spark, path)
        out.append(
            UsedDataset(f"raw.{source.name}", path, "source", dict(source.schema_), rows.get(source.name), digest)
        )
    return out


def prepared(spark, layout: Layout) -> list[UsedDataset]:
    """The clean table and the three feature splits, with row counts from the quality report."""
    report = json.loads(files.read_bytes(layout.prepared.report_file))
    split_rows = report.get("split_rows", {})
    out = [_parquet(spark, "clean", layout.prepared.clean_dir, "clean", report["counts"]["clean_rows"])]
    for split, context in SPLIT_CONTEXTS.items():
        out.append(
            _parquet(spark, f"features.{split}", layout.prepared.features(split), context, split_rows.get(split))
        )
    return out


def source_rows(layout: Layout) -> dict[str, int]:
    report = json.loads(files.read_bytes(layout.prepared.report_file))
    return {name: counts["read"] for name, counts in report["counts"].get("sources", {}).items()}


def _parquet(spark, name: str, path: str, context: str, rows: int | None) -> UsedDataset:
    schema = {field.name: field.dataType.simpleString() for field in spark.read.parquet(path).schema.fields}
    return UsedDataset(name, path, context, schema, rows, digest_of(spark, path))


def log_inputs(datasets: list[UsedDataset]) -> None:
    """mlflow.log_input for each, in the active run."""
    import mlflow
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.data.spark_dataset_source import SparkDatasetSource
    from mlflow.types.schema import ColSpec, Schema

    for used in datasets:
        columns = [ColSpec(SPARK_TO_MLFLOW.get(kind, "string"), column) for column, kind in used.schema.items()]
        dataset = MetaDataset(
            source=SparkDatasetSource(path=used.path),
            name=used.name,
            digest=used.digest,
            schema=Schema(columns) if columns else None,
        )
        tags = {"rows": str(used.rows)} if used.rows is not None else {}
        mlflow.log_input(dataset, context=used.context, tags=tags)
    log.info("logged %d dataset inputs: %s", len(datasets), ", ".join(d.name for d in datasets))


def digests(datasets: list[UsedDataset]) -> dict[str, str]:
    return {used.name: used.digest for used in datasets}
