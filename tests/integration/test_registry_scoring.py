"""Registered pyfunc (fresh process, spark_udf, REST), promotion rules, and scheduled batch scoring."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from pipeline.data.split import SPLIT
from pipeline.errors import ScoringError, TrackingError
from pipeline.launch.planning import resolved_model
from pipeline.layout import Layout
from pipeline.tracking import registry, runs
from tests.helpers import ROOT, serve_and_predict, udf_predictions
from tests.helpers import run_score as run_score_job

pytestmark = pytest.mark.integration
SCORE_DATE = "2013-12-30"


def clean_rows(spark, config, split="test", limit=3000) -> pd.DataFrame:
    clean = spark.read.parquet(Layout.from_config(config).prepared.clean_dir)
    return clean.where(f"{SPLIT} = '{split}'").orderBy("flight_id").limit(limit).toPandas()


def test_run_has_plots_config_spec_and_aliases(trained_flights):
    config, outcome = trained_flights
    runs.configure(config.tracking, config.spark.master)
    client = mlflow.tracking.MlflowClient()
    artifacts = {a.path for a in client.list_artifacts(outcome.run_id, "plots")}
    assert {
        "plots/learning_curves.png",
        "plots/roc_curve.png",
        "plots/pr_curve.png",
        "plots/confusion_matrix.png",
    } <= artifacts
    assert {a.path for a in client.list_artifacts(outcome.run_id, "data")} >= {"data/feature_spec.json"}
    assert client.list_artifacts(outcome.run_id, "config")[0].path == "config/effective_config.yaml"
    run = client.get_run(outcome.run_id)
    assert run.data.tags["mlflow.source.git.commit"]
    assert run.data.params["train.num_proc"] == "2"
    assert any(key.startswith("system/cpu") for key in run.data.metrics)  # the System metrics tab has data
    version = client.get_model_version_by_alias(config.tracking.model_name, "champion")
    assert str(version.version) == outcome.model.version == "1"
    assert str(client.get_model_version_by_alias(config.tracking.model_name, "candidate").version) == "1"


def test_model_loads_in_fresh_process_from_its_own_files(trained_flights, spark, tmp_path):
    config, outcome = trained_flights
    rows = clean_rows(spark, config, limit=50)
    inputs = rows[outcome.spec.input_columns]
    inputs.to_parquet(tmp_path / "rows.parquet")
    script = (
        "import sys, importlib.util\n"
        "sys.modules['pyspark'] = None  # importing pyspark now fails: the model must not need it\n"
        "# as on a serving host: this checkout's pipeline package is not installed (drop the editable finder)\n"
        "sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, '__module__', '').startswith('__editable')]\n"
        "import mlflow.pyfunc, pandas as pd\n"
        f"m = mlflow.pyfunc.load_model({outcome.model.uri!r})\n"
        "import pipeline\n"
        "assert '/artifacts/code/pipeline' in pipeline.__file__, pipeline.__file__\n"
        "assert importlib.util.find_spec('pipeline.config') is None  # only pipeline/model/ was shipped\n"
        "rows = pd.read_parquet('rows.parquet')\n"
        "m.predict(rows).to_parquet('out.parquet')\n"
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": runs.resolve_uri(config.tracking.uri)}
    subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, check=True, timeout=300)
    fresh = pd.read_parquet(tmp_path / "out.parquet")
    local = registry.load_pyfunc(outcome.model.uri).predict(inputs)
    np.testing.assert_allclose(fresh["probability"], local["probability"], atol=1e-6)


def test_registered_model_carries_only_the_model_package(trained_flights):
    config, outcome = trained_flights
    runs.configure(config.tracking, config.spark.master)
    model_dir = Path(mlflow.artifacts.download_artifacts(outcome.model.uri))
    shipped = sorted(str(p.relative_to(model_dir / "code")) for p in (model_dir / "code").rglob("*.py"))
    expected = sorted(f"pipeline/model/{p.name}" for p in (ROOT / "pipeline" / "model").glob("*.py"))
    assert shipped == ["pipeline/__init__.py", *expected]


def test_spark_udf_matches_in_process_predict(trained_flights, spark):
    config, outcome = trained_flights
    runs.configure(config.tracking, config.spark.master)
    rows = clean_rows(spark, config)
    columns = outcome.spec.input_columns
    by_udf = udf_predictions(spark, outcome.model.uri, rows, "flight_id", columns)
    local = registry.load_pyfunc(outcome.model.uri).predict(rows[columns])
    np.testing.assert_allclose(by_udf["probability"].to_numpy(), local["probability"].to_numpy(), atol=1e-6, rtol=0)
    assert (by_udf["prediction"].to_numpy() == local["prediction"].to_numpy()).all()
    assert len(local) == 3000


def test_rest_serving_gives_the_same_predictions(trained_flights, spark):
    config, outcome = trained_flights
    rows = clean_rows(spark, config, limit=20)[outcome.spec.input_columns]
    served = serve_and_predict(outcome.model.uri, rows, runs.resolve_uri(config.tracking.uri))
    local = registry.load_pyfunc(outcome.model.uri).predict(rows)
    np.testing.assert_allclose(served["probability"], local["probability"], atol=1e-6)


def test_promotion_needs_a_better_test_metric(trained_flights, spark):
    config, outcome = trained_flights
    runs.configure(config.tracking, config.spark.master)
    experiment_id = runs.ensure_experiment(config.tracking)
    rows = clean_rows(spark, config, limit=5)[outcome.spec.input_columns]
    with mlflow.start_run(experiment_id=experiment_id):
        mlflow.log_metric("test_auc", 0.51)  # worse than the champion's
        worse = registry.log_and_register(
            outcome.spec,
            resolved_model(config.train.model),
            outcome.result.best_model_path,
            config.tracking.model_name,
            rows,
        )
        decision = registry.promote(worse, "test_auc", True, force=False)
        assert decision.promoted is False and decision.previous_champion_version == "1"
        assert "does not beat" in decision.reason
        assert registry.resolve(config.tracking.model_name).version == "1"
        forced = registry.promote(worse, "test_auc", True, force=True)
        assert forced.promoted is True
        assert registry.resolve(config.tracking.model_name).version == worse.version
        mlflow.tracking.MlflowClient().set_registered_model_alias(config.tracking.model_name, "champion", "1")
        gated = registry.promote(worse, "test_auc", True, force=True, baseline=0.6)  # no better than a constant
        assert gated.promoted is False and gated.beats_baseline is False and "constant baseline" in gated.reason
        assert registry.resolve(config.tracking.model_name).version == "1"
    mlflow.tracking.MlflowClient().set_registered_model_alias(config.tracking.model_name, "champion", "1")


def test_scoring_writes_lineage_and_reruns_idempotently(trained_flights, spark):
    config, outcome = trained_flights
    first = run_score_job(spark, config, SCORE_DATE)
    out_dir = Layout.from_config(config).predictions.root
    table = spark.read.parquet(out_dir).where(f"date = '{SCORE_DATE}'")
    rows = table.toPandas()
    assert len(rows) == first.rows_scored > 100  # 1/6 subsample of one day
    assert rows["flight_id"].is_unique
    assert set(rows["model_version"]) == {"1"} and set(rows["model_run_id"]) == {outcome.run_id}
    assert rows["probability"].between(0, 1).all() and rows["scored_at"].notna().all()

    again = run_score_job(spark, config, SCORE_DATE)
    rerun = spark.read.parquet(out_dir).where(f"date = '{SCORE_DATE}'").toPandas()
    assert again.rows_scored == first.rows_scored == len(rerun)  # replaced, not appended
    pd.testing.assert_frame_equal(
        rows.drop(columns="scored_at").sort_values("flight_id").reset_index(drop=True),
        rerun.drop(columns="scored_at").sort_values("flight_id").reset_index(drop=True),
    )
    visible = sorted(p.name for p in Path(out_dir).iterdir() if not p.name.startswith((".", "_")))
    assert visible == [f"date={SCORE_DATE}"]


def test_schema_drift_stops_before_writing(trained_flights, spark, flights_config_factory, tmp_path):
    config, _ = trained_flights
    query = config.data.query.replace("f.carrier, f.origin", "CAST(f.distance AS string) AS carrier_x, f.origin")
    drifted = config.model_copy(
        update={
            "data": config.data.model_copy(update={"query": query}),
            "score": config.score.model_copy(update={"output_dir": str(tmp_path / "pred")}),
        }
    )
    with pytest.raises(ScoringError, match="input column 'carrier' required by the model is missing"):
        run_score_job(spark, drifted, SCORE_DATE)
    retyped = drifted.model_copy(
        update={
            "data": config.data.model_copy(
                update={
                    "query": config.data.query.replace(
                        "f.distance, f.dep_time", "CAST(f.distance AS string) AS distance, f.dep_time"
                    )
                }
            )
        }
    )
    with pytest.raises(ScoringError, match="'distance' has type string but the model was trained on double"):
        run_score_job(spark, retyped, SCORE_DATE)
    assert not (tmp_path / "pred" / f"date={SCORE_DATE}").exists()


def test_missing_model_or_alias_is_a_clear_error(trained_flights, spark):
    config, _ = trained_flights
    runs.configure(config.tracking, config.spark.master)
    with pytest.raises(TrackingError, match="registered model 'no-such-model' has no alias @champion"):
        registry.resolve("no-such-model")
    with pytest.raises(TrackingError, match="has no version 99"):
        run_score_job(spark, config, SCORE_DATE, model_version="99")


def test_local_store_rejected_for_cluster_master():
    from pipeline.config.schema import TrackingConfig

    with pytest.raises(TrackingError, match="spark.master=spark://10.0.0.5:7077 runs workers on other machines"):
        runs.configure(TrackingConfig(uri="sqlite:///work/mlflow.db"), "spark://10.0.0.5:7077")


def test_nested_runs_share_the_pipeline_execution_id(tmp_path):
    from pipeline.config.load import load_config

    config = load_config(
        [ROOT / "conf/flights.yaml"],
        [f"tracking.uri=sqlite:///{tmp_path}/m.db", f"tracking.artifact_root={tmp_path}/a"],
    )
    runs.configure(config.tracking, "local[2]")
    experiment_id = runs.ensure_experiment(config.tracking)
    parent = runs.start_run(experiment_id, "pipeline", config)
    child = runs.start_run(experiment_id, "prepare", config)
    runs.end_run()
    runs.end_run()
    client = mlflow.tracking.MlflowClient()
    child_tags = client.get_run(child.info.run_id).data.tags
    assert child_tags["mlflow.parentRunId"] == parent.info.run_id
    assert child_tags[runs.TAG_PIPELINE_ID] == parent.info.run_id
