"""conf/cluster.yaml for real: a Spark standalone master + 2 workers and an MLflow tracking server (PostgreSQL
backend store, MLflow's basic-auth app) on 127.0.0.1, with the three jobs submitted through spark-submit exactly as
a user or scheduler would, with the job user's credentials in their environment (tests/cluster.py starts it all).
"""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg2
import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient

from pipeline.config.schema import PipelineConfig
from pipeline.layout import Layout
from tests.cluster import cluster_env, submit

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SCORE_DATE = "2013-12-30"


def test_jobs_on_standalone_cluster_with_tracking_server(cluster_prepared, monkeypatch):
    cluster, work, env = cluster_prepared["cluster"], cluster_prepared["work"], cluster_prepared["env"]
    small = ["--set", "train.nics=[lo]"]

    # prepare ran through spark-submit in the cluster_prepared fixture (tests/integration/conftest.py)
    assert Path(Layout.from_config(PipelineConfig(work_dir=str(work))).prepared.spec_file).exists()

    # A user's own network (examples/custom_model), its folder named relative to the submit directory: the code
    # reaches the ranks in other executor JVMs inside the plan, and the scoring executors inside the model.
    user_model = [
        *("--set", "train.model.type=custom", "--set", "train.model.factory=tabular_resnet:build"),
        *("--set", "train.model.code=examples/custom_model/tabular_resnet"),
        *("--set", "train.model.params={width: 32, blocks: 1}"),
    ]
    train = submit(cluster, "train.py", *small, "--set", "train.epochs=2", *user_model, env=env)
    assert "epoch 2/2" in train.stdout + train.stderr

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", cluster["username"])  # this client reads them too
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", cluster["password"])
    client = MlflowClient(tracking_uri=cluster["tracking_uri"])
    champion = client.get_model_version_by_alias("flights-delay", "champion")
    run = client.get_run(champion.run_id)
    assert run.data.params["resolved.train.model.factory"] == "tabular_resnet:build"
    executors = run.data.tags["train.executors"].split(",")
    assert len(executors) == 2 and "driver" not in executors, executors  # one Horovod rank per executor JVM
    assert run.data.metrics["test_auc"] > 0.6
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert "plots/roc_curve.png" in artifacts  # artifacts went through the server's proxy

    submit(cluster, "score.py", *small, "--date", SCORE_DATE, env=env)
    predictions = pq.read_table(work / "predictions" / f"date={SCORE_DATE}").to_pandas()
    assert len(predictions) > 0 and predictions["probability"].between(0, 1).all()
    assert set(predictions["model_version"].astype(str)) == {str(champion.version)}

    # The runs are in PostgreSQL (the server's backend store), not in a file next to the server.
    with closing(psycopg2.connect(cluster["backend_store_dsn"])) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT status FROM runs WHERE run_uuid = %s", (champion.run_id,))
        assert cursor.fetchall() == [("FINISHED",)]
        cursor.execute("SELECT version FROM model_versions WHERE name = 'flights-delay'")
        assert (int(champion.version),) in cursor.fetchall()


def test_prepare_is_repeatable_on_the_cluster(cluster_prepared, flights_raw, tmp_path):
    """Two prepares of the same input, whose partial aggregates reach the driver in whatever order the executors
    finish, write the same spec byte for byte and the same feature rows bit for bit."""
    cluster, first = cluster_prepared["cluster"], cluster_prepared["work"]
    second = tmp_path / "work"
    submit(cluster, "prepare.py", "--set", "train.nics=[lo]", env=cluster_env(cluster, second, flights_raw))
    layouts = [Layout.from_config(PipelineConfig(work_dir=str(w))).prepared for w in (first, second)]
    specs = [Path(layout.spec_file).read_bytes() for layout in layouts]
    assert specs[0] == specs[1]
    for split in ("train", "val", "test"):
        tables = [_sorted_bits(pq.read_table(layout.features(split)).to_pandas()) for layout in layouts]
        assert len(tables[0]) > 0
        pd.testing.assert_frame_equal(tables[0], tables[1], check_exact=True)


def _sorted_bits(features: pd.DataFrame) -> pd.DataFrame:
    """Float columns as their exact bits, rows sorted by every column (the feature files carry no key column)."""
    bits = features.copy()
    for column in bits.columns:
        if bits[column].dtype.kind == "f":
            bits[column] = bits[column].to_numpy().view(np.uint32 if bits[column].dtype == np.float32 else np.uint64)
    return bits.sort_values(list(bits.columns), kind="mergesort").reset_index(drop=True)
