"""Prepare's Spark work: sources -> SQL -> clean/quarantine -> split -> fit spec on train -> features Parquet.

Runs on the driver and the executors; pipeline/stages/prepare.py wraps it in an MLflow run. Every source is read
once and persisted; all later steps read the cached rows. Outputs are written to a staging folder and swapped in
whole, so a rerun replaces them exactly and readers never see half a run. Row accounting and the quality report
are pipeline/data/quality.py.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid
from dataclasses import dataclass

import numpy as np

from pipeline.config.schema import PipelineConfig
from pipeline.data.cleaning import split_clean, tag_invalid
from pipeline.data.column_check import check_columns, table_columns
from pipeline.data.features import fit_spec, transform
from pipeline.data.input_profile import Profile, profile_rows
from pipeline.data.label_domain import resolve_label_domain
from pipeline.data.quality import (
    QualityReport,
    RowCounts,
    input_passes,
    quality_report,
    reason_counts,
    reconcile,
    source_counts,
    table_counts,
)
from pipeline.data.quarantine_rate import check_quarantine_rate, unexpected_quarantine
from pipeline.data.session import file_bytes_read
from pipeline.data.sources import LoadedSource, load_sources, primary_source, raw_table
from pipeline.data.split import ROW_HASH, SPLIT, assign_split
from pipeline.errors import ConfigError, DataError
from pipeline.layout import SPLITS, Layout, PreparedPaths
from pipeline.model.spec import FeatureSpec
from pipeline.storage.folders import Storage

log = logging.getLogger(__name__)


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
    _require_label(config)
    check_columns(table_columns(spark, config.data), config)  # analysis only: a typo fails before any job
    started = time.perf_counter()
    phases: dict[str, float] = {}
    storage = Storage()
    final = layout.prepared
    staging = _fresh_staging(storage, layout)
    bytes_before = file_bytes_read(spark)

    with _phase(phases, "read_and_clean"):
        read = _read_and_clean(spark, config)
    with _phase(phases, "fit"):
        spec, stats = fit_spec(read.clean, config.features, config.data.key_columns, read.label_classes)
    log.info(
        "fitted feature spec: %d numeric, %d categorical columns, %d image(s), %d text(s)",
        len(spec.numeric_columns),
        len(spec.categorical),
        len(spec.images),
        len(spec.texts),
    )

    keep_staging = False  # a failed quarantine check keeps the rows it names; the next prepare clears them
    try:
        quarantine = read.quarantine()
        with _phase(phases, "write"):
            _write_outputs(storage, config, staging, read.clean, quarantine, spec)
        with _phase(phases, "report"):
            reasons = reason_counts(quarantine)
            rate = unexpected_quarantine(quarantine, read.counts.input_rows)
        keep_staging = rate.fraction > config.data.max_quarantine_fraction
        check_quarantine_rate(rate, config.data.max_quarantine_fraction, "prepare", staging.quarantine_dir)
        input_bytes = sum(f.size for s in config.data.sources for f in storage.glob_files(s.path))
        passes = input_passes(file_bytes_read(spark), bytes_before, input_bytes)
        report = quality_report(read.counts, spec, stats, reasons, passes, phases, started)
        storage.write_text(staging.spec_file, spec.to_json())
        profile = reference_profile(read.clean, spec, config.monitor.sample_rows, phases)
        storage.write_text(staging.profile_file, profile.to_json())
        storage.write_text(staging.report_file, report.to_json())
        storage.replace_dir(staging.root, final.root)
    finally:
        if not keep_staging:
            storage.delete(staging.root)
        read.unpersist()
    log.info(
        "prepare done in %.1fs: %d input rows -> %d clean + %d quarantined; written to %s",
        report.seconds,
        read.counts.input_rows,
        read.counts.clean_rows,
        read.counts.quarantined_rows,
        final.root,
    )
    return PrepareResult(final.root, spec, report)


def reference_profile(clean, spec: FeatureSpec, sample_rows: int, phases: dict[str, float]) -> Profile:
    """The train rows' bucket counts, the reference each score batch's drift is measured against."""
    from pyspark.sql import functions as F

    with _phase(phases, "profile"):
        return profile_rows(clean.where(F.col(SPLIT) == "train"), spec, sample_rows)


def _require_label(config: PipelineConfig) -> None:
    """Driver, before any Spark work: preparing without a label would fit a spec nothing can train on."""
    if config.features.label is None:
        raise ConfigError(
            "features.label is not set, so there is nothing to train on. "
            "Fix: set features.label.column (and task) in your dataset config"
        )


def _fresh_staging(storage: Storage, layout: Layout) -> PreparedPaths:
    """Driver: check work_dir is writable, clear staging folders of killed runs, and name this run's staging folder."""
    storage.check_writable(layout.work_dir, "work_dir")
    for stale in storage.glob_dirs(layout.stale_prepared_glob):
        storage.delete(stale)  # left by a killed run; it was never visible as output
    return layout.prepared_staging(uuid.uuid4().hex[:8])


@dataclass(frozen=True)
class _ReadAndCleaned:
    """What the read_and_clean phase hands to fit and write: persisted frames (driver-side handles) and counts."""

    loaded: list[LoadedSource]
    tagged: object  # pyspark DataFrame: the raw table with _reason / _record, persisted
    clean: object  # pyspark DataFrame: clean rows with their split, persisted
    rejected: object  # pyspark DataFrame: rows cleaning quarantined, in the quarantine layout
    counts: RowCounts
    label_classes: tuple[str, ...]  # resolved before cleaning (pipeline/data/label_domain.py); () for regression

    def quarantine(self):
        """Every quarantined row as one frame (cleaning's, then each source's unreadable rows): written and counted."""
        quarantine = self.rejected
        for item in self.loaded:
            quarantine = quarantine.unionByName(item.bad)
        return quarantine

    def unpersist(self) -> None:
        """Release the cached rows on the executors once the outputs are written (or the run failed)."""
        for item in self.loaded:
            item.tagged.unpersist()
        self.tagged.unpersist()
        self.clean.unpersist()


def _read_and_clean(spark, config: PipelineConfig) -> _ReadAndCleaned:
    """The read_and_clean phase: read each source once, run the SQL step, tag, split and count rows.

    Planned on the driver; the executors read and cache the rows (the counts here are the first jobs).
    """
    from pyspark import StorageLevel

    loaded = load_sources(spark, config.data, config.cleaning.max_string_length)
    primary = primary_source(loaded)
    table = raw_table(spark, config.data, loaded)
    arrays = {a.name: a.length for a in config.features.arrays}
    domain = resolve_label_domain(table, config.features.label)
    tagged = tag_invalid(table, config.cleaning, config.features.label, True, arrays, label_domain=domain)
    tagged = tagged.persist(StorageLevel.MEMORY_AND_DISK)
    clean, rejected = split_clean(tagged, stage="clean", source="table")
    locations = ("path",) if any(s.format == "image" for s in config.data.sources) else ()
    clean = assign_split(clean, config.split, locations).persist(StorageLevel.MEMORY_AND_DISK)
    counts = reconcile(primary.name, source_counts(loaded), table_counts(tagged), config.data.query is not None)
    return _ReadAndCleaned(loaded, tagged, clean, rejected, counts, domain.classes if domain else ())


@contextlib.contextmanager
def _phase(phases: dict[str, float], name: str):
    started = time.perf_counter()
    yield
    phases[name] = time.perf_counter() - started


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
