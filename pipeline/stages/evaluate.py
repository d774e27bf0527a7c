"""The evaluate stage on the driver: a scored partition's realised metrics once its outcomes have arrived
(pipeline/monitoring/outcomes.py), in the monitoring table and an MLflow run beside the model's test metrics."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pipeline.config.schema import PipelineConfig
from pipeline.data.range_scoring import date_partition, dates_between
from pipeline.data.score_selection import parse_date
from pipeline.errors import DataError, ScoringError
from pipeline.layout import Layout, partition_name
from pipeline.monitoring.drift_output import log_by_date
from pipeline.monitoring.outcomes import Outcome, measure_outcomes, stored_predictions, write_outcome
from pipeline.storage.folders import Storage
from pipeline.tracking import registry, runs
from pipeline.tracking.tracked import tracked_stage

log = logging.getLogger("pipeline")


def run(spark, config: PipelineConfig, layout: Layout, date: str | None, batch_id: str | None = None) -> Outcome:
    """Measure the predictions of `date` (or batch `batch_id`) against their outcomes, with the version that made
    them; rerun it as more outcomes arrive (the partition's row is replaced).

    Raises:
        ScoringError: no such scored partition, or neither --date nor --batch-id. ConfigError: no
        monitor.outcomes, or an outcomes table without the key or outcome columns.
    """
    if (date is None) == (batch_id is None):
        raise ScoringError("evaluate needs exactly one of --date YYYY-MM-DD or --batch-id ID (the scored partition)")
    partition = partition_name(parse_date(date).isoformat() if date else None, batch_id, "")
    runs.configure(config.tracking, config.spark.master)
    predictions = stored_predictions(spark, layout, partition)
    made_by = predictions.select("model_name", "model_version").first()
    model = registry.resolve(made_by["model_name"], made_by["model_version"])
    label = registry.load_spec(model.uri).label
    with tracked_stage(config, "evaluate"):
        runs.set_tags({"score.partition": partition, "registry.model": model.name, "registry.version": model.version})
        outcome = measure_outcomes(spark, config, label, predictions, partition)
        written = write_outcome(spark, Storage(), layout, outcome)
        runs.log_metrics(
            {"predictions": outcome.predictions, "labelled_rows": outcome.labelled, "label_coverage": outcome.coverage}
            | outcome.metrics
            | _model_test_metrics(model.run_id)
        )
    log.info("evaluate %s -> %s", outcome.summary(), written)
    return outcome


def _model_test_metrics(train_run_id: str) -> dict[str, float]:
    """The version's own test metrics (model_test_auc, ...), logged beside the realised ones for comparison."""
    from mlflow.tracking import MlflowClient

    metrics = MlflowClient().get_run(train_run_id).data.metrics
    return {f"model_{k}": v for k, v in metrics.items() if k.startswith("test_") and "_ci_" not in k}


@dataclass(frozen=True)
class EvaluatedDate:
    date: str
    outcome: Outcome | None  # None: the date failed (error says why)
    error: str = ""

    def line(self) -> str:
        return f"{self.date}  {self.outcome.summary() if self.outcome else 'failed: ' + self.error}"


def run_range(spark, config: PipelineConfig, layout: Layout, first: str, last: str) -> list[EvaluatedDate]:
    """`evaluate --from/--to`: every date's realised metrics in one session and one evaluate run (per-date metrics
    at step = days since `first`, and a chart of the realised metric by date). A date without predictions or
    outcomes fails alone; a setting that fails every date (no monitor.outcomes, keys missing) raises at once.
    """
    days = dates_between(first, last)
    runs.configure(config.tracking, config.spark.master)
    evaluated, labels, sources = [], {}, {}
    with tracked_stage(config, "evaluate"):
        runs.set_tags({"score.partition": f"date={first}..{last}"})
        for step, day in enumerate(days):
            try:
                outcome = _evaluate_date(spark, config, layout, date_partition(day), labels, sources)
            except (ScoringError, DataError) as exc:
                log.warning("evaluate %s failed: %s", day, exc)
                evaluated.append(EvaluatedDate(day.isoformat(), None, str(exc)))
                continue
            counts = {"predictions": outcome.predictions, "labelled_rows": outcome.labelled}
            runs.log_metrics(counts | {"label_coverage": outcome.coverage} | outcome.metrics, step=step)
            evaluated.append(EvaluatedDate(day.isoformat(), outcome))
        _chart(evaluated)
    for rows, _ in sources.values():
        rows.unpersist()
    return evaluated


def _evaluate_date(
    spark, config: PipelineConfig, layout: Layout, partition: str, labels: dict, sources: dict
) -> Outcome:
    """One date of a range: measured and written like a single evaluate run (the label spec loaded once per
    version, an outcomes table without {date} read once)."""
    predictions = stored_predictions(spark, layout, partition)
    made_by = predictions.select("model_name", "model_version").first()
    version = (made_by["model_name"], made_by["model_version"])
    if version not in labels:
        labels[version] = registry.load_spec(registry.resolve(*version).uri).label
    outcome = measure_outcomes(spark, config, labels[version], predictions, partition, sources)
    write_outcome(spark, Storage(), layout, outcome)
    log.info("evaluate %s", outcome.summary())
    return outcome


def _chart(evaluated: list[EvaluatedDate]) -> None:
    """The first realised metric (AUC, accuracy or RMSE) by date, where measured."""
    measured = [e for e in evaluated if e.outcome is not None and e.outcome.metrics]
    if measured:
        name = next(iter(measured[0].outcome.metrics))
        points = [(e.date, e.outcome.metrics[name]) for e in measured if name in e.outcome.metrics]
        log_by_date(points, name, f"monitoring/{name}_by_date.png")
