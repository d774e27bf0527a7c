"""The score stage on the driver: resolve the model, then score one date (pipeline/data/scoring.py) in a tracked run."""

from __future__ import annotations

from dataclasses import replace

from pipeline.config.schema import PipelineConfig
from pipeline.data.score_selection import select_rows
from pipeline.data.scoring import ScoreResult, read_batch, score_batch
from pipeline.layout import Layout
from pipeline.monitoring import estimated_performance
from pipeline.monitoring.batch_drift import carried_profile, measure_drift, publish_drift, with_prediction_drift
from pipeline.storage.folders import Storage
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

    The batch's drift against the model's reference profile is measured before publishing and written after
    (pipeline/monitoring/); at monitor.fail_psi the run fails with DriftError once everything is written.

    Raises:
        ScoringError: bad date, schema drift, no rows. TrackingError: model name/alias/version missing or
        tracking store unreachable (both before any run is started). DriftError: the inputs drifted too far.
    """
    selection = select_rows(config, date, batch_id)
    runs.configure(config.tracking, config.spark.master)
    model = registry.resolve(config.tracking.model_name, model_version)
    python_model = registry.load_pyfunc(model.uri).unwrap_python_model()  # also proves the model loads
    spec, reference = python_model.spec, carried_profile(python_model)
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
        inputs = read_batch(spark, config, layout, spec, selection)
        try:
            drift = measure_drift(inputs.clean, spec, reference, config)
        except BaseException:
            inputs.unpersist()
            raise
        hold = drift is not None and drift.failed and config.monitor.hold_predictions
        result = score_batch(spark, config, layout, model, spec, selection, inputs, hold)
        runs.log_metrics({"rows_scored": result.rows_scored, "rows_quarantined": result.rows_quarantined})
        if spec.label.task == "binary" and not hold:  # before the outcomes: estimated from the probabilities
            runs.log_metrics(estimated_performance.estimate(spark.read.parquet(result.output_path)))
        if drift is not None:
            drift = with_prediction_drift(spark, drift, model, result.output_path, hold)
            publish_drift(spark, Storage(), layout, selection.partition, drift, model)
    return replace(result, drift_summary=drift.summary() if drift else None)
