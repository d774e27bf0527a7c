"""The monitoring summary by week or month from the two monitoring tables' rows (pandas only)."""

from __future__ import annotations

import pandas as pd
import pytest

from pipeline.monitoring.period_summary import by_period, chart


def _drift(day: str, psis: list[float], prediction_psi: float, warn: float = 0.1) -> list[dict]:
    rows = [{"date": day, "kind": "numeric", "psi": p, "drifted": p >= warn} for p in psis]
    return rows + [{"date": day, "kind": "prediction", "psi": prediction_psi, "drifted": prediction_psi >= warn}]


def test_weeks_start_on_monday_and_metrics_are_weighted_by_labelled_rows():
    drift = pd.DataFrame(
        _drift("2013-12-29", [0.05, 0.2], 0.02)  # a Sunday: the week of Monday 12-23
        + _drift("2013-12-30", [0.05, 0.05], 0.04)  # Monday
        + _drift("2013-12-31", [0.3, 0.4], 0.08)
    )
    outcomes = pd.DataFrame(
        {
            "date": ["2013-12-29", "2013-12-30", "2013-12-31"],
            "labelled": [100, 300, 100],
            "realised_auc": [0.70, 0.60, 0.80],
            "estimated_auc": [0.72, None, 0.74],  # a day without an estimate counts for none
        }
    )
    weekly = by_period(drift, outcomes)
    assert list(weekly.index) == ["2013-12-23", "2013-12-30"]
    assert weekly["scored_days"].tolist() == [1, 2] and weekly["evaluated_days"].tolist() == [1, 2]
    assert weekly.loc["2013-12-30", "drifted_share"] == pytest.approx(0.5)  # 0 of 2, then 2 of 2
    assert weekly.loc["2013-12-30", "median_max_psi"] == pytest.approx((0.05 + 0.4) / 2)
    assert weekly.loc["2013-12-30", "prediction_psi"] == pytest.approx(0.06)
    assert weekly.loc["2013-12-30", "realised_auc"] == pytest.approx((0.6 * 300 + 0.8 * 100) / 400)
    assert weekly.loc["2013-12-30", "estimated_auc"] == pytest.approx(0.74)
    assert weekly["labelled"].tolist() == [100, 400]
    figure = chart(weekly, "flights", {"v1 test_auc": 0.72})
    assert len(figure.axes) == 3  # quality, drift share and its PSI twin

    monthly = by_period(drift, outcomes, "month")
    assert list(monthly.index) == ["2013-12-01"] and monthly["scored_days"].tolist() == [3]
    assert monthly.loc["2013-12-01", "realised_auc"] == pytest.approx((0.7 * 100 + 0.6 * 300 + 0.8 * 100) / 500)


def test_one_table_alone_still_summarises():
    only_drift = by_period(pd.DataFrame(_drift("2013-12-30", [0.3], 0.0)), None)
    assert only_drift.columns.tolist() == ["scored_days", "drifted_share", "median_max_psi", "prediction_psi"]
    assert by_period(None, None).empty
