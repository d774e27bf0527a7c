"""Prepare's Spark work: sources -> SQL -> clean/quarantine -> split -> fit spec on train -> features Parquet.

Runs on the driver and the executors; pipeline/stages/prepare.py wraps it in an MLflow run. Every source is read
once and persisted; all later steps read the cached rows. Outputs are written to a staging folder and swapped in
whole, so a rerun replaces them exactly and readers never see half a run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid
from dataclasses import asdict, dataclass

import numpy as np

from pipeline.config.schema import PipelineConfig
from pipeline.data.cleaning import split_clean, tag_invalid
from pipeline.data.features import fit_spec, transform
from pipeline.data.session import file_bytes_read
from pipeline.data.sources import REASON, load_sources, primary_source, raw_table
from pipeline.data.split import ROW_HASH, SPLIT, assign_split
from pipeline.data.storage import Storage
from pipeline.errors import ConfigError, DataError
from pipeline.layout import SPLITS, Layout, PreparedPaths
from pipeline.model.spec import FeatureSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RowCounts:
    """Every primary input row ends in clean/ or quarantine/ exactly once (`reconciled`)."""

    input_rows: int
    clean_rows: int
    quarantined_rows: int
    quarantined_at_read: int
    quarantined_at_clean: int
    sources: dict[str, dict[str, int]]  # per source: read, valid, quarantined
    uses_query: bool
    reconciled: bool


@dataclass(frozen=True)
class QualityReport:
    """Written as quality_report.json next to the features and logged with the prepare run."""

    counts: RowCounts
    split_rows: dict[str, int]
    quarantine_reasons: list[dict]
    null_rate: dict[str, float]
    train_label_mean: float | None
    feature_columns: dict[str, list[str]]
    raw_input_passes: float | None  # bytes read from files / raw input size (local masters only)
    phase_seconds: dict[str, float]
    seconds: float

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


@dataclass(frozen=True)
class PrepareResult:
    output_dir: str
    spec: FeatureSpec
    report: QualityReport


def prepare_data(spark, config: PipelineConfig, layout: Layout) -> PrepareResult:
    """Run the whole prepare stage and return where it wrote, the fitted spec and the quality report.

    Raises:
        DataError: unreadable/empty sources, bad SQL, counts that do not reconcile, empty train split.
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    if config.features.label is None:
        raise ConfigError(
            "features.label is not set, so there is nothing to train on. "
            "Fix: set features.label.column (and task) in your dataset config"
        )
    started = time.perf_counter()
    phases: dict[str, float] = {}
    storage = Storage(spark)
    final = layout.prepared
    storage.check_writable(layout.work_dir, "work_dir")
    for stale in storage.glob_dirs(layout.stale_prepared_glob):
        storage.delete(stale)  # left by a killed run; it was never visible as output
    staging = layout.prepared_staging(uuid.uuid4().hex[:8])
    bytes_before = file_bytes_read(spark)

    with _phase(phases, "read_and_clean"):
        loaded = load_sources(spark, config.data, config.cleaning.max_string_length)
        primary = primary_source(loaded)
        table = raw_table(spark, config.data, loaded)
        arrays = {a.name: a.length for a in config.features.arrays}
        tagged = tag_invalid(table, config.cleaning, config.features.label, with_label=True, array_lengths=arrays)
        tagged = tagged.persist(StorageLevel.MEMORY_AND_DISK)
        clean, rejected = split_clean(tagged, stage="clean", source="table")
        locations = ("path",) if any(s.format == "image" for s in config.data.sources) else ()
        clean = assign_split(clean, config.split, locations).persist(StorageLevel.MEMORY_AND_DISK)
        read_counts = _read_counts(loaded)
        table_counts = {
            ("clean" if r["ok"] else "quarantined"): r["count"]
            for r in tagged.groupBy(F.col(REASON).isNull().alias("ok")).count().collect()
        }
        counts = _reconcile(primary.name, read_counts, table_counts, config.data.query is not None)
    with _phase(phases, "fit"):
        spec, stats = fit_spec(clean, config.features, config.data.key_columns)
    log.info(
        "fitted feature spec: %d numeric, %d categorical columns, %d image(s), %d text(s)",
        len(spec.numeric_columns),
        len(spec.categorical),
        len(spec.images),
        len(spec.texts),
    )

    try:
        quarantine = rejected
        for item in loaded:
            quarantine = quarantine.unionByName(item.bad)
        with _phase(phases, "write"):
            _write_outputs(storage, config, staging, clean, quarantine, spec)
        with _phase(phases, "report"):
            reasons = _reason_counts(quarantine)
        input_bytes = sum(f.size for s in config.data.sources for f in storage.glob_files(s.path))
        report = QualityReport(
            counts=counts,
            split_rows=stats["split_rows"],
            quarantine_reasons=reasons,
            null_rate=stats["null_rate"],
            train_label_mean=stats["train_label_mean"],
            feature_columns={
                "numeric": spec.numeric_columns,
                "categorical": spec.categorical_columns,
                "images": [i.column for i in spec.images],
                "texts": [t.column for t in spec.texts],
                "arrays": [a.column for a in spec.arrays],
            },
            raw_input_passes=_passes(file_bytes_read(spark), bytes_before, input_bytes),
            phase_seconds={k: round(v, 2) for k, v in phases.items()},
            seconds=round(time.perf_counter() - started, 2),
        )
        storage.write_text(staging.spec_file, spec.to_json())
        storage.write_text(staging.report_file, report.to_json())
        storage.replace_dir(staging.root, final.root)
    finally:
        storage.delete(staging.root)
        for item in loaded:
            item.tagged.unpersist()
        tagged.unpersist()
        clean.unpersist()
    log.info(
        "prepare done in %.1fs: %d input rows -> %d clean + %d quarantined; written to %s",
        report.seconds,
        counts.input_rows,
        counts.clean_rows,
        counts.quarantined_rows,
        final.root,
    )
    return PrepareResult(final.root, spec, report)


