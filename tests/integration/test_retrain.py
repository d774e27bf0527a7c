"""`retrain`: a challenger trained on a rolling window against @champion on the most recent labelled window.

The data is built to drift the way a model should notice: from April on, the outcome's relation to the features
flips (the inputs' distributions stay the same, so input drift sees nothing; only the realised metric falls). The
champion learned January-March. Its scheduled days are scored and evaluated; then:
- `report` summarises both monitoring tables by week;
- retrain.when=[drift] does not fire (no feature drifted) and nothing trains;
- retrain.when=[metric_floor] fires on the realised AUC, and the challenger (April-June) wins on the compare
  window and becomes @champion, with the decision in MLflow;
- the same retrain again gives an identical challenger, which loses by retrain.margin and is not promoted;
- a --date whose compare window the champion trained on is refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from pipeline.config.load import load_config
from pipeline.errors import ConfigError
from pipeline.layout import Layout
from pipeline.stages import backfill, evaluate, monitor_report, retrain
from pipeline.tracking import registry
from tests.helpers import ROOT, run_prepare, run_train

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CONFIG = """
data:
  sources:
    - name: events
      primary: true
      format: csv
      path: ${RAW_DIR}/events.csv
      schema: {id: int, day: date, x: double, z: double, segment: string, outcome: int}
  key_columns: [id]
  date_column: day
features:
  numeric: [{name: x}, {name: z}]
  categorical: [{name: segment}]
  label: {column: outcome, task: binary}
split:
  method: time
  column: day
  train: ["2024-01-01", "2024-03-01"]
  val: ["2024-03-01", "2024-03-16"]
  test: ["2024-03-16", "2024-04-01"]
train: {epochs: 4, batch_size: 128, lr: 0.01, model: {hidden: [16]}}
tracking: {experiment: drifting, model_name: drifting}
monitor:
  warn_psi: 0.25          # a day is 150 rows: PSI over ten buckets of so few rows is about 0.1 by chance
  outcomes:
    source: {name: arrivals, format: csv, path: "${RAW_DIR}/events.csv",
             schema: {id: int, day: date, x: double, z: double, segment: string, outcome: int}}
retrain: {window_days: 60, val_days: 10, compare_days: 10, margin: 0.05}
"""


def drifting_events(path) -> None:
    """150 rows a day, January to June 2024; the sign of the outcome's relation to x and z flips on April 1."""
    rng = np.random.default_rng(7)
    day = np.repeat(pd.date_range("2024-01-01", "2024-06-30", freq="D"), 150)
    x, z = rng.normal(size=len(day)), rng.normal(size=len(day))
    sign = np.where(day >= pd.Timestamp("2024-04-01"), -1.0, 1.0)
    signal = sign * (2 * x + z) + rng.normal(0, 0.5, len(day))
    frame = pd.DataFrame({"id": range(len(day)), "day": day.date, "x": x.round(4), "z": z.round(4)})
    frame["segment"] = rng.choice(["a", "b", "c"], len(day))
    frame.assign(outcome=(signal > 0).astype(int)).to_csv(path, index=False)


def _config(tmp_path, monkeypatch, *overrides: str):
    monkeypatch.setenv("RAW_DIR", str(tmp_path))
    (tmp_path / "drifting.yaml").write_text(CONFIG)
    return load_config(
        [tmp_path / "drifting.yaml", ROOT / "conf/local.yaml"],
        [f"work_dir={tmp_path / 'work'}", "spark.shuffle_partitions=4", *overrides],
    )


