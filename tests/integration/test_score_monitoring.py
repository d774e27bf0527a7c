"""Every score run profiles its batch against the reference the model carries: drift rows per date in the
monitoring table, metrics and a chart in the score run, one summary line; at monitor.fail_psi exit code 3."""

from __future__ import annotations

import logging

import mlflow
import pandas as pd
import pytest

from pipeline.errors import DRIFT_EXIT_CODE, DriftError
from pipeline.layout import Layout
from pipeline.monitoring import prediction_drift
from pipeline.tracking import runs
from tests.helpers import flights_cli_args
from tests.helpers import run_score as run_score_job

pytestmark = pytest.mark.integration
SCORE_DATE = "2013-12-30"


def score_runs(config):
    runs.configure(config.tracking, config.spark.master)
    return mlflow.search_runs(search_all_experiments=True, filter_string="tags.`pipeline.stage` = 'score'")


def test_a_score_run_writes_its_drift_rows_metrics_and_chart(trained_flights, spark, tmp_path):
    config, outcome = trained_flights
    config = config.model_copy(update={"score": config.score.model_copy(update={"output_dir": str(tmp_path / "p")})})
    scored = run_score_job(spark, config, SCORE_DATE)
    assert scored.drift_summary.startswith("drift warn:")  # one December day against Jan-Sep weather: it drifts

    monitoring = Layout.from_config(config).monitoring_drift.partition(f"date={SCORE_DATE}")
    everything = spark.read.parquet(monitoring).toPandas().set_index("feature")
    rows = everything[everything["kind"] != "prediction"]
    assert set(rows.index) == {n.name for n in outcome.spec.numeric} | {c.name for c in outcome.spec.categorical}

    # The predictions' own drift: the day's probabilities against the test split's, from the published partition.
    reference = runs.load_dict(outcome.model.run_id, prediction_drift.ARTIFACT)
    assert reference["kind"] == "probability" and sum(reference["counts"].values()) > 1000  # the test split
    published = pd.read_parquet(scored.output_path)
    day = prediction_drift.reference_from("binary", published)["counts"]
    expected = prediction_drift.prediction_psi(reference, day)
    assert everything.loc["prediction", "psi"] == pytest.approx(expected, abs=1e-6) and expected > 0
    assert f"predictions PSI {expected:.3f}" in scored.drift_summary
    assert (rows["rows"] == scored.rows_scored).all() and set(rows["model_version"]) == {outcome.model.version}
    assert rows.loc["temp", "psi"] > 0.25 and rows.loc["temp", "drifted"]  # winter temperatures, summer reference
    assert rows["psi"].min() >= 0 and not rows["failed"].any()  # no failure level configured

    latest = score_runs(config).sort_values("start_time").iloc[-1]
    assert latest["metrics.drift_max_psi"] == pytest.approx(rows["psi"].max())
    assert latest["metrics.psi.temp"] == pytest.approx(rows.loc["temp", "psi"])
    assert latest["metrics.prediction_psi"] == pytest.approx(expected, abs=1e-6)
    assert 0.5 < latest["metrics.estimated_auc"] < 1 and 0 < latest["metrics.estimated_accuracy"] <= 1
    artifacts = mlflow.tracking.MlflowClient().list_artifacts(latest["run_id"], "monitoring")
    assert [a.path for a in artifacts] == ["monitoring/drift.png"]

    again = run_score_job(spark, config, SCORE_DATE)  # a rerun replaces the date's rows, like the predictions
    assert again.drift_summary == scored.drift_summary
    assert spark.read.parquet(monitoring).count() == len(everything)


@pytest.mark.slow  # a second monitored score run through the CLI: make test-all
def test_the_failure_level_holds_predictions_and_exits_3(trained_flights, spark, tmp_path, cli_session, caplog):
    config, _ = trained_flights
    settings = [
        f"work_dir={config.work_dir}",
        f"tracking.uri={config.tracking.uri}",
        f"tracking.artifact_root={config.tracking.artifact_root}",
        f"score.output_dir={tmp_path / 'held'}",
        "monitor.fail_psi=0.25",
        "monitor.hold_predictions=true",
    ]
    from pipeline.cli import main

    with caplog.at_level(logging.WARNING, logger="pipeline"):
        code = main(["score", *flights_cli_args(*settings), "--date", SCORE_DATE])
    assert code == DRIFT_EXIT_CODE
    assert not (tmp_path / "held" / f"date={SCORE_DATE}").exists()  # held back
    layout = Layout.from_config(config)
    assert spark.read.parquet(layout.monitoring_drift.partition(f"date={SCORE_DATE}")).where("failed").count() > 0
    assert "drift warn" not in caplog.text and "drift FAIL" in caplog.text
    failed = score_runs(config).sort_values("start_time").iloc[-1]
    assert failed["tags.pipeline.status"] == "failed" and failed["metrics.drift_max_psi"] > 0.25

    published = config.model_copy(update={"monitor": config.monitor.model_copy(update={"fail_psi": 0.25})})
    published = published.model_copy(
        update={"score": config.score.model_copy(update={"output_dir": str(tmp_path / "kept")})}
    )
    with pytest.raises(DriftError, match=r"drifted past monitor.fail_psi=0.25: .*Fix: check the upstream data"):
        run_score_job(spark, published, SCORE_DATE)
    assert (tmp_path / "kept" / f"date={SCORE_DATE}").exists()  # published, and the run still fails
