"""Whether `retrain` should train now (retrain.when), from what the scheduled jobs already wrote: the drift rows of
the compare window's score batches and the realised metrics of its evaluated dates. Driver side: a few small
partitions of the monitoring tables are read (Spark, so they may live on object storage); the decisions are pure
functions of pandas frames (unit-tested)."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.config.schema import PipelineConfig
from pipeline.data.rolling_window import RetrainWindow
from pipeline.layout import Layout
from pipeline.monitoring.tables import read_dates
from pipeline.worker.metrics import higher_is_better


@dataclass(frozen=True)
class TriggerCheck:
    trigger: str  # schedule | drift | metric_floor
    fired: bool
    reason: str


def check_policy(
    spark, config: PipelineConfig, layout: Layout, window: RetrainWindow, metric: str
) -> list[TriggerCheck]:
    """One check per trigger in retrain.when, over the compare window's dates."""
    checks = []
    for trigger in config.retrain.when:
        if trigger == "schedule":
            checks.append(TriggerCheck("schedule", True, "retrain.when has schedule: every run retrains"))
        elif trigger == "drift":
            rows = read_dates(spark, layout.monitoring_drift, *window.compare)
            checks.append(drift_check(rows, config.retrain.drift_share))
        else:
            rows = read_dates(spark, layout.monitoring_outcomes, *window.compare)
            checks.append(metric_floor_check(rows, metric, config.retrain.metric_floor))
    return checks


def drift_check(rows, share_limit: float) -> TriggerCheck:
    """Fires when any date failed at monitor.fail_psi, or when the share of drifted features (PSI at or above
    monitor.warn_psi), averaged over the scored dates, reaches `share_limit`."""
    if rows is None or rows.empty:
        return TriggerCheck("drift", False, "no drift rows in the compare window (were its dates scored?)")
    features = rows[rows["kind"] != "prediction"]
    failed = sorted(features.loc[features["failed"].astype(bool), "date"].astype(str).unique())
    share = features.groupby("date")["drifted"].mean().mean()
    dates = features["date"].nunique()
    if failed:
        return TriggerCheck("drift", True, f"drift past monitor.fail_psi on {len(failed)} dates ({failed[0]}, ...)")
    fired = share >= share_limit
    verb = "reaches" if fired else "is under"
    return TriggerCheck(
        "drift",
        fired,
        f"{share:.0%} of features drifted on average over {dates} dates: {verb} retrain.drift_share {share_limit:.0%}",
    )


def metric_floor_check(rows, metric: str, floor: float) -> TriggerCheck:
    """Fires when the realised metric of the window's evaluated dates, weighted by labelled rows, is worse than
    `floor`."""
    column = "realised_" + metric.removeprefix("test_")
    if rows is None or rows.empty or column not in rows.columns:
        return TriggerCheck("metric_floor", False, f"no {column} in the compare window (were its dates evaluated?)")
    measured = rows.dropna(subset=[column])
    weights = measured["labelled"].astype("float64")
    if measured.empty or weights.sum() == 0:
        return TriggerCheck("metric_floor", False, f"no labelled rows behind {column} in the compare window")
    value = float((measured[column] * weights).sum() / weights.sum())
    worse = value < floor if higher_is_better(metric) else value > floor
    verb = "worse than" if worse else "within"
    return TriggerCheck(
        "metric_floor", worse, f"{column} {value:.4f} over {len(measured)} dates: {verb} retrain.metric_floor {floor}"
    )