def test_a_challenger_wins_on_the_recent_window_and_an_equal_one_loses_by_the_margin(spark, tmp_path, monkeypatch):
    drifting_events(tmp_path / "events.csv")
    config = _config(tmp_path, monkeypatch)
    layout = Layout.from_config(config)
    run_prepare(spark, config)
    champion = run_train(spark, config)
    assert champion.promotion.promoted and champion.result.test_metrics["test_auc"] > 0.95  # before the flip

    # The scheduled jobs of the last ten days: scored in one backfill, then evaluated once outcomes arrived.
    scored = backfill.run(spark, config, layout, "2024-06-21", "2024-06-30")
    assert [d.status for d in scored.dates] == ["scored"] * 10
    evaluated = evaluate.run_range(spark, config, layout, "2024-06-21", "2024-06-30")
    assert all(e.outcome.metrics["realised_auc"] < 0.2 for e in evaluated)  # the flip: worse than a coin

    # `report`: both tables by week (2024-06-21 is a Friday: its week starts on the 17th), a chart and a table.
    report = monitor_report.run(spark, config, layout, "2024-06-21", "2024-06-30")
    weekly = report.summary
    assert list(weekly.index) == ["2024-06-17", "2024-06-24"]
    assert weekly["scored_days"].tolist() == [3, 7] and weekly["evaluated_days"].tolist() == [3, 7]
    assert (weekly["realised_auc"] < 0.2).all() and (weekly["estimated_auc"] > 0.9).all()  # the estimate is blind
    assert (weekly["pooled_realised_auc"] < 0.2).all() and (weekly["pooled_estimated_auc"] > 0.9).all()
    assert weekly["labelled"].sum() == 1500 and (weekly["drifted_share"] < 0.5).all()
    assert pd.read_csv(report.table_file, index_col="week").index.tolist() == list(weekly.index)
    assert Path(report.chart_file).read_bytes()[:4] == b"\x89PNG"
    logged = mlflow.tracking.MlflowClient().get_metric_history(report.run_id, "realised_auc")
    assert [m.step for m in logged] == [0, 1]

    quiet = retrain.run(spark, _config(tmp_path, monkeypatch, "retrain.when=[drift]"), layout, "2024-06-30")
    assert quiet.trained is None and [c.fired for c in quiet.checks] == [False]
    assert "0% of features drifted on average over 10 dates" in quiet.summary()

    floor = ("retrain.when=[metric_floor]", "retrain.metric_floor=0.8")
    won = retrain.run(spark, _config(tmp_path, monkeypatch, *floor), layout, "2024-06-30")
    assert [c.fired for c in won.checks] == [True] and "worse than retrain.metric_floor" in won.checks[0].reason
    decision = won.trained.promotion
    assert decision.promoted and decision.previous_champion_version == "1" and decision.candidate_version == "2"
    assert decision.candidate_metric > 0.95 and decision.champion_metric < 0.2
    assert decision.candidate_metric == pytest.approx(won.trained.result.test_metrics["test_auc"], abs=1e-4)
    assert registry.resolve("drifting").version == "2"
    assert won.window.train == ("2024-04-12", "2024-06-11") and won.window.compare == ("2024-06-21", "2024-07-01")
    run = mlflow.tracking.MlflowClient().get_run(won.run_id)
    assert run.data.tags["retrain.promoted"] == "True" and run.data.tags["retrain.triggers"] == "metric_floor"
    assert run.data.metrics["challenger_test_auc"] == decision.candidate_metric
    assert run.data.metrics["champion_test_auc"] == decision.champion_metric
    assert run.data.params["window.compare"] == "2024-06-21..2024-07-01"
    logged = json.loads(mlflow.artifacts.load_text(f"runs:/{won.run_id}/retrain/decision.json"))
    assert logged["promoted"] is True and logged["metric"] == "test_auc"

    # The same window again: an identical challenger, not better by more than the margin.
    lost = retrain.run(spark, _config(tmp_path, monkeypatch, *floor), layout, "2024-06-30", ignore_policy=True)
    decision = lost.trained.promotion
    assert not decision.promoted and decision.candidate_version == "3"
    assert decision.candidate_metric == pytest.approx(decision.champion_metric, abs=0.01)
    assert "does not beat it by more than the margin 0.05" in decision.reason
    assert registry.resolve("drifting").version == "2"
    assert "champion kept" in lost.summary()

    # A compare window inside the new champion's own training window is refused before anything trains.
    with pytest.raises(ConfigError, match=r"champion's train split \[2024-04-12, 2024-06-11\) overlaps"):
        retrain.run(spark, config, layout, "2024-05-10")
