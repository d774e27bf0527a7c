"""conf/cluster.yaml for real: a Spark standalone master + 2 workers and an MLflow tracking server (PostgreSQL
backend store, MLflow's basic-auth app) on 127.0.0.1, with the three jobs submitted through spark-submit exactly as
a user or scheduler would, with the job user's credentials in their environment (tests/cluster.py starts it all).
"""

from __future__ import annotations

import re
import time
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


# The cluster's workers advertise one simulated GPU each (tests/cluster.py, scripts/gpu_discovery.sh): worker1 GPU
# 0, worker2 GPU 1. An application asking for them gets one per executor and per task.
GPU_TASKS = ["--set", 'spark.extra={"spark.executor.resource.gpu.amount": "1", "spark.task.resource.gpu.amount": "1"}']
GPU_RUN = ["--set", "tracking.experiment=gpu-sim", "--set", "tracking.model_name=gpu-sim", "--set", "train.nics=[lo]"]
GPU_RUN += ["--set", "train.epochs=1", "--set", "train.max_steps_per_epoch=5"]


def test_each_rank_takes_the_gpu_spark_assigned_to_its_task(cluster_prepared):
    """Task -> rank -> device end to end on CPU: the GPU slots are counted, each Horovod rank learns its task's GPU
    address from Spark (different executors, different GPUs), and train.device=cpu keeps them on the CPU."""
    cluster, env = cluster_prepared["cluster"], cluster_prepared["env"]
    out = submit(cluster, "train.py", *GPU_RUN, *GPU_TASKS, "--set", "train.device=cpu", env=env)
    log = out.stdout + out.stderr
    assert "training on CPU (train.device=cpu)" in log
    placements = re.search(r"ranks ran on: (.*)", log).group(1)
    assigned = sorted(re.findall(r"executor (\d+) cpu \(Spark task GPU (\d+)\)", placements))
    assert len(assigned) == 2 and {gpu for _, gpu in assigned} == {"0", "1"}, placements
    assert len({executor for executor, _ in assigned}) == 2, placements


def test_gpus_spark_assigns_to_a_rank_without_cuda_fail_fast_naming_the_fix(cluster_prepared):
    """train.device=auto follows Spark's task GPUs, not the driver's CUDA; TorchDistributor hands each task its GPU
    through CUDA_VISIBLE_DEVICES. On these CPU-only workers the ranks stop at once with the rule's error (not a
    hang, not a silent CPU run), and it is not retried as a lost rank."""
    cluster, env = cluster_prepared["cluster"], cluster_prepared["env"]
    started = time.monotonic()
    out = submit(
        cluster, "train.py", *GPU_RUN, *GPU_TASKS, "--set", "train.backend=torch_distributor", env=env, check=False
    )
    log = out.stdout + out.stderr
    assert out.returncode != 0 and time.monotonic() - started < 240
    assert "training on GPU (train.device=auto and spark.task.resource.gpu.amount=1)" in log
    assert "this rank sees no CUDA device" in log and "train.device=cpu" in log
    assert "not restarting" in log
