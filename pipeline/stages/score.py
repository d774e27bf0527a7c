"""The score stage on the driver: resolve the model, then score one date (pipeline/data/scoring.py) in a tracked run."""

from __future__ import annotations

from pipeline.config.schema import PipelineConfig
from pipeline.data.scoring import ScoreResult, score_rows, select_rows
from pipeline.layout import Layout
from pipeline.tracking import registry, runs
from pipeline.tracking.tracked import tracked_stage


def run(
    spark,
    config: PipelineConfig,
    layout: Layout,
    date: str | None = None,
    model_version: str | None = None,
    batch_id: str | None = None,
) -> ScoreResult:
    """Score `date`'s rows (or every input row) with @champion (or `model_version`) in an MLflow run.

    The run is linked to the training run of the model. See data/scoring.py select_rows for the partitions.

    Raises:
        ScoringError: bad date, schema drift, no rows. TrackingError: model name/alias/version missing or
        tracking store unreachable (both before any run is started).
    """
    selection = select_rows(config, date, batch_id)
    runs.configure(config.tracking, config.spark.master)
    model = registry.resolve(config.tracking.model_name, model_version)
    spec = registry.load_pyfunc(model.uri).unwrap_python_model().spec  # also proves the model loads
    with tracked_stage(config, "score"):
        runs.set_tags(
            {
                "score.date": date or "",
                "score.partition": selection.partition,
                "registry.model": model.name,
                "registry.version": model.version,
                "pipeline.train_run_id": model.run_id,
            }
        )
        result = score_rows(spark, config, layout, model, spec, selection)
        runs.log_metrics({"rows_scored": result.rows_scored, "rows_quarantined": result.rows_quarantined})
    return result
