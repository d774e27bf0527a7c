"""Outcomes that arrive after scoring: `evaluate --date` joins them with the stored predictions by key and writes
the realised metrics per date to the monitoring table and an MLflow run beside the model's test metrics."""

from __future__ import annotations

import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from pipeline.config.monitoring import OutcomesConfig
from pipeline.config.source_entry import SourceConfig
from pipeline.errors import ConfigError, ScoringError
from pipeline.layout import Layout
from pipeline.stages import evaluate
from pipeline.tracking import runs
from tests.helpers import run_score as run_score_job

pytestmark = pytest.mark.integration
SCORE_DATE = "2013-12-30"


def with_outcomes(config, tmp_path, outcomes: pd.DataFrame, schema: dict[str, str]):
    outcomes.to_csv(tmp_path / "outcomes.csv", index=False)
    source = SourceConfig(name="arrivals", format="csv", path=str(tmp_path / "outcomes.csv"), schema=schema)
    monitor = config.monitor.model_copy(update={"outcomes": OutcomesConfig(source=source)})
    score = config.score.model_copy(update={"output_dir": str(tmp_path / "predictions")})
    return config.model_copy(update={"monitor": monitor, "score": score})


def test_realised_metrics_of_a_scored_date(trained_flights, spark, tmp_path):
    config, outcome = trained_flights
    clean = spark.read.parquet(Layout.from_config(config).prepared.clean_dir)
    day = clean.where(f"flight_date = '{SCORE_DATE}'").select("flight_id", "late").toPandas()
    arrived = day.iloc[: len(day) * 3 // 4]  # a quarter of the outcomes have not arrived yet
    arrived = pd.concat([arrived, pd.DataFrame({"flight_id": ["late-row"], "late": ["n/a"]})])  # unreadable
    configured = with_outcomes(config, tmp_path, arrived, {"flight_id": "string", "late": "int"})
    scored = run_score_job(spark, configured, SCORE_DATE)

    result = evaluate.run(spark, configured, Layout.from_config(configured), SCORE_DATE)
    arrived = arrived.iloc[:-1].astype({"late": int})
    assert result.predictions == scored.rows_scored and result.labelled == len(arrived)
    assert result.unreadable_outcomes == 1
    assert result.model_version == outcome.model.version and 0.7 < result.coverage < 0.8
    predictions = pd.read_parquet(tmp_path / "predictions" / f"date={SCORE_DATE}").merge(arrived, on="flight_id")
    assert result.metrics["realised_auc"] == pytest.approx(
        roc_auc_score(predictions["late"], predictions["probability"]), abs=2e-3
    )
    assert result.metrics["realised_accuracy"] == pytest.approx(
        (predictions["prediction"] == predictions["late"]).mean()
    )
    # The label-free estimate from the probabilities of all the date's predictions, beside the realised numbers.
    scored_rows = pd.read_parquet(tmp_path / "predictions" / f"date={SCORE_DATE}")
    p = scored_rows["probability"]
    expected_accuracy = (p.where(scored_rows["prediction"] == 1, 1 - p)).mean()
    assert result.metrics["estimated_accuracy"] == pytest.approx(expected_accuracy)
    assert 0.5 < result.metrics["estimated_auc"] < 1

    row = spark.read.parquet(Layout.from_config(configured).monitoring_outcomes.partition(f"date={SCORE_DATE}"))
    assert row.count() == 1 and row.first()["realised_auc"] == result.metrics["realised_auc"]
    runs.configure(configured.tracking, configured.spark.master)
    import mlflow

    evaluated = mlflow.search_runs(search_all_experiments=True, filter_string="tags.`pipeline.stage` = 'evaluate'")
    latest = evaluated.sort_values("start_time").iloc[-1]
    assert latest["metrics.realised_auc"] == pytest.approx(result.metrics["realised_auc"])
    assert latest["metrics.model_test_auc"] == pytest.approx(outcome.result.test_metrics["test_auc"])
    assert latest["tags.score.partition"] == f"date={SCORE_DATE}"


def test_outcomes_without_keys_or_a_scored_date_are_clear_errors(trained_flights, spark, tmp_path):
    config, _ = trained_flights
    keyless = with_outcomes(config, tmp_path, pd.DataFrame({"id": [1], "late": [0]}), {"id": "bigint", "late": "int"})
    layout = Layout.from_config(keyless)
    with pytest.raises(ScoringError, match=r"no predictions in .*date=2013-12-29. Fix: score that date first"):
        evaluate.run(spark, keyless, layout, "2013-12-29")
    run_score_job(spark, keyless, SCORE_DATE)
    with pytest.raises(ConfigError, match=r"outcomes source 'arrivals' lacks \['flight_id'\].*monitor.outcomes"):
        evaluate.run(spark, keyless, layout, SCORE_DATE)
    unset = keyless.model_copy(update={"monitor": keyless.monitor.model_copy(update={"outcomes": None})})
    with pytest.raises(ConfigError, match="monitor.outcomes is not set"):
        evaluate.run(spark, unset, layout, SCORE_DATE)
