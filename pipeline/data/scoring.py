"""Scoring's Spark work: new raw data -> same sources/SQL/cleaning (no fitting) -> spark_udf -> one date partition.

Runs on the driver and the executors (the registered model runs inside spark_udf there); the tracked stage is
pipeline/stages/score.py. A run for a date writes to a hidden staging folder, then swaps it in as
predictions/date=YYYY-MM-DD, so a rerun replaces exactly that partition and readers never see duplicates or
half-written files.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipeline import faults
from pipeline.config.schema import PipelineConfig
from pipeline.data.cleaning import split_clean, tag_invalid
from pipeline.data.column_check import check_schema
from pipeline.data.quarantine_rate import check_quarantine_rate, unexpected_quarantine
from pipeline.data.score_selection import DATE_TOKEN, Selection, scoring_sources
from pipeline.data.sources import LoadedSource, load_sources, primary_source, raw_table
from pipeline.errors import ScoringError
from pipeline.layout import Layout
from pipeline.model.predictor import output_columns
from pipeline.model.spec import FeatureSpec
from pipeline.storage.folders import Storage

if TYPE_CHECKING:
    from pipeline.tracking.registry import RegisteredModel

log = logging.getLogger(__name__)
DAY = "_day"  # a range read's column holding each row's date (internal: a leading '_')


@dataclass(frozen=True)
class ScoreResult:
    output_path: str
    rows_scored: int
    rows_quarantined: int
    model: RegisteredModel
    drift_summary: str | None = None  # the monitoring step's one line (pipeline/monitoring/drift.py)


@contextlib.contextmanager
def _logger_level(name: str, level: int) -> Iterator[None]:
    """Raise one logger's threshold for the body only."""
    logger = logging.getLogger(name)
    before = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(before)


def read_batch(spark, config: PipelineConfig, layout: Layout, spec: FeatureSpec, selection: Selection) -> ScoringInput:
    """Read, check and clean the selected rows (cached); score_batch then predicts, publishes and releases them.

    Raises:
        ScoringError: schema drift. DataError: unreadable sources.
    """
    Storage().check_writable(layout.predictions.root, "score.output_dir")
    return _read_input(spark, config, spec, selection.day)


def score_batch(
    spark,
    config: PipelineConfig,
    layout: Layout,
    model: RegisteredModel,
    spec: FeatureSpec,
    selection: Selection,
    inputs: ScoringInput,
    hold_predictions: bool = False,
) -> ScoreResult:
    """Score `inputs` with `model` and atomically replace the selection's output partition (the quarantine's only,
    when `hold_predictions`: the monitoring step found the batch unfit to publish).

    Raises:
        ScoringError: no rows, or too many quarantined.
    """
    day = selection.day
    predictions = predict_rows(spark, config, model, spec, inputs.clean)
    rows, bad = _publish(spark, Storage(), config, layout, selection, predictions, inputs, hold_predictions)
    published = layout.predictions.partition(selection.partition)
    log.info(
        "scored %d rows (%s) with %s v%s (%d quarantined) -> %s%s",
        rows,
        f"date {day}" if day else "all input rows",
        model.name,
        model.version,
        bad,
        published,
        " (held back: not published)" if hold_predictions else "",
    )
    return ScoreResult(published, rows, bad, model)


@dataclass(frozen=True)
class ScoringInput:
    """The rows a score run reads, planned on the driver: what to predict, what to quarantine, what to release.
    score_batch releases them; a caller that stops before it calls unpersist."""

    loaded: list[LoadedSource]
    tagged: object  # pyspark DataFrame: the selected rows with _reason / _record, persisted
    clean: object  # pyspark DataFrame: rows the model scores
    rejected: object  # pyspark DataFrame: quarantined rows in the quarantine layout

    def unpersist(self) -> None:
        """Release the cached rows on the executors once both writes are done (or failed)."""
        self.tagged.unpersist()
        for item in self.loaded:
            item.tagged.unpersist()


def read_dates(spark, config: PipelineConfig, spec: FeatureSpec, days: list[dt.date]) -> ScoringInput:
    """The rows of `days` (by data.date_column) in one read, each row's date in the column DAY of the clean and
    the quarantined rows (pipeline/data/range_scoring.py writes one partition per date from them)."""
    return _read_input(spark, config, spec, days[0], days)


