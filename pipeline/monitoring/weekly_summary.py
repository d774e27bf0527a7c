"""Drift and realised quality by week, from the two monitoring tables over a range of scheduled days, and its
chart. Driver side, pandas and matplotlib over a few rows per day (the tables' rows, never the scored rows).

A week is Monday to Sunday, named by its Monday. Per week: the scored days, the mean share of features at or
above monitor.warn_psi, the median of each day's largest feature PSI, the mean prediction PSI; and from the
evaluated days the realised and estimated metrics, weighted by the rows that found their outcome.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def by_week(drift: pd.DataFrame | None, outcomes: pd.DataFrame | None) -> pd.DataFrame:
    """One row per week present in either table, indexed by its Monday (ISO text)."""
    parts = []
    if drift is not None and not drift.empty:
        parts.append(_drift_by_week(drift))
    if outcomes is not None and not outcomes.empty:
        parts.append(_outcomes_by_week(outcomes))
    if not parts:
        return pd.DataFrame()
    return pd.concat(parts, axis=1).sort_index()


def _week(dates: pd.Series) -> pd.Series:
    day = pd.to_datetime(dates)
    return (day - pd.to_timedelta(day.dt.weekday, unit="D")).dt.strftime("%Y-%m-%d")


def _drift_by_week(drift: pd.DataFrame) -> pd.DataFrame:
    features = drift[drift["kind"] != "prediction"]
    daily = features.groupby("date").agg(drifted_share=("drifted", "mean"), max_psi=("psi", "max"))
    predictions = drift[drift["kind"] == "prediction"].set_index("date")["psi"].rename("prediction_psi")
    daily = daily.join(predictions, how="left")
    daily["week"] = _week(daily.index.to_series())
    return daily.groupby("week").agg(
        scored_days=("max_psi", "size"),
        drifted_share=("drifted_share", "mean"),
        median_max_psi=("max_psi", "median"),
        prediction_psi=("prediction_psi", "mean"),
    )


def _outcomes_by_week(outcomes: pd.DataFrame) -> pd.DataFrame:
    metrics = [c for c in outcomes.columns if c.startswith(("realised_", "estimated_"))]
    frame = outcomes.assign(week=_week(outcomes["date"]))
    weights = frame["labelled"].astype("float64")
    weighted = frame[metrics].mul(weights, axis=0).assign(labelled=weights, week=frame["week"])
    summed = weighted.groupby("week").sum(min_count=1)
    for metric in metrics:  # a metric missing on some days is averaged over the days that have it
        present = frame[metric].notna() * weights
        summed[metric] = summed[metric] / present.groupby(frame["week"]).sum().replace(0, np.nan)
    counts = frame.groupby("week").size().rename("evaluated_days")
    return summed.join(counts).astype({"labelled": "int64"})


def chart(weekly: pd.DataFrame, title: str, reference: dict[str, float]):
    """Two panels: the realised (and estimated) metric by week against the model's own test value; the drifted
    share and the prediction PSI by week. Returns a matplotlib Figure (no pyplot state)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(max(7.0, 0.45 * len(weekly) + 3), 6.5))
    quality, drift = figure.subplots(2, 1, sharex=True)
    weeks = list(weekly.index)
    for column, style in (("realised_auc", "-o"), ("estimated_auc", "--"), ("realised_rmse", "-o")):
        if column in weekly:
            quality.plot(weeks, weekly[column], style, label=column.replace("_", " "))
    for name, value in reference.items():
        quality.axhline(value, color="grey", linewidth=1, linestyle=":", label=name)
    quality.set_title(title)
    quality.legend(loc="best", fontsize="small")
    if "drifted_share" in weekly:
        drift.bar(weeks, weekly["drifted_share"], color="#e67e22", alpha=0.6, label="share of features drifted")
        drift.set_ylabel("share of features drifted")
        psi = drift.twinx()
        psi.plot(weeks, weekly["prediction_psi"], "-", color="#4c72b0", label="prediction PSI")
        psi.set_ylabel("prediction PSI")
    drift.tick_params(axis="x", labelrotation=45)
    drift.set_xlabel("week (Monday)")
    figure.tight_layout()
    return figure
