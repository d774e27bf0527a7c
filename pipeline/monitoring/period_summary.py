"""Drift and realised quality by week or month, from the two monitoring tables over a range of scheduled days,
and its chart. Driver side, pandas and matplotlib over a few rows per day (the tables' rows, never the scored
rows).

A week is Monday to Sunday, named by its Monday; a month by its first day. Per period: the scored days, the
mean share of features at or above monitor.warn_psi, the median of each day's largest feature PSI, the mean
prediction PSI; and from the evaluated days the daily realised and estimated metrics, averaged weighted by the
rows that found their outcome. (A day's AUC ranks flights within that day; pooled over a period, or over a test
split, the differences between days add to it: the caller measures pooled metrics separately.)
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def by_period(drift: pd.DataFrame | None, outcomes: pd.DataFrame | None, period: str = "week") -> pd.DataFrame:
    """One row per period present in either table, indexed by its first day (ISO text)."""
    parts = []
    if drift is not None and not drift.empty:
        parts.append(_drift_by_period(drift, period))
    if outcomes is not None and not outcomes.empty:
        parts.append(_outcomes_by_period(outcomes, period))
    if not parts:
        return pd.DataFrame()
    return pd.concat(parts, axis=1).sort_index()


def period_start(dates: pd.Series, period: str) -> pd.Series:
    """Each ISO date's period, as the ISO date of its first day (a week's Monday, a month's 1st)."""
    day = pd.to_datetime(pd.Series(dates))
    first = day - pd.to_timedelta(day.dt.weekday, unit="D") if period == "week" else day.dt.to_period("M").dt.start_time
    return first.dt.strftime("%Y-%m-%d")


def _drift_by_period(drift: pd.DataFrame, period: str) -> pd.DataFrame:
    features = drift[drift["kind"] != "prediction"]
    daily = features.groupby("date").agg(drifted_share=("drifted", "mean"), max_psi=("psi", "max"))
    predictions = drift[drift["kind"] == "prediction"].set_index("date")["psi"].rename("prediction_psi")
    daily = daily.join(predictions, how="left")
    daily["period"] = period_start(daily.index.to_series(), period).to_numpy()
    return daily.groupby("period").agg(
        scored_days=("max_psi", "size"),
        drifted_share=("drifted_share", "mean"),
        median_max_psi=("max_psi", "median"),
        prediction_psi=("prediction_psi", "mean"),
    )


def _outcomes_by_period(outcomes: pd.DataFrame, period: str) -> pd.DataFrame:
    metrics = [c for c in outcomes.columns if c.startswith(("realised_", "estimated_"))]
    frame = outcomes.assign(period=period_start(outcomes["date"], period).to_numpy())
    weights = frame["labelled"].astype("float64")
    weighted = frame[metrics].mul(weights, axis=0).assign(labelled=weights, period=frame["period"])
    summed = weighted.groupby("period").sum(min_count=1)
    for metric in metrics:  # a metric missing on some days is averaged over the days that have it
        present = frame[metric].notna() * weights
        summed[metric] = summed[metric] / present.groupby(frame["period"]).sum().replace(0, np.nan)
    counts = frame.groupby("period").size().rename("evaluated_days")
    return summed.join(counts).astype({"labelled": "int64"})


def chart(summary: pd.DataFrame, title: str, reference: dict[str, float], period: str = "week"):
    """Two panels: the realised (pooled and daily) and estimated metric by period against the model's own test
    value; the drifted share and the prediction PSI by period. Returns a matplotlib Figure (no pyplot state)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(max(7.0, 0.45 * len(summary) + 3), 6.5))
    quality, drift = figure.subplots(2, 1, sharex=True)
    periods = list(summary.index)
    lines = (
        ("pooled_realised_auc", "-o", "realised AUC (pooled)"),
        ("realised_auc", ":o", "realised AUC (mean of days)"),
        ("pooled_estimated_auc", "--", "estimated AUC (pooled)"),
        ("pooled_realised_rmse", "-o", "realised RMSE (pooled)"),
        ("realised_rmse", ":o", "realised RMSE (mean of days)"),
    )
    for column, style, label in lines:
        if column in summary:
            quality.plot(periods, summary[column], style, label=label)
    for name, value in reference.items():
        quality.axhline(value, color="grey", linewidth=1, linestyle=":", label=name)
    quality.set_title(title)
    quality.legend(loc="best", fontsize="small")
    if "drifted_share" in summary:
        drift.bar(periods, summary["drifted_share"], color="#e67e22", alpha=0.6, label="share of features drifted")
        drift.set_ylabel("share of features drifted")
        psi = drift.twinx()
        psi.plot(periods, summary["prediction_psi"], "-", color="#4c72b0", label="prediction PSI")
        psi.set_ylabel("prediction PSI")
    drift.tick_params(axis="x", labelrotation=45)
    drift.set_xlabel("week (Monday)" if period == "week" else "month")
    figure.tight_layout()
    return figure
