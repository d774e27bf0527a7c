"""Stages wrapped in MLflow runs, and the whole pipeline under one parent run so the UI groups them."""

from __future__ import annotations

import logging
from pathlib import Path

from pipeline import tracking
from pipeline.config_schema import PipelineConfig
from pipeline.prepare import PrepareResult, run_prepare
from pipeline.scoring import ScoreResult, run_score_job
from pipeline.train_stage import TrainResult, run_train

log = logging.getLogger(__name__)


def prepare_tracked(spark, config: PipelineConfig) -> PrepareResult:
    """Prepare inside an MLflow run: counts as metrics, quality report and feature spec as artifacts."""
    tracking.configure(config.tracking, config.spark.master)  # an unreachable server fails before any work
    experiment_id = tracking.ensure_experiment(config.tracking)
    tracking.start_run(experiment_id, "prepare", config)
    try:
        result = run_prepare(spark, config)
    except Exception:
        tracking.end_run("FAILED")
        raise
    counts = result.report["counts"]
    tracking.log_metrics(
        {
            "input_rows": counts["input_rows"],
            "clean_rows": counts["clean_rows"],
            "quarantined_rows": counts["quarantined_rows"],
            **{f"split_rows_{k}": v for k, v in result.report["split_rows"].items()},
            "prepare_seconds": result.report["seconds"],
        }
    )
    for name in ("quality_report.json", "feature_spec.json"):
        tracking.log_file(str(Path(result.output_dir) / name), "data")
    tracking.mark_finished(tracking.active_run_id())
    tracking.end_run()
    return result


def run_pipeline(
    spark, config: PipelineConfig, score_date: str, force_promote: bool = False
) -> tuple[PrepareResult, TrainResult, ScoreResult]:
    """prepare -> train (+ register/promote) -> score, as child runs of one 'pipeline' run."""
    tracking.configure(config.tracking, config.spark.master)
    experiment_id = tracking.ensure_experiment(config.tracking)
    tracking.start_run(experiment_id, "pipeline", config)
    try:
        prepared = prepare_tracked(spark, config)
        trained = run_train(spark, config, force_promote=force_promote)
        scored = run_score_job(spark, config, score_date)
    except Exception:
        tracking.end_run("FAILED")
        raise
    tracking.log_metrics({**trained.result["test_metrics"], "rows_scored": scored.rows_scored})
    tracking.set_tags({"registry.model": trained.model.name, "registry.version": trained.model.version})
    tracking.mark_finished(tracking.active_run_id())
    tracking.end_run()
    return prepared, trained, scored
