"""`retrain`'s rules without Spark or MLflow: the window dates, the challenger's config, the overlap refusal, the
policy's triggers and the champion/challenger verdict."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipeline.config.load import load_config
from pipeline.data.rolling_window import challenger_config, overlap_with_champion, window_ending
from pipeline.errors import ConfigError
from pipeline.model.spec import LabelSpec
from pipeline.monitoring.retrain_policy import drift_check, metric_floor_check
from pipeline.tracking.challenger import _verdict, window_metric
from tests.helpers import ROOT


def _flights(*overrides: str):
    return load_config([ROOT / "conf/flights.yaml", ROOT / "conf/local.yaml"], ["work_dir=/data/work", *overrides])


def test_the_windows_end_at_the_last_labelled_date_and_follow_each_other():
    config = _flights("retrain.window_days=273", "retrain.val_days=30", "retrain.compare_days=31")
    window = window_ending("2013-12-31", config)
    assert window.compare == ("2013-12-01", "2014-01-01") and window.last_date == "2013-12-31"
    assert window.val == ("2013-11-01", "2013-12-01")
    assert window.train == ("2013-02-01", "2013-11-01")
    with pytest.raises(ConfigError, match="retrain --date '2013-12-32' is not a date"):
        window_ending("2013-12-32", config)


def test_the_challenger_config_is_the_users_with_a_time_split_on_the_window_and_its_own_work_dir():
    config = _flights("split.method=hash", "split.key=flight_id", "split.column=null")
    challenger = challenger_config(config, window_ending("2013-12-31", config))
    assert challenger.split.method == "time" and challenger.split.column == "flight_date"  # data.date_column
    assert challenger.split.test == ("2013-12-18", "2014-01-01")
    assert challenger.work_dir == "/data/work/retrain/2013-12-31"
    assert challenger.tracking == config.tracking and challenger.features == config.features  # same store, model
    no_date = config.model_copy(update={"data": config.data.model_copy(update={"date_column": None})})
    with pytest.raises(ConfigError, match="Fix: set data.date_column"):
        challenger_config(no_date, window_ending("2013-12-31", config))


def test_a_champion_that_trained_or_validated_on_the_compare_window_is_refused():
    window = window_ending("2013-12-31", _flights())  # compare 2013-12-18 .. 2014-01-01
    own_split = {"split.method": "time", "split.train": json.dumps(["2013-01-01", "2013-10-01"])}
    assert overlap_with_champion(own_split | {"split.val": json.dumps(["2013-10-01", "2013-12-01"])}, window) is None
    why = overlap_with_champion(own_split | {"split.val": json.dumps(["2013-10-01", "2013-12-20"])}, window)
    assert "val split [2013-10-01, 2013-12-20) overlaps the compare window [2013-12-18, 2014-01-01)" in why
    assert overlap_with_champion({"split.method": "hash"}, window) is None  # cannot be told by date


def test_metric_floor_in_when_needs_a_floor():
    with pytest.raises(ConfigError, match="Fix: set retrain.metric_floor"):
        _flights("retrain.when=[metric_floor]")


def _drift_rows(dates: list[str], drifted_per_date: list[int], failed_on: str | None = None) -> pd.DataFrame:
    rows = []
    for day, drifted in zip(dates, drifted_per_date, strict=True):
        for i in range(4):
            rows.append({"date": day, "kind": "numeric", "drifted": i < drifted, "failed": day == failed_on and i == 0})
        rows.append({"date": day, "kind": "prediction", "drifted": True, "failed": False})  # not a feature
    return pd.DataFrame(rows)


def test_the_drift_trigger_averages_the_drifted_share_over_dates_and_fires_on_any_failed_date():
    dates = ["2013-12-30", "2013-12-31"]
    assert not drift_check(_drift_rows(dates, [0, 2]), 0.3).fired  # 25% on average
    fired = drift_check(_drift_rows(dates, [1, 2]), 0.3)  # 37.5%
    assert fired.fired and "38% of features drifted on average over 2 dates" in fired.reason
    failed = drift_check(_drift_rows(dates, [0, 0], failed_on="2013-12-31"), 0.9)
    assert failed.fired and "fail_psi on 1 dates (2013-12-31" in failed.reason
    assert not drift_check(None, 0.3).fired and "were its dates scored" in drift_check(None, 0.3).reason


def test_the_metric_floor_weights_dates_by_their_labelled_rows_and_knows_errors_go_the_other_way():
    rows = pd.DataFrame({"labelled": [900, 100], "realised_auc": [0.72, 0.52], "realised_rmse": [10.0, 30.0]})
    assert not metric_floor_check(rows, "test_auc", 0.70).fired  # 0.70 weighted: not below
    assert metric_floor_check(rows, "test_auc", 0.71).fired
    assert metric_floor_check(rows, "test_rmse", 11.0).fired  # rmse 12.0 is above the ceiling
    missing = metric_floor_check(rows, "test_accuracy", 0.9)
    assert not missing.fired and "no realised_accuracy" in missing.reason


def test_the_verdict_needs_the_margin_and_the_baseline():
    champion = type("Version", (), {"version": "4"})()
    assert _verdict("test_auc", 0.80, champion, 0.78, 0.5, 0.01)[0]
    kept, why, _ = _verdict("test_auc", 0.785, champion, 0.78, 0.5, 0.01)
    assert not kept and "does not beat it by more than the margin 0.01 (by +0.00500)" in why
    assert _verdict("test_rmse", 9.0, champion, 10.0, 20.0, 0.5)[0]  # lower is better
    assert not _verdict("test_rmse", 21.0, None, None, 20.0, 0.0)[0]  # worse than the constant: never
    assert _verdict("test_auc", 0.6, None, None, 0.5, 0.0)[:2] == (True, "no champion yet")
    assert not _verdict("test_auc", float("nan"), champion, 0.7, 0.5, 0.0)[0]


def test_the_window_metric_reads_each_models_own_predictions_in_the_labels_terms():
    label = LabelSpec(column="late", task="binary", positive="yes")
    rows = pd.DataFrame({"late": ["yes", "no", "yes", "no", None]})
    predictions = pd.DataFrame(
        {"probability": [0.9, 0.2, 0.4, 0.6, 0.5], "prediction": ["yes", "no", "no", "yes", "no"]}
    )
    assert window_metric("test_auc", label, rows, predictions) == 0.75  # the unlabelled row is left out
    assert window_metric("test_accuracy", label, rows, predictions) == 0.5
    assert window_metric("test_loss", label, rows, predictions) is None
    regression = LabelSpec(column="delay", task="regression")
    frame = pd.DataFrame({"delay": [1.0, 3.0, np.nan]})
    assert window_metric("test_mae", regression, frame, pd.DataFrame({"prediction": [2.0, 2.0, 9.0]})) == 1.0
