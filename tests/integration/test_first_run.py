"""A new user's first run: two generated datasets, default training settings, prepare -> train -> score.

A regression whose target is in the hundreds of thousands (unscaled, the network predicted about zero) and a
1,500-row, 35-column binary task with a text label (the fixed 1024-row batch gave ~10 optimizer steps in all), its
whole config drafted by `infer-schema --features`. Both must
beat the constant predictor and be promoted; predictions come back in the label's own units; scoring works
without dates.
"""

from __future__ import annotations

import logging
import re

import mlflow
import numpy as np
import pandas as pd
import pytest

from pipeline.config.load import load_config
from pipeline.console import pipeline_summary
from pipeline.evaluation.threshold import choose_threshold
from pipeline.launch.planning import resolved_model
from pipeline.layout import Layout
from pipeline.stages.chain import PipelineResult
from pipeline.stages.train import clean_split_rows
from pipeline.tracking import registry, runs
from tests.helpers import ROOT, run_prepare, run_score, run_train, wide_churn_frame

pytestmark = pytest.mark.integration


def house_prices(path, rows: int = 4000) -> None:
    rng = np.random.default_rng(3)
    area = rng.normal(1500, 400, rows).clip(400)
    rooms = rng.integers(1, 7, rows)
    district = rng.choice(["north", "south", "east", "west"], rows)
    lift = {"north": 40_000.0, "south": -20_000.0, "east": 0.0, "west": 15_000.0}
    price = 30_000 + 95 * area + 8_000 * rooms + np.array([lift[d] for d in district]) + rng.normal(0, 12_000, rows)
    frame = pd.DataFrame({"id": range(rows), "area": area.round(1), "rooms": rooms, "district": district})
    frame["area"] = frame["area"].where(rng.random(rows) > 0.05)  # some missing values
    frame["price"] = price.round(0)
    frame.to_csv(path, index=False)


def docs_minimal_config(tmp_path, monkeypatch):
    """The shortest config of docs/configuration.md, exactly as documented, over a generated houses.csv."""
    docs = (ROOT / "docs" / "configuration.md").read_text()
    block = re.search(r"<!-- BYO-MINIMAL:BEGIN -->\n```yaml\n(.*?)```", docs, flags=re.DOTALL)
    assert block, "docs/configuration.md lost its BYO-MINIMAL block"
    conf = tmp_path / "houses.yaml"
    conf.write_text(block.group(1))
    monkeypatch.setenv("RAW_DIR", str(tmp_path))
    return load_config([conf, ROOT / "conf/local.yaml"], [f"work_dir={tmp_path / 'work'}"])


def test_regression_in_hundreds_of_thousands_with_defaults(spark, tmp_path, monkeypatch):
    csv = tmp_path / "houses.csv"
    house_prices(csv)
    config = docs_minimal_config(tmp_path, monkeypatch)
    assert config.train.batch_size is None and config.train.epochs is None and config.train.monitor is None
    prepared = run_prepare(spark, config)
    label = prepared.spec.label
    prices = pd.read_csv(csv)["price"]
    assert abs(label.mean - prices.mean()) < 0.02 * prices.mean() and label.std > 30_000  # fitted on train

    outcome = run_train(spark, config)
    rmse, baseline = outcome.result.test_metrics["test_rmse"], outcome.promotion.baseline_metric
    assert outcome.monitor == "val_rmse"
    assert baseline > 40_000  # the label's spread: RMSE of predicting the train mean, in dollars
    assert rmse < 0.5 * baseline  # noise is 12,000: the network learned the relation, in the label's units
    assert outcome.promotion.beats_baseline and outcome.promotion.promoted
    run = mlflow.tracking.MlflowClient().get_run(outcome.run_id)
    batch = int(run.data.params["resolved.train.batch_size"])
    assert batch in (16, 32, 64) and outcome.result.steps_per_epoch >= 50  # ~1,400 rows per worker, >= 50 steps
    assert int(run.data.params["resolved.train.epochs"]) >= 10

    # Scoring data without a date: every input row, into a named batch partition, in dollars.
    scored = run_score(spark, config, None, batch_id="first-load")
    assert scored.output_path.endswith("/batch=first-load")
    predictions = pd.read_parquet(scored.output_path).merge(pd.read_csv(csv), on="id")
    assert len(predictions) == scored.rows_scored == 4000
    assert np.sqrt(((predictions["prediction"] - predictions["price"]) ** 2).mean()) < 0.5 * baseline


