"""The score stage on the driver: resolve the model, then score one date (pipeline/data/scoring.py) in a tracked run."""

from __future__ import annotations

from pipeline.config.schema import PipelineConfig
from pipeline.data.scoring import ScoreResult, parse_date, score_date
from pipeline.layout import Layout
from pipeline.stages import registry, tracking
from pipeline.stages.tracked import tracked_stage


def run(spark, config: PipelineConfig, layout: Layout, date: str, model_version: str | None = None) -> ScoreResult:
    """Score `date` with @champion (or `model_version`) inside an MLflow run linked to the training run.

    Raises:
        ScoringError: bad date, schema drift, no rows. TrackingError: model name/alias/version missing or
        tracking store unreachable (both before any run is started).
    """
    parse_date(date)
    tracking.configure(config.tracking, config.spark.master)
    model = registry.resolve(config.tracking.model_name, model_version)
    spec = registry.load_pyfunc(model.uri).unwrap_python_model().spec  # also proves the model loads
    with tracked_stage(config, "score"):
        tracking.set_tags(
            {
                "score.date": date,
                "registry.model": model.name,
                "registry.version": model.version,
                "pipeline.train_run_id": model.run_id,
            }
        )
        result = score_date(spark, config, layout, model, spec, date)
        tracking.log_metrics({"rows_scored": result.rows_scored, "rows_quarantined": result.rows_quarantined})
    return result