def _passes(after: int | None, before: int | None, input_bytes: int) -> float | None:
    if after is None or before is None:
        return None  # executors in other JVMs: their file counters are not visible here
    return round((after - before) / max(input_bytes, 1), 2)


@contextlib.contextmanager
def _phase(phases: dict[str, float], name: str):
    started = time.perf_counter()
    yield
    phases[name] = time.perf_counter() - started


def _read_counts(loaded) -> dict[str, dict[str, int]]:
    from pyspark.sql import functions as F

    out = {}
    for item in loaded:
        rows = item.tagged.groupBy(F.col(REASON).isNull().alias("ok")).count().collect()
        by_status = {bool(r["ok"]): r["count"] for r in rows}
        out[item.name] = {
            "read": sum(by_status.values()),
            "valid": by_status.get(True, 0),
            "quarantined": by_status.get(False, 0),
        }
    return out


def _reconcile(primary: str, read_counts: dict, table_counts: dict, has_query: bool) -> RowCounts:
    """Every primary input row must end in clean/ or quarantine/ exactly once."""
    table_rows = table_counts.get("clean", 0) + table_counts.get("quarantined", 0)
    valid_primary = read_counts[primary]["valid"]
    if table_rows != valid_primary:
        raise DataError(
            f"data.query returned {table_rows} rows from {valid_primary} readable rows of primary source "
            f"{primary!r}: a join fanned out or a WHERE dropped rows, so rows could not be accounted for. "
            "Fix: join only tables that are unique on the join key (deduplicate them in a CTE) and move "
            "filters into cleaning.rules so dropped rows are quarantined with a reason"
        )
    if table_rows == 0:
        raise DataError(f"source {primary!r} has no readable rows. Fix: check the input files and schema")
    quarantined = read_counts[primary]["quarantined"] + table_counts.get("quarantined", 0)
    input_rows, clean_rows = read_counts[primary]["read"], table_counts.get("clean", 0)
    counts = RowCounts(
        input_rows=input_rows,
        clean_rows=clean_rows,
        quarantined_rows=quarantined,
        quarantined_at_read=read_counts[primary]["quarantined"],
        quarantined_at_clean=table_counts.get("quarantined", 0),
        sources=read_counts,
        uses_query=has_query,
        reconciled=input_rows == clean_rows + quarantined,
    )
    if not counts.reconciled:  # unreachable by construction; a guard against future edits
        raise DataError(f"row counts do not reconcile: {counts}")
    return counts


def _write_outputs(
    storage: Storage, config: PipelineConfig, staging: PreparedPaths, clean, quarantine, spec: FeatureSpec
) -> None:
    from pyspark.sql import functions as F

    clean.drop(ROW_HASH).write.mode("overwrite").parquet(staging.clean_dir)
    quarantine.write.mode("overwrite").parquet(staging.quarantine_dir)

    columns = spec.numeric_columns + spec.categorical_columns + [i.column for i in spec.images]
    columns += [t.column for t in spec.texts] + [a.column for a in spec.arrays] + (["label"] if spec.label else [])
    bytes_per_row = 4 * max(len(columns), 1) + sum(int(np.prod(i.shape)) for i in spec.images)
    bytes_per_row += sum(4 * t.max_len for t in spec.texts) + sum(4 * a.length for a in spec.arrays)
    out = transform(clean.where(F.col(SPLIT).isin(*SPLITS)), spec, keep=(SPLIT, ROW_HASH))
    (
        out.repartition(config.prepare.output_files, F.col(ROW_HASH))
        .sortWithinPartitions(ROW_HASH)
        .drop(ROW_HASH)
        .write.mode("overwrite")
        .option("parquet.block.size", str(config.prepare.row_group_rows * bytes_per_row))
        .partitionBy(SPLIT)
        .parquet(staging.features_by_split_dir)
    )
    storage.write_text(staging.features_columns_file, json.dumps({"columns": columns}))
    for name in SPLITS:
        source = staging.written_split(SPLIT, name)
        if not storage.exists(source):
            raise DataError(
                f"the {name} split has no rows. Fix: check split settings (split.{name} or fractions) against the data"
            )
        storage.rename(source, staging.features(name))
    storage.delete(staging.features_by_split_dir)


def _reason_counts(quarantine, limit: int = 50) -> list[dict]:
    """Most frequent quarantine reasons, from the cached rows (no re-read of written files)."""
    rows = (
        quarantine.groupBy("_source", "_stage", REASON).count().orderBy("count", ascending=False).limit(limit).collect()
    )
    return [{"source": r["_source"], "stage": r["_stage"], "reason": r[REASON], "rows": r["count"]} for r in rows]
