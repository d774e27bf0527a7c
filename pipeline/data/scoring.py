"""Scoring's Spark work: new raw data -> same sources/SQL/cleaning (no fitting) -> spark_udf -> one date partition.

Runs on the driver and the executors (the registered model runs inside spark_udf there); the tracked stage is
pipeline/stages/score.py. A run for a date writes to a hidden staging folder, then swaps it in as
predictions/date=YYYY-MM-DD, so a rerun replaces exactly that partition and readers never see duplicates or
half-written files.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipeline import faults
from pipeline.config.schema import DataConfig, PipelineConfig
from pipeline.data.cleaning import split_clean, tag_invalid
from pipeline.data.sources import load_sources, primary_source, raw_table
from pipeline.data.storage import Storage
from pipeline.errors import ScoringError
from pipeline.layout import Layout
from pipeline.model.pyfunc import output_columns
from pipeline.model.spec import FeatureSpec

if TYPE_CHECKING:
    from pipeline.stages.registry import RegisteredModel

log = logging.getLogger(__name__)
DATE_TOKEN = "{date}"


@dataclass(frozen=True)
class ScoreResult:
    output_path: str
    rows_scored: int
    rows_quarantined: int
    model: RegisteredModel


def parse_date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ScoringError(f"--date {value!r} is not a date. Fix: use YYYY-MM-DD, e.g. --date 2013-12-31") from None


def scoring_sources(config: PipelineConfig, day: dt.date) -> DataConfig:
    """Source paths for new data: score.input_sources overrides, with {date} filled in."""
    sources = []
    for source in config.data.sources:
        path = config.score.input_sources.get(source.name, source.path).replace(DATE_TOKEN, day.isoformat())
        sources.append(source.model_copy(update={"path": path}))
    unknown = set(config.score.input_sources) - {s.name for s in config.data.sources}
    if unknown:
        raise ScoringError(
            f"score.input_sources names unknown source(s) {sorted(unknown)}. Fix: use names from data.sources"
        )
    return config.data.model_copy(update={"sources": sources})


def check_schema(table, spec: FeatureSpec) -> None:
    """Stop before any write when an input column the model needs is missing or has another type."""
    found = dict(table.dtypes)
    for column, expected in spec.input_schema.items():
        if spec.label and column == spec.label.column:
            continue
        if column not in found:
            raise ScoringError(
                f"input column {column!r} required by the model is missing from the scoring data "
                f"(it has {sorted(found)}). Fix: restore it in the source / data.query, or retrain"
            )
        if found[column] != expected:
            raise ScoringError(
                f"input column {column!r} has type {found[column]} but the model was trained on {expected}. "
                f"Fix: cast it to {expected} in data.query or the source schema"
            )


def score_date(
    spark, config: PipelineConfig, layout: Layout, model: RegisteredModel, spec: FeatureSpec, date: str
) -> ScoreResult:
    """Score the rows of `date` with `model` and atomically replace that date's output partition.

    Raises:
        ScoringError: bad date, schema drift, or no rows. DataError: unreadable sources.
    """
    import mlflow.pyfunc
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    day = parse_date(date)
    storage = Storage(spark)
    storage.check_writable(layout.predictions.root, "score.output_dir")
    data = scoring_sources(config, day)
    loaded = load_sources(spark, data, config.cleaning.max_string_length)
    table = raw_table(spark, data, loaded)
    primary = primary_source(loaded)
    declared_path = next(s.path for s in config.data.sources if s.name == primary.name)
    date_partitioned = DATE_TOKEN in config.score.input_sources.get(primary.name, declared_path)
    if config.data.date_column:
        if config.data.date_column not in table.columns:
            raise ScoringError(f"data.date_column={config.data.date_column!r} is not a column of the scoring data")
        table = table.where(F.to_date(F.col(config.data.date_column)) == F.lit(day))
    elif not date_partitioned:
        raise ScoringError(
            "cannot select rows for --date: set data.date_column, or put {date} in the primary source path "
            "(or score.input_sources)"
        )
    check_schema(table, spec)  # drift is reported against the model before cleaning rules run
    # Cached: the predictions and the quarantine writes both read it (de-duplication shuffles once).
    tagged = tag_invalid(table, config.cleaning, None, with_label=False).persist()
    clean, rejected = split_clean(tagged, stage="clean", source="table")
    if date_partitioned:
        rejected = rejected.unionByName(primary.bad)  # unreadable rows of this date's files

    spark_types = {"double": T.DoubleType(), "long": T.LongType(), "string": T.StringType()}
    fields = [T.StructField(name, spark_types[kind]) for name, kind in output_columns(spec.label.task)]
    udf = mlflow.pyfunc.spark_udf(spark, model.uri, result_type=T.StructType(fields), env_manager="local")
    scored_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    keys = [c for c in config.data.key_columns if c in clean.columns]
    predictions = clean.select(
        *keys,
        udf(F.struct(*[F.col(c) for c in spec.input_columns])).alias("_p"),
    ).select(
        *keys,
        *[F.col(f"_p.{f.name}").alias(f.name) for f in fields],
        F.lit(model.name).alias("model_name"),
        F.lit(model.version).alias("model_version"),
        F.lit(model.run_id).alias("model_run_id"),
        F.lit(scored_at).cast("timestamp").alias("scored_at"),
    )
    outputs = (layout.predictions, layout.score_quarantine)
    for stale in [d for output in outputs for d in storage.glob_dirs(output.stale_staging_glob)]:
        storage.delete(stale)  # left by a killed run; never visible to readers (one scorer per output dir)
    token, day_text = uuid.uuid4().hex[:8], day.isoformat()
    staged_out = layout.predictions.staged_partition(token, day_text)
    staged_bad = layout.score_quarantine.staged_partition(token, day_text)
    try:
        predictions.write.mode("overwrite").parquet(staged_out)
        rejected.write.mode("overwrite").parquet(staged_bad)
        rows = spark.read.parquet(staged_out).count()
        bad = spark.read.parquet(staged_bad).count()
        faults.exit_if_requested("score_before_swap", faults.SCORE_EXIT_CODE)
        if rows == 0 and bad == 0:
            raise ScoringError(
                f"no input rows for --date {day} (data.date_column={config.data.date_column}). "
                "Fix: check the date and the source paths; nothing was written"
            )
        storage.replace_dir(staged_out, layout.predictions.partition(day_text))
        storage.replace_dir(staged_bad, layout.score_quarantine.partition(day_text))
    finally:
        for output in outputs:
            storage.delete(output.staging(token))
        tagged.unpersist()
        for item in loaded:
            item.tagged.unpersist()
    published = layout.predictions.partition(day_text)
    log.info(
        "scored %d rows for %s with %s v%s (%d quarantined) -> %s", rows, day, model.name, model.version, bad, published
    )
    return ScoreResult(published, rows, bad, model)
