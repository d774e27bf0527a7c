"""The score run's monitoring step on the driver: profile the batch (one Spark pass over the cached clean rows),
compare it with the reference profile the model carries, then publish the drift rows and metrics and fail the
run at the failure level, after the outputs are written."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from pipeline.config.schema import PipelineConfig
from pipeline.data.input_profile import Profile, profile_groups, profile_rows
from pipeline.errors import DriftError
from pipeline.layout import Layout
from pipeline.model.pyfunc import ARTIFACT_PROFILE
from pipeline.model.spec import FeatureSpec
from pipeline.monitoring import prediction_drift
from pipeline.monitoring.drift import DriftReport, compare, log_report
from pipeline.monitoring.drift_output import log_drift_to_run, write_drift_rows
from pipeline.storage.folders import Storage

log = logging.getLogger(__name__)


def carried_profile(python_model) -> Profile | None:
    """The reference profile a loaded registered model carries; None for a version registered without one."""
    path = getattr(python_model, "artifact_paths", {}).get(ARTIFACT_PROFILE)
    return Profile.from_json(Path(path).read_text(encoding="utf-8")) if path else None


def measure_drift(clean, spec: FeatureSpec, reference: Profile | None, config: PipelineConfig) -> DriftReport | None:
    """The batch's drift report, or None when monitoring is off or the model carries no reference."""
    if not config.monitor.enabled:
        return None
    if reference is None:
        log.info("this model version carries no reference profile (registered before monitoring): drift not measured")
        return None
    if not reference.features:
        log.info("the model has no numeric or categorical inputs, the only ones profiled yet: drift not measured")
        return None
    report = compare(reference, profile_rows(clean, spec, config.monitor.sample_rows), config.monitor)
    log_report(report)
    return report


def measure_drift_by(
    clean, by: str, spec: FeatureSpec, reference: Profile | None, config: PipelineConfig
) -> dict[object, DriftReport]:
    """measure_drift for each value of the column `by` (a backfill's dates), all profiled in one pass; {} when
    monitoring is off or the model carries no reference. Each date's line is logged as a single run logs it."""
    if not config.monitor.enabled or reference is None or not reference.features:
        return measure_drift(clean, spec, reference, config) or {}  # logs why not, as a single run does
    profiles = profile_groups(clean, spec, by, config.monitor.sample_rows)
    reports = {key: compare(reference, profile, config.monitor) for key, profile in sorted(profiles.items())}
    for key, report in reports.items():
        log.log(logging.WARNING if report.over(report.warn_psi) else logging.INFO, "%s: %s", key, report.summary())
    return reports


def with_prediction_drift(spark, report: DriftReport, model, predictions_path: str, held: bool) -> DriftReport:
    """The report with the published predictions' PSI against the version's test-split reference (unchanged when
    the predictions were held back or the version has no reference)."""
    reference = None if held else prediction_drift.load_reference(model.run_id)
    if reference is None:
        return report
    counts = prediction_drift.batch_counts(spark.read.parquet(predictions_path), reference).get(None, {})
    return _with_psi(report, reference, counts)


def with_prediction_drift_by(predictions, by: str, reports: dict, model) -> dict:
    """with_prediction_drift for each group of a backfill's staged predictions (one aggregation for all)."""
    reference = prediction_drift.load_reference(model.run_id) if reports else None
    if reference is None:
        return reports
    counts = prediction_drift.batch_counts(predictions, reference, by)
    return {key: _with_psi(report, reference, counts.get(key, {})) for key, report in reports.items()}


def _with_psi(report: DriftReport, reference: dict, counts: dict) -> DriftReport:
    psi = round(prediction_drift.prediction_psi(reference, counts), 6)
    if psi >= report.warn_psi:
        log.warning("the predictions drifted: PSI %.3f against the test split's (%s buckets)", psi, reference["kind"])
    return replace(report, prediction_psi=psi)


def drift_failure(report: DriftReport, written: str) -> DriftError:
    """The error of a batch past monitor.fail_psi, naming the worst features and where the drift rows are."""
    worst = ", ".join(f"{f.feature} PSI {f.psi:.3f}" for f in report.over(report.fail_psi)[:5])
    return DriftError(
        f"the inputs drifted past monitor.fail_psi={report.fail_psi:g}: {worst}. The drift rows are in {written}. "
        "Fix: check the upstream data; if the change is real, retrain on recent data (or raise monitor.fail_psi)"
    )


def publish_drift(spark, storage: Storage, layout: Layout, partition: str, report: DriftReport, model) -> None:
    """The monitoring table's partition and the score run's metrics and chart; then the failure, if any."""
    written = write_drift_rows(spark, storage, layout.monitoring_drift, partition, report, model)
    log_drift_to_run(report)
    if report.failed:
        raise drift_failure(report, written)
