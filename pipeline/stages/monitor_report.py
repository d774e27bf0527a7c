"""`python -m pipeline report --from D1 --to D2`: what the scheduled jobs measured over a range, by week, on the
driver: the drift rows of the score runs and the realised metrics of the evaluate runs, as a table and a chart
under work_dir/monitoring/reports/ and in a `report` MLflow run (per-week metrics, the chart, the table)."""

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
from pipeline.monitoring.tables import read_dates
from pipeline.monitoring.weekly_summary import by_week, chart
from pipeline.storage import files
from pipeline.tracking import runs
from pipeline.tracking.tracked import tracked_stage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MonitorReport:
    weekly: pd.DataFrame
    table_file: str
    chart_file: str
    run_id: str

    def text(self) -> str:
        return self.weekly.to_string(float_format=lambda v: f"{v:.3f}")


def run(spark, config: PipelineConfig, layout: Layout, first: str, last: str) -> MonitorReport:
    """Read both monitoring tables over [first, last], summarise by week, write and log the table and chart."""
    days = dates_between(first, last)
    end = (days[-1] + dt.timedelta(days=1)).isoformat()
    drift = read_dates(spark, layout.monitoring_drift, first, end)
    outcomes = read_dates(spark, layout.monitoring_outcomes, first, end)
    if drift is None and outcomes is None:
        raise ScoringError(
            f"no monitoring rows from {first} to {last} under {layout.work_dir}/monitoring. "
            "Fix: score those dates first (python -m pipeline score --from D1 --to D2), then evaluate them"
        )
    weekly = by_week(drift, outcomes)
    reference = _model_test_metrics(drift if drift is not None else outcomes)
    figure = chart(weekly, f"{config.tracking.model_name}: {first} to {last}, by week", reference)
    stem = layout.monitoring_report(first, last)
    image = io.BytesIO()
    figure.savefig(image, format="png", dpi=110)
    files.write_bytes(f"{stem}.png", image.getvalue())
    files.write_bytes(f"{stem}.csv", weekly.to_csv(index_label="week").encode("utf-8"))
    with tracked_stage(config, "report") as stage:
        runs.log_params({"report.from": first, "report.to": last})
        for step, (_, row) in enumerate(weekly.iterrows()):
            runs.log_metrics({k: float(v) for k, v in row.items() if pd.notna(v)}, step=step)
        runs.log_figure(figure, "monitoring/weekly.png")
        runs.log_dict({"weeks": weekly.reset_index(names="week").to_dict(orient="records")}, "monitoring/weekly.json")
    log.info("weekly monitoring report -> %s.csv / .png", stem)
    return MonitorReport(weekly, f"{stem}.csv", f"{stem}.png", stage.run_id)


def _model_test_metrics(rows: pd.DataFrame) -> dict[str, float]:
    """The test AUC / RMSE each model version in the rows was registered with, as reference lines."""
    from mlflow.tracking import MlflowClient

    from pipeline.tracking.registry import resolve

    reference = {}
    for name, version in rows[["model_name", "model_version"]].drop_duplicates().itertuples(index=False):
        metrics = MlflowClient().get_run(resolve(name, str(version)).run_id).data.metrics
        for metric in ("test_auc", "test_rmse"):
            if metric in metrics:
                reference[f"v{version} {metric}"] = metrics[metric]
    return reference
