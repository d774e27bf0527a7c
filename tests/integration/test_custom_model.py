"""A user's own network (examples/custom_model/tabular_resnet) through every stage the built-ins go through.

Trained on the flights subsample with Horovod and with DDP (the latter with the example's custom loss), resumed
exactly after a killed worker, registered with its code, then loaded from a fresh process, spark_udf and REST
where the user's folder is not on sys.path.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from pipeline import faults
from pipeline.data.split import SPLIT
from pipeline.errors import TrainingError
from pipeline.layout import Layout
from pipeline.tracking import registry, runs
from tests.helpers import ROOT, assert_same_weights, run_train, serve_and_predict, udf_predictions

pytestmark = pytest.mark.integration
EXAMPLE = ROOT / "examples" / "custom_model" / "tabular_resnet"
MODEL_NAME = "flights-resnet"


def resnet_overrides(*more: str) -> list[str]:
    return [
        "train.model.type=custom",
        f"train.model.code={EXAMPLE}",
        "train.model.factory=tabular_resnet:build",
        "train.model.params={width: 32, blocks: 2, expansion: 2.0, dropout: 0.1, embedding_dim: 4}",
        f"tracking.model_name={MODEL_NAME}",
        "train.seed=5",
        *more,
    ]


@pytest.fixture(scope="module")
def trained_resnet(spark, train_config_factory):
    config = train_config_factory(*resnet_overrides())
    return config, run_train(spark, config)


def clean_rows(spark, config, limit: int) -> pd.DataFrame:
    clean = spark.read.parquet(Layout.from_config(config).prepared.clean_dir)
    return clean.where(f"{SPLIT} = 'test'").orderBy("flight_id").limit(limit).toPandas()


def test_horovod_trains_the_users_model_and_registers_its_code(trained_resnet):
    config, outcome = trained_resnet
    result = outcome.result
    assert result.world_size == 2 and len(result.history) == 3
    assert result.test_metrics["test_auc"] >= 0.65  # predicting the base rate gives 0.5
    runs.configure(config.tracking, config.spark.master)
    run = mlflow.tracking.MlflowClient().get_run(outcome.run_id)
    assert run.data.params["resolved.train.model.factory"] == "tabular_resnet:build"
    assert run.data.metrics["model_check_seconds"] < 10
    model_dir = Path(mlflow.artifacts.download_artifacts(outcome.model.uri))
    shipped = {str(p.relative_to(model_dir / "code")) for p in (model_dir / "code").rglob("*.py")}
    assert {f"tabular_resnet/{p.name}" for p in EXAMPLE.glob("*.py")} <= shipped
    assert "pipeline/model/networks.py" in shipped


@pytest.mark.slow  # the same resume as test_training.py, with the user's model: make test-all
def test_killed_worker_then_rerun_resumes_exactly(spark, train_config_factory, trained_resnet, monkeypatch):
    _, uninterrupted = trained_resnet
    config = train_config_factory(*resnet_overrides())
    monkeypatch.setenv(faults.ENV, "train_step:1,3,1")  # rank 1 hard-exits at epoch 1, step 3
    with pytest.raises(TrainingError, match="fault injection"):
        run_train(spark, config)
    monkeypatch.delenv(faults.ENV)
    resumed = run_train(spark, config)
    assert resumed.result.resumed_from_epoch == 1
    assert_same_weights(uninterrupted.result.best_model_path, resumed.result.best_model_path)
    assert resumed.result.test_metrics == uninterrupted.result.test_metrics


def test_ddp_trains_the_same_model_with_the_users_loss(spark, train_config_factory):
    config = train_config_factory(
        *resnet_overrides("train.backend=torch_distributor", "train.loss=tabular_resnet.losses:focal_loss")
    )
    outcome = run_train(spark, config)
    assert outcome.result.world_size == 2 and len(outcome.result.history) == 3
    assert outcome.result.test_metrics["test_auc"] >= 0.65
    # the focal loss trains, but validation reports the task's own loss, comparable across runs
    assert 0.3 < outcome.result.history[-1]["val_loss"] < 0.7


def test_model_loads_where_the_users_folder_is_not(trained_resnet, spark, tmp_path):
    config, outcome = trained_resnet
    inputs = clean_rows(spark, config, 50)[outcome.spec.input_columns]
    inputs.to_parquet(tmp_path / "rows.parquet")
    script = (
        "import sys\n"
        f"assert not any('examples' in p for p in sys.path), sys.path\n"
        "import importlib.util\n"
        "assert importlib.util.find_spec('tabular_resnet') is None  # not importable before the model loads\n"
        "import mlflow.pyfunc, pandas as pd\n"
        f"m = mlflow.pyfunc.load_model({outcome.model.uri!r})\n"
        "import tabular_resnet\n"
        "assert '/artifacts/code/tabular_resnet' in tabular_resnet.__file__, tabular_resnet.__file__\n"
        "m.predict(pd.read_parquet('rows.parquet')).to_parquet('out.parquet')\n"
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": runs.resolve_uri(config.tracking.uri)}
    env.pop("PYTHONPATH", None)
    subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, check=True, timeout=300)
    fresh = pd.read_parquet(tmp_path / "out.parquet")
    runs.configure(config.tracking, config.spark.master)
    local = registry.load_pyfunc(outcome.model.uri).predict(inputs)
    np.testing.assert_allclose(fresh["probability"], local["probability"], atol=1e-6)


def test_spark_udf_and_rest_match_in_process_predict(trained_resnet, spark):
    config, outcome = trained_resnet
    runs.configure(config.tracking, config.spark.master)
    rows = clean_rows(spark, config, 2000)
    columns = outcome.spec.input_columns
    local = registry.load_pyfunc(outcome.model.uri).predict(rows[columns])
    by_udf = udf_predictions(spark, outcome.model.uri, rows, "flight_id", columns)
    np.testing.assert_allclose(by_udf["probability"].to_numpy(), local["probability"].to_numpy(), atol=1e-6, rtol=0)
    assert (by_udf["prediction"].to_numpy() == local["prediction"].to_numpy()).all()

    served = serve_and_predict(outcome.model.uri, rows[columns].head(20), runs.resolve_uri(config.tracking.uri))
    np.testing.assert_allclose(served["probability"], local["probability"].head(20), atol=1e-6)
