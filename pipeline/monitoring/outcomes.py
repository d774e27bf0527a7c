"""Realised metrics of a scored partition once its outcomes arrive: the stored predictions joined with the
outcomes table by data.key_columns, measured in Spark (nothing collected but the metrics), written as one row of
the outcomes monitoring table. Runs on the driver; the join and the aggregations on the executors."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass

from pipeline.config.schema import PipelineConfig
from pipeline.data.features import label_value
from pipeline.data.sources import load_source
from pipeline.errors import ConfigError, ScoringError
from pipeline.layout import Layout
from pipeline.model.spec import LabelSpec
from pipeline.monitoring import estimated_performance
from pipeline.monitoring.tables import replace_partition
from pipeline.storage.folders import Storage

log = logging.getLogger(__name__)
OUTCOME = "_outcome"


@dataclass(frozen=True)
class Outcome:
    """One scored partition's realised quality: how many predictions found an outcome, and the metrics on those."""

    partition: str
    predictions: int
    labelled: int
    metrics: dict[str, float]  # realised_auc + realised_accuracy, realised_accuracy, or realised_rmse + realised_mae
    model_name: str
    model_version: str
    unreadable_outcomes: int = 0  # rows of the outcomes table that failed its schema (named in a WARNING)

    @property
    def coverage(self) -> float:
        return self.labelled / self.predictions if self.predictions else 0.0

    def summary(self) -> str:
        measured = " ".join(f"{k}={v:.4f}" for k, v in self.metrics.items()) or "no metric (no outcome matched)"
        return (
            f"{self.partition}: {self.labelled} of {self.predictions} predictions found their outcome "
            f"({self.coverage:.1%}); {measured} ({self.model_name} v{self.model_version})"
        )


def stored_predictions(spark, layout: Layout, partition: str):
    """The published predictions of one partition; a missing one is a clear error naming the folder."""
    path = layout.predictions.partition(partition)
    if not Storage().exists(path):
        raise ScoringError(f"no predictions in {path}. Fix: score that date first (python -m pipeline score --date)")
    return spark.read.parquet(path)


def measure_outcomes(
    spark, config: PipelineConfig, label: LabelSpec, predictions, partition: str, sources: dict | None = None
) -> Outcome:
    """Join the partition's predictions with the outcomes and measure them (one Spark job per metric group).

    `sources`: a range's cache of outcome tables by resolved path, so a table without {date} in its path is read
    (and its unreadable rows counted and reported) once for all dates, not once per date.
    """
    from pyspark.sql import functions as F

    outcomes, unreadable = _outcome_rows(spark, config, partition, label, sources)
    keys = list(config.data.key_columns)
    joined = predictions.join(outcomes, keys, "left")
    first = predictions.select("model_name", "model_version").first()
    counts = joined.agg(F.count(F.lit(1)).alias("n"), F.count(OUTCOME).alias("labelled")).first()
    labelled = joined.where(F.col(OUTCOME).isNotNull())
    metrics = _metrics(labelled, label) if counts["labelled"] else {}
    if label.task == "binary":  # the label-free estimate beside the realised numbers, to show how far to trust it
        metrics |= estimated_performance.estimate(predictions)
    name, version = first["model_name"], first["model_version"]
    return Outcome(partition, counts["n"], counts["labelled"], metrics, name, version, unreadable)


def _outcome_rows(spark, config: PipelineConfig, partition: str, label: LabelSpec, sources: dict | None = None):
    """The outcomes source's key columns and outcome, one row per key (a key given twice keeps one value), and
    how many of its rows could not be read with the declared schema (never silently left out: counted, logged)."""
    settings = config.monitor.outcomes
    if settings is None:
        raise ConfigError(
            "monitor.outcomes is not set, so there are no outcomes to evaluate against. Fix: set "
            "monitor.outcomes.source (the table the real outcomes arrive in) and, if it differs, monitor.outcomes.label"
        )
    source = settings.source
    if partition.startswith("date="):
        source = source.model_copy(update={"path": source.path.replace("{date}", partition.removeprefix("date="))})
    if sources is None:
        return _read_outcomes(spark, config, source, label)
    if source.path not in sources:
        rows, unreadable = _read_outcomes(spark, config, source, label)
        sources[source.path] = (rows.cache(), unreadable)
    return sources[source.path]


