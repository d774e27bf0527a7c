"""Where a score batch's drift goes: rows of the monitoring table (one per feature, under the batch's partition,
swapped in like the predictions) and the score run's metrics and bar chart. Driver side."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict

from pipeline.layout import DatedOutput
from pipeline.monitoring.drift import DriftReport
from pipeline.monitoring.tables import replace_partition
from pipeline.storage.folders import Storage


def write_drift_rows(spark, storage: Storage, output: DatedOutput, partition: str, report: DriftReport, model) -> str:
    """Replace `partition` of the monitoring table with this report's rows; returns the partition's path."""
    import pandas as pd

    monitored_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    rows = [
        asdict(f)
        | {
            "rows": report.rows,
            "reference_rows": report.reference_rows,
            "drifted": f.psi >= report.warn_psi,
            "failed": report.fail_psi is not None and f.psi >= report.fail_psi,
            "new_columns": ",".join(report.new_columns),
            "missing_columns": ",".join(report.missing_columns),
            "model_name": model.name,
            "model_version": str(model.version),
            "monitored_at": monitored_at,
        }
        for f in report.features
    ]
    if report.prediction_psi is not None and rows:  # the predictions' own drift: a row of kind "prediction"
        shares = dict.fromkeys(("missing_share", "reference_missing_share", "unseen_share", "reference_unseen_share"))
        psi = report.prediction_psi
        prediction = {"feature": "prediction", "kind": "prediction", "psi": psi, "drifted": psi >= report.warn_psi}
        rows.append(rows[-1] | shares | prediction | {"failed": False})
    frame = pd.DataFrame(rows).astype({"unseen_share": "float64", "reference_unseen_share": "float64"})
    return replace_partition(spark, storage, output, partition, frame)


def log_drift_to_run(report: DriftReport) -> None:
    """Metrics and a horizontal bar chart of PSI per feature, with the two levels, in the active score run (a
    matplotlib Figure, no pyplot: no global backend to switch, as in pipeline/evaluation/plots.py)."""
    import mlflow
    from matplotlib.figure import Figure

    mlflow.log_metrics(report.metrics())
    ordered = sorted(report.features, key=lambda f: f.psi)
    figure = Figure(figsize=(7, 0.3 * len(ordered) + 1.5))
    axis = figure.subplots()
    colours = [_colour(f.psi, report) for f in ordered]
    axis.barh([f.feature for f in ordered], [f.psi for f in ordered], color=colours)
    for level, style in ((report.warn_psi, "--"), (report.fail_psi, "-")):
        if level is not None:
            axis.axvline(level, color="grey", linestyle=style, linewidth=1)
    axis.set_xlabel("PSI against the training reference")
    axis.set_title(f"input drift: {report.rows} rows scored")
    figure.tight_layout()
    mlflow.log_figure(figure, "monitoring/drift.png")


def log_by_date(points: list[tuple[str, float]], label: str, artifact: str, levels=(None, None)) -> None:
    """A line chart of one figure per date (a backfill's largest PSI, an evaluated range's realised metric) with up
    to two horizontal levels (dashed, solid), in the active run."""
    import mlflow
    from matplotlib.figure import Figure

    figure = Figure(figsize=(max(6.0, 0.12 * len(points) + 2), 3.5))
    axis = figure.subplots()
    axis.plot([d for d, _ in points], [p for _, p in points], marker=".", color="#4c72b0")
    for level, style in zip(levels, ("--", "-"), strict=True):
        if level is not None:
            axis.axhline(level, color="grey", linestyle=style, linewidth=1)
    axis.set_ylabel(label)
    axis.set_title(f"{label} by date: {points[0][0]} to {points[-1][0]}")
    axis.set_xticks(range(0, len(points), max(1, len(points) // 12)))
    axis.tick_params(axis="x", labelrotation=45)
    figure.tight_layout()
    mlflow.log_figure(figure, artifact)


def _colour(psi: float, report: DriftReport) -> str:
    """Red at the failure level, orange at the warning level, blue below."""
    if report.fail_psi is not None and psi >= report.fail_psi:
        return "#c0392b"
    return "#e67e22" if psi >= report.warn_psi else "#4c72b0"