@pytest.mark.slow  # drafting, a wide table and the whole chain; the inner loop has the regression chain above
def test_small_wide_table_from_the_drafted_config(spark, tmp_path, cli_session, capsys, caplog):
    """infer-schema --features drafts the whole config of a wide table, and the draft runs as is."""
    from pipeline.cli import main

    csv = tmp_path / "churn.csv"
    wide_churn_frame(1500).to_csv(csv, index=False)
    assert main(["infer-schema", str(csv), "--features", "churned"]) == 0
    draft = capsys.readouterr().out
    assert "# customer_uuid: an identifier" in draft and "# signed_up: a date/time" in draft
    (tmp_path / "churn.yaml").write_text(draft)
    config = load_config(
        [tmp_path / "churn.yaml", ROOT / "conf/local.yaml"],
        [f"work_dir={tmp_path / 'churn'}", "tracking.model_name=churn"],
    )
    features = config.features
    assert features.label.task == "binary" and features.label.positive == "Yes" and config.split.key == "id"
    assert [t.name for t in features.texts] == ["note"] and len(features.numeric) == 22
    assert {c.name for c in features.categorical} == {"plan", *(f"code_{i}" for i in range(7))}

    prepared = run_prepare(spark, config)
    assert 0.1 < prepared.report.train_label_mean < 0.6  # "Yes" encoded as 1 before fitting
    reasons = {r["reason"]: r["rows"] for r in prepared.report.quarantine_reasons}
    assert reasons == {"label 'maybe' not in ['No', 'Yes']": 3}  # never trained as "No"

    outcome = run_train(spark, config)
    assert outcome.result.steps_per_epoch >= 30  # a batch sized to the data, not 1024 rows
    assert outcome.promotion.baseline_metric == 0.5
    assert outcome.result.test_metrics["test_auc"] > 0.7
    low, high = outcome.promotion.candidate_interval  # ~150 test rows: the metric comes with its noise
    assert low < outcome.result.test_metrics["test_auc"] < high and high - low > 0.02
    assert mlflow.tracking.MlflowClient().get_run(outcome.run_id).data.metrics["test_auc_ci_low"] == low
    assert outcome.promotion.beats_baseline and outcome.promotion.promoted

    # The validation-chosen threshold is at least as good on F1 as the fixed 0.5.
    layout = Layout.from_config(config)
    validation = clean_split_rows(spark, layout, prepared.spec, "val")
    threshold = choose_threshold(
        prepared.spec, resolved_model(config.train.model), outcome.result.best_model_path, validation
    )
    runs.configure(config.tracking, config.spark.master)
    predicted = registry.load_pyfunc(outcome.model.uri).predict(validation[prepared.spec.input_columns])
    assert set(predicted["prediction"]) <= {"Yes", "No"} and set(predicted["probability_of"]) == {"Yes"}
    scores = predicted["probability"]
    truth = validation["churned"].eq("Yes").to_numpy()

    def f1(t: float) -> float:
        predicted = scores.to_numpy() >= t
        tp = (predicted & truth).sum()
        return 2 * tp / max(predicted.sum() + truth.sum(), 1)

    assert 0 < threshold < 1 and f1(threshold) >= f1(0.5)

    # The summary a scheduler's log keeps: every input row accounted for, the version that scored, the noise.
    scored = run_score(spark, config, None, batch_id="summary")
    with caplog.at_level(logging.INFO, logger="pipeline"):
        pipeline_summary(config, PipelineResult(prepared, outcome, scored))
    summary = caplog.text
    counts = f"{scored.rows_scored} rows scored + {scored.rows_quarantined} quarantined"
    assert f"score:   {counts}, by churn version 1" in summary
    assert scored.rows_scored + scored.rows_quarantined == 1500
    assert "prepare: 1500 rows -> 1497 clean, 3 quarantined" in summary
    assert "test_auc 95% interval" in summary and "beats the constant baseline: test_auc 0.5000" in summary
    assert "model:   churn version 1 @candidate @champion" in summary
