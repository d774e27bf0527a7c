"""The backfill stage on the driver (`score --from D1 --to D2`): many dates in one tracked score run, with one model
load and one pass over the input (pipeline/data/range_scoring.py), one predictions partition and one set of drift rows
per date, dates already published skipped unless forced, and a failing date isolated from the rest."""

from __future__ import annotations

import logging
import uuid
from dataclasses import asdict, dataclass

from pipeline import faults
from pipeline.config.schema import PipelineConfig
from pipeline.data import range_scoring
from pipeline.data.range_scoring import DateOutcome
from pipeline.data.scoring import DAY, predict_rows, read_dates
from pipeline.errors import DriftError, PipelineError
from pipeline.layout import Layout
from pipeline.monitoring.batch_drift import (
    carried_profile,
    drift_failure,
    measure_drift_by,
    with_prediction_drift_by,
)
from pipeline.monitoring.drift_output import log_by_date, write_drift_rows
from pipeline.storage.folders import Storage
from pipeline.tracking import registry, runs
from pipeline.tracking.tracked import tracked_stage

log = logging.getLogger("pipeline")


@dataclass(frozen=True)
class BackfillResult:
    dates: list[DateOutcome]

    @property
    def failed(self) -> list[DateOutcome]:
        return [d for d in self.dates if d.status == "failed"]

    def table(self) -> str:
        """The per-date table the CLI prints: date, status, rows, quarantined, note."""
        lines = [f"{'date':<10}  {'status':<9}  {'rows':>8}  {'quarantined':>11}  note"]
        lines += [f"{d.date:<10}  {d.status:<9}  {d.rows:>8}  {d.quarantined:>11}  {d.note}" for d in self.dates]
        return "\n".join(lines)


def run(
    spark,
    config: PipelineConfig,
    layout: Layout,
    first: str,
    last: str,
    model_version: str | None = None,
    force: bool = False,
) -> BackfillResult:
    """Score every date from `first` to `last` not yet published (all of them with `force`) with @champion (or
    `model_version`).

    Raises (before any work): ScoringError for a bad range or an input without dates; TrackingError for a
    missing model. A date that fails later is a "failed" line of the result, not an exception.
    """
    days = range_scoring.dates_between(first, last)
    range_scoring.check_dated_input(config)
    storage = Storage()
    done = [] if force else range_scoring.already_scored(storage, layout, days)
    skipped = {d: DateOutcome(d.isoformat(), "skipped", note="already scored (--force scores it again)") for d in done}
    todo = [d for d in days if d not in skipped]
    if not todo:
        log.info(
            "backfill %s..%s: every date is already scored; nothing to do (--force scores them again)", first, last
        )
        return BackfillResult([skipped[d] for d in days])
    runs.configure(config.tracking, config.spark.master)
    model = registry.resolve(config.tracking.model_name, model_version)
    python_model = registry.load_pyfunc(model.uri).unwrap_python_model()  # once, for every date
    with tracked_stage(config, "score"):
        runs.set_tags(
            {
                "score.from": first,
                "score.to": last,
                "score.partition": f"date={first}..{last}",
                "registry.model": model.name,
                "registry.version": model.version,
                "pipeline.train_run_id": model.run_id,
            }
        )
        storage.check_writable(layout.predictions.root, "score.output_dir")
        scored = _score_dates(spark, storage, config, layout, model, python_model, todo)
        outcomes = [skipped.get(d) or scored[d] for d in days]
        _log_backfill(outcomes, config)
    result = BackfillResult(outcomes)
    log.info("backfill %s..%s: %d dates scored, %d skipped, %d failed", first, last, *_counts(result))
    return result


def _score_dates(spark, storage, config, layout, model, python_model, todo) -> dict:
    """Read, score and stage every pending date at once, measure each date's drift in one pass, then publish the
    dates one by one; {date: DateOutcome}."""
    spec, reference = python_model.spec, carried_profile(python_model)
    inputs = read_dates(spark, config, spec, todo)
    token = uuid.uuid4().hex[:8]
    try:
        predictions = predict_rows(spark, config, model, spec, inputs.clean)
        counts = range_scoring.stage_outputs(spark, storage, layout, token, predictions, inputs.rejected)
        drifts = measure_drift_by(inputs.clean, DAY, spec, reference, config)
        if drifts:
            staged = spark.read.parquet(layout.predictions.staging(token))
            drifts = with_prediction_drift_by(staged, DAY, drifts, model)
        outcomes = {}
        for day in todo:
            outcomes[day] = _publish(spark, storage, config, layout, token, day, counts, drifts.get(day), model)
            faults.exit_after_published_dates(len(outcomes))  # tests only: a backfill killed between two dates
        return outcomes
    finally:
        inputs.unpersist()
        range_scoring.clear_staging(storage, layout, token)


def _publish(spark, storage, config, layout, token, day, counts, drift, model) -> DateOutcome:
    """One date: its partitions swapped in, its drift rows written; an error fails this date only."""
    rows, bad = counts[0].get(day, 0), counts[1].get(day, 0)
    hold = drift is not None and drift.failed and config.monitor.hold_predictions
    note, psi = (drift.summary(), drift.max_psi) if drift is not None else ("", None)
    try:
        range_scoring.publish_date(spark, storage, config, layout, token, day, counts, hold)
        if drift is not None:
            written = write_drift_rows(
                spark, storage, layout.monitoring_drift, range_scoring.date_partition(day), drift, model
            )
            if drift.failed:
                raise drift_failure(drift, written)
    except PipelineError as exc:
        kind = "drifted" if isinstance(exc, DriftError) else "failed"
        held = " (predictions held back: monitor.hold_predictions)" if hold else ""
        log.warning("backfill %s %s: %s%s", day, kind, exc, held)
        return DateOutcome(day.isoformat(), "failed", rows, bad, f"{kind}: {exc}{held}", psi)
    return DateOutcome(day.isoformat(), "scored", rows, bad, note, psi)


def _counts(result: BackfillResult) -> tuple[int, int, int]:
    statuses = [d.status for d in result.dates]
    return statuses.count("scored"), statuses.count("skipped"), len(result.failed)


def _log_backfill(outcomes: list[DateOutcome], config: PipelineConfig) -> None:
    """Per-date metrics (step = days since --from), the drift chart by date, and the table, in the score run."""
    for step, outcome in enumerate(outcomes):
        if outcome.status != "skipped":
            measured = {"rows_scored": outcome.rows, "rows_quarantined": outcome.quarantined}
            measured |= {"drift_max_psi": outcome.max_psi} if outcome.max_psi is not None else {}
            runs.log_metrics(measured, step=step)
    statuses = [o.status for o in outcomes]
    runs.log_metrics({"dates_scored": statuses.count("scored"), "dates_failed": statuses.count("failed")})
    runs.log_dict({"dates": [asdict(o) for o in outcomes]}, "backfill/dates.json")
    drifted = [(o.date, o.max_psi) for o in outcomes if o.max_psi is not None]
    if drifted:
        levels = (config.monitor.warn_psi, config.monitor.fail_psi)
        log_by_date(drifted, "largest feature PSI", "monitoring/drift_by_date.png", levels)