def _read_input(
    spark, config: PipelineConfig, spec: FeatureSpec, day: dt.date | None, days: list[dt.date] | None = None
) -> ScoringInput:
    """The same sources, SQL and cleaning as prepare (no fitting), narrowed to the selected date (or range).

    Planned on the driver, which also checks the input's schema against the model before any row is read.
    """
    from pyspark.sql import functions as F

    data = scoring_sources(config, day if days is None else None)
    loaded = load_sources(spark, data, config.cleaning.max_string_length)
    table = raw_table(spark, data, loaded)
    primary = primary_source(loaded)
    declared_path = next(s.path for s in config.data.sources if s.name == primary.name)
    date_partitioned = DATE_TOKEN in config.score.input_sources.get(primary.name, declared_path)
    if day is not None and not date_partitioned:
        if config.data.date_column not in table.columns:
            raise ScoringError(f"data.date_column={config.data.date_column!r} is not a column of the scoring data")
        date = F.to_date(F.col(config.data.date_column))
        table = table.where(date == F.lit(day) if days is None else date.isin([F.lit(d) for d in days]))
    check_schema(table, spec)  # drift is reported against the model before cleaning rules run
    # Cached: the predictions and the quarantine writes both read it (de-duplication shuffles once).
    arrays = {a.name: a.length for a in spec.arrays}
    tagged = tag_invalid(table, config.cleaning, None, with_label=False, array_lengths=arrays)
    keep = ()
    if days is not None:  # several dates: each row keeps its date for the per-date partitions
        tagged, keep = tagged.withColumn(DAY, F.to_date(F.col(config.data.date_column))), (DAY,)
    tagged = tagged.persist()
    clean, rejected = split_clean(tagged, stage="clean", source="table", keep=keep)
    if (date_partitioned or day is None) and days is None:
        rejected = rejected.unionByName(primary.bad)  # unreadable rows of the files this run reads in full
    return ScoringInput(loaded, tagged, clean, rejected)


def _model_outputs(model_uri: str, spec: FeatureSpec) -> list[tuple[str, str]]:
    """(name, type) of what this registered version returns, read from its own signature: a version registered by
    an earlier release ships its own model code and keeps its own columns. Falls back to the current layout."""
    import mlflow.models

    signature = mlflow.models.get_model_info(model_uri).signature
    if signature is None or signature.outputs is None:
        return output_columns(spec.label)
    return [(column.name, column.type.name) for column in signature.outputs.inputs]


def predict_rows(spark, config: PipelineConfig, model: RegisteredModel, spec: FeatureSpec, clean):
    """The predictions frame: keys, the model's outputs and where they came from.

    Built on the driver; the registered model runs inside spark_udf on the executors when it is written.
    """
    import mlflow.pyfunc
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    spark_types = {"double": T.DoubleType(), "long": T.LongType(), "string": T.StringType()}
    fields = [T.StructField(name, spark_types[kind]) for name, kind in _model_outputs(model.uri, spec)]
    # env_manager="local" on purpose (executors run the driver's environment); MLflow advises conda on every call.
    with _logger_level("mlflow.pyfunc", logging.ERROR):
        udf = mlflow.pyfunc.spark_udf(spark, model.uri, result_type=T.StructType(fields), env_manager="local")
    scored_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    keys = [c for c in [*config.data.key_columns, DAY] if c in clean.columns]  # DAY: a range read's dates
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
    if (marker := faults.score_kill_marker()) is not None:  # tests only: an executor lost in the middle of scoring
        predictions = predictions.mapInPandas(faults.pass_through_killing_executor(marker), predictions.schema)
    return predictions


def _publish(
    spark,
    storage: Storage,
    config: PipelineConfig,
    layout: Layout,
    selection: Selection,
    predictions,
    inputs: ScoringInput,
    hold_predictions: bool,
) -> tuple[int, int]:
    """Write predictions and quarantine to staging, then swap both partitions in; returns (rows, quarantined).

    Above data.max_quarantine_fraction only the quarantine partition is swapped in, and the run fails naming it;
    `hold_predictions` also keeps the predictions back (the monitoring step's decision, reported by its caller).

    The executors write; the driver counts, swaps and always clears staging and the cache, so a failed or killed
    run leaves the published partitions as they were.
    """
    day = selection.day
    outputs = (layout.predictions, layout.score_quarantine)
    for stale in [d for output in outputs for d in storage.glob_dirs(output.stale_staging_glob)]:
        storage.delete(stale)  # left by a killed run; never visible to readers (one scorer per output dir)
    token, partition = uuid.uuid4().hex[:8], selection.partition
    staged_out = layout.predictions.staged_partition(token, partition)
    staged_bad = layout.score_quarantine.staged_partition(token, partition)
    try:
        predictions.write.mode("overwrite").parquet(staged_out)
        inputs.rejected.write.mode("overwrite").parquet(staged_bad)
        rows = spark.read.parquet(staged_out).count()
        bad = spark.read.parquet(staged_bad).count()
        faults.exit_if_requested("score_before_swap", faults.SCORE_EXIT_CODE)
        if rows == 0 and bad == 0:
            selected = f"--date {day} (data.date_column={config.data.date_column})" if day else "the scoring input"
            raise ScoringError(
                f"no input rows for {selected}. Fix: check the date and the source paths; nothing was written"
            )
        rate = unexpected_quarantine(spark.read.parquet(staged_bad), rows + bad)
        limit = config.data.max_quarantine_fraction
        if rate.fraction <= limit and not hold_predictions:  # the quarantine is always published
            storage.replace_dir(staged_out, layout.predictions.partition(partition))
        storage.replace_dir(staged_bad, layout.score_quarantine.partition(partition))
        check_quarantine_rate(rate, limit, "score", layout.score_quarantine.partition(partition))
    finally:
        for output in outputs:
            storage.delete(output.staging(token))
        inputs.unpersist()
    return rows, bad
