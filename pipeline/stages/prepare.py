"""The prepare stage on the driver: the Spark work of pipeline/data/preparation.py inside a tracked MLflow run."""

from __future__ import annotations

from pipeline.config.schema import PipelineConfig
from pipeline.data.preparation import PrepareResult, prepare_data
from pipeline.layout import Layout
from pipeline.tracking import datasets, runs
from pipeline.tracking.tracked import tracked_stage


def run(spark, config: PipelineConfig, layout: Layout) -> PrepareResult:
    """Prepare inside an MLflow run: counts as metrics, quality report and feature spec as artifacts."""
    with tracked_stage(config, "prepare"):  # an unreachable tracking store fails before any work
        result = prepare_data(spark, config, layout)
        report = result.report
        runs.log_metrics(
            {
                "input_rows": report.counts.input_rows,
                "clean_rows": report.counts.clean_rows,
                "quarantined_rows": report.counts.quarantined_rows,
                **{f"split_rows_{k}": v for k, v in report.split_rows.items()},
                "prepare_seconds": report.seconds,
            }
        )
        for path in (layout.prepared.report_file, layout.prepared.spec_file):
            runs.log_file(path, "data")
        rows = {name: counts["read"] for name, counts in report.counts.sources.items()}
        datasets.log_inputs(datasets.raw_sources(spark, config, rows) + datasets.prepared(spark, layout))
    return result
