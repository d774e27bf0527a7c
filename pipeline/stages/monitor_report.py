"""`python -m pipeline report --from D1 --to D2 [--by week|month]`: what the scheduled jobs measured over a range,
by period, on the driver: the drift rows of the score runs and the realised metrics of the evaluate runs, plus
the realised metrics pooled over each period's predictions (comparable with the model's test metric, which is
pooled over its test split too), as a table and a chart under work_dir/monitoring/reports/ and in a `report`
MLflow run (per-period metrics, the chart, the table)."""

from __future__ import annotations

import datetime as dt
import io
import logging
from dataclasses import dataclass

import pandas as pd

from pipeline.config.schema import PipelineConfig
from pipeline.data.range_scoring import dates_between
from pipeline.errors import ScoringError
from pipeline.layout import Layout
from pipeline.monitoring.outcomes import measure_outcomes
from pipeline.monitoring.period_summary import by_period, chart, period_start
from pipeline.monitoring.tables import read_dates
from pipeline.storage import files
from pipeline.storage.folders import Storage
from pipeline.tracking import registry, runs
from pipeline.tracking.tracked import tracked_stage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MonitorReport:
    summary: pd.DataFrame  # one row per period, indexed by its first day
    table_file: str
    chart_file: str
    run_id: str

    def text(self) -> str:
        return self.summary.to_string(float_format=lambda v: f"{v:.3f}")


def run(spark, config: PipelineConfig, layout: Layout, first: str, last: str, period: str = "week") -> MonitorReport:
    """Read both monitoring tables over [first, last], summarise by period, write and log the table and chart."""
    days = dates_between(first, last)
    end = (days[-1] + dt.timedelta(days=1)).isoformat()
    drift = read_dates(spark, layout.monitoring_drift, first, end)
    outcomes = read_dates(spark, layout.monitoring_outcomes, first, end)
    if drift is None and outcomes is None:
        raise ScoringError(
            f"no monitoring rows from {first} to {last} under {layout.work_dir}/monitoring. "
            "Fix: score those dates first (python -m pipeline score --from D1 --to D2), then evaluate them"
        )
    summary = by_period(drift, outcomes, period).join(_pooled(spark, config, layout, days, period), how="left")
    reference = _model_test_metrics(drift if drift is not None else outcomes)
    figure = chart(summary, f"{config.tracking.model_name}: {first} to {last}, by {period}", reference, period)
    stem = layout.monitoring_report(first, last) + f"_by_{period}"
    image = io.BytesIO()
    figure.savefig(image, format="png", dpi=110)
    files.write_bytes(f"{stem}.png", image.getvalue())
    files.write_bytes(f"{stem}.csv", summary.to_csv(index_label=period).encode("utf-8"))
    with tracked_stage(config, "report") as stage:
        runs.log_params({"report.from": first, "report.to": last, "report.by": period})
        for step, (_, row) in enumerate(summary.iterrows()):
            runs.log_metrics({k: float(v) for k, v in row.items() if pd.notna(v)}, step=step)
        runs.log_figure(figure, f"monitoring/by_{period}.png")
        records = summary.reset_index(names=period).to_dict(orient="records")
        runs.log_dict({"periods": records}, f"monitoring/by_{period}.json")
    log.info("monitoring report by %s -> %s.csv / .png", period, stem)
    return MonitorReport(summary, f"{stem}.csv", f"{stem}.png", stage.run_id)


def _pooled(spark, config: PipelineConfig, layout: Layout, days: list, period: str) -> pd.DataFrame:
    """Realised and estimated metrics over all of each period's predictions at once, as `pooled_*` columns (empty
    without monitor.outcomes, or when its path is per date: those are measured per day only)."""
    outcomes = config.monitor.outcomes
    if outcomes is None or "{date}" in outcomes.source.path:
        return pd.DataFrame()
    storage = Storage()
    scored = [d.isoformat() for d in days if storage.exists(layout.predictions.partition(f"date={d.isoformat()}"))]
    rows, labels, sources = {}, {}, {}
    for start, group in pd.Series(scored).groupby(period_start(pd.Series(scored), period).to_numpy()):
        predictions = spark.read.parquet(*[layout.predictions.partition(f"date={day}") for day in group])
        made_by = predictions.select("model_name", "model_version").first()
        version = (made_by["model_name"], made_by["model_version"])
        if version not in labels:
            labels[version] = registry.load_spec(registry.resolve(*version).uri).label
        measured = measure_outcomes(spark, config, labels[version], predictions, f"{period}={start}", sources)
        rows[start] = {f"pooled_{name}": value for name, value in measured.metrics.items()}
    for cached, _ in sources.values():
        cached.unpersist()
    return pd.DataFrame.from_dict(rows, orient="index")


def _model_test_metrics(rows: pd.DataFrame) -> dict[str, float]:
    """The test AUC / RMSE each model version in the rows was registered with, as reference lines."""
    from mlflow.tracking import MlflowClient

    reference = {}
    for name, version in rows[["model_name", "model_version"]].drop_duplicates().itertuples(index=False):
        metrics = MlflowClient().get_run(registry.resolve(name, str(version)).run_id).data.metrics
        for metric in ("test_auc", "test_rmse"):
            if metric in metrics:
                reference[f"v{version} {metric}"] = metrics[metric]
    return reference