def _read_outcomes(spark, config: PipelineConfig, source, label: LabelSpec):
    from pyspark.sql import functions as F

    settings = config.monitor.outcomes
    loaded = load_source(spark, source, config.cleaning.max_string_length)
    rows, unreadable = loaded.valid, loaded.bad.count()
    if unreadable:
        reason = loaded.bad.select("_reason").first()[0]
        log.warning(
            "%d row(s) of the outcomes source %r could not be read (e.g. %s): they match no prediction. "
            "Fix: check monitor.outcomes.source.schema against the file",
            unreadable,
            source.name,
            reason,
        )
    column = settings.label or label.column
    keys = list(config.data.key_columns)
    missing = [c for c in [*keys, column] if c not in rows.columns]
    if not keys or missing:
        raise ConfigError(
            f"the outcomes source {source.name!r} lacks {missing or 'data.key_columns'} (it has {rows.columns}). "
            "Fix: declare data.key_columns and the outcome column in monitor.outcomes.source.schema "
            "(monitor.outcomes.label names the outcome column when it is not the label's)"
        )
    labelled = rows.where(F.col(column).isNotNull()).select(*keys, F.col(column).alias(OUTCOME))
    return labelled.dropDuplicates(keys), unreadable


def _metrics(labelled, label: LabelSpec) -> dict[str, float]:
    from pyspark.sql import functions as F

    if label.task == "regression":
        error = F.col("prediction") - F.col(OUTCOME).cast("double")
        row = labelled.agg(F.sqrt(F.avg(error * error)).alias("rmse"), F.avg(F.abs(error)).alias("mae")).first()
        return {"realised_rmse": row["rmse"], "realised_mae": row["mae"]}
    if label.task == "multiclass":
        hit = (F.col("prediction") == F.col(OUTCOME).cast("string")).cast("double")
        return {"realised_accuracy": labelled.agg(F.avg(hit)).first()[0]}
    truth = label_value(OUTCOME, label.positive)
    predicted = label_value("prediction", label.positive)
    scored = labelled.select(F.col("probability").alias("p"), truth.alias("y"), predicted.alias("yhat"))
    accuracy = scored.agg(F.avg((F.col("y") == F.col("yhat")).cast("double"))).first()[0]
    return {"realised_auc": _auc(scored), "realised_accuracy": accuracy}


def _auc(scored) -> float:
    """Area under the ROC curve by Spark ML's evaluator (NaN when the outcomes hold one class only)."""
    from pyspark.ml.evaluation import BinaryClassificationEvaluator

    if scored.select("y").distinct().count() < 2:
        return float("nan")
    evaluator = BinaryClassificationEvaluator(rawPredictionCol="p", labelCol="y", metricName="areaUnderROC")
    return float(evaluator.evaluate(scored))


def write_outcome(spark, storage: Storage, layout: Layout, outcome: Outcome) -> str:
    """Replace the partition's row of the outcomes table (a rerun after more outcomes arrived replaces it)."""
    import pandas as pd

    row = asdict(outcome) | {"coverage": outcome.coverage, "evaluated_at": dt.datetime.now(dt.timezone.utc)}
    row["evaluated_at"] = row["evaluated_at"].replace(tzinfo=None)
    metrics = row.pop("metrics")
    frame = pd.DataFrame([row | {name: float(value) for name, value in metrics.items()}])
    return replace_partition(spark, storage, layout.monitoring_outcomes, outcome.partition, frame)
