"""The evaluate stage on the driver: a scored partition's realised metrics once its outcomes have arrived
(pipeline/monitoring/outcomes.py), in the monitoring table and an MLflow run beside the model's test metrics."""

from __future__ import annotations

import logging

from pipeline.config.schema import PipelineConfig
from pipeline.data.score_selection import parse_date
from pipeline.errors import ScoringError
from pipeline.layout import Layout, partition_name
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
