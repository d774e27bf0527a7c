"""conf/cluster.yaml for real: a Spark standalone master + 2 workers and an MLflow tracking server on 127.0.0.1,
with the three jobs submitted through spark-submit exactly as a user or scheduler would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient

from pipeline.config.schema import PipelineConfig
from pipeline.layout import Layout
from tests.helpers import ROOT, free_port

pytestmark = pytest.mark.integration

SCORE_DATE = "2013-12-30"


def _spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


class Service:
    """A started server process, its own process group (so its children stop with it) and its log file."""

    def __init__(self, name: str, command: list[str], env: dict, folder: Path):
        self.name = name
        self.log_path = folder / f"{name}.log"
        self.log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            command, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True, cwd=folder
        )

    def died(self) -> str | None:
        if self.process.poll() is None:
            return None
        tail = self.log_path.read_text(errors="replace")[-2000:]
        return f"{self.name} exited with {self.process.returncode}:\n{tail}"

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


def _wait_for(what: str, check, timeout_s: float, services: list[Service]) -> None:
    """Poll `check` until it is true; fail with the log of a service that died, or at the timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for service in services:
            if message := service.died():
                pytest.fail(f"{what}: {message}")
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(1)
    pytest.fail(f"{what}: not ready after {timeout_s} s (logs in {services[0].log_path.parent})")


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def _healthy(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status == 200


@pytest.fixture(scope="module")
def standalone_cluster(tmp_path_factory):
    """Master + 2 one-core workers from the pyspark distribution, and an mlflow server; all stopped after."""
    base = tmp_path_factory.mktemp("cluster")
    spark_class = str(_spark_home() / "bin" / "spark-class")
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable}
    master_port, master_ui, mlflow_port = free_port(), free_port(), free_port()
    master_url = f"spark://127.0.0.1:{master_port}"
    started: list[Service] = []

    def start(name: str, command: list[str]) -> Service:
        started.append(Service(name, command, env, base))
        return started[-1]

    try:
        master = start(
            "master",
            [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1"]
            + ["--port", str(master_port), "--webui-port", str(master_ui)],
        )
        _wait_for("Spark master", lambda: _healthy(f"http://127.0.0.1:{master_ui}/json/"), 90, [master])
        for i in (1, 2):
            (base / f"worker{i}").mkdir()
            start(
                f"worker{i}",
                [spark_class, "org.apache.spark.deploy.worker.Worker", master_url, "--host", "127.0.0.1"]
                + ["--cores", "1", "--memory", "2g", "--webui-port", str(free_port())]
                + ["--work-dir", str(base / f"worker{i}")],
            )
        _wait_for(
            "2 Spark workers registered",
            lambda: _get_json(f"http://127.0.0.1:{master_ui}/json/")["aliveworkers"] == 2,
            90,
            started,
        )
        server = start(
            "mlflow",
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(mlflow_port)]
            + ["--workers", "1", "--backend-store-uri", f"sqlite:///{base}/mlflow.db"]
            + ["--artifacts-destination", str(base / "mlartifacts")],
        )
        tracking_uri = f"http://127.0.0.1:{mlflow_port}"
        _wait_for("mlflow server", lambda: _healthy(f"{tracking_uri}/health"), 120, [server])
        yield {"master": master_url, "tracking_uri": tracking_uri, "base": base}
    finally:
        for service in reversed(started):
            service.stop()


def _submit(cluster: dict, job: str, *args: str, env: dict) -> subprocess.CompletedProcess:
    command = [str(_spark_home() / "bin" / "spark-submit"), "--master", cluster["master"], str(ROOT / "jobs" / job)]
    command += ["--conf", str(ROOT / "conf/flights.yaml"), "--conf", str(ROOT / "conf/cluster.yaml"), *args]
    out = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert out.returncode == 0, f"{job} exited {out.returncode}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


def test_jobs_on_standalone_cluster_with_tracking_server(standalone_cluster, flights_raw):
    cluster = standalone_cluster
    work = cluster["base"] / "work"
    env = {
        **os.environ,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        # the variables conf/cluster.yaml reads, as docker-compose.yml sets them
        "SPARK_MASTER_URL": cluster["master"],
        "MLFLOW_TRACKING_URI": cluster["tracking_uri"],
        "SPARKTRAIN_WORK_DIR": str(work),
        "RAW_DIR": str(flights_raw),
    }
    small = ["--set", "train.nics=[lo]"]

    _submit(cluster, "prepare.py", *small, env=env)
    assert Path(Layout.from_config(PipelineConfig(work_dir=str(work))).prepared.spec_file).exists()

    # A user's own network (examples/custom_model), its folder named relative to the submit directory: the code
    # reaches the ranks in other executor JVMs inside the plan, and the scoring executors inside the model.
    user_model = [
        *("--set", "train.model.type=custom", "--set", "train.model.factory=tabular_resnet:build"),
        *("--set", "train.model.code=examples/custom_model/tabular_resnet"),
        *("--set", "train.model.params={width: 32, blocks: 1}"),
    ]
    train = _submit(cluster, "train.py", *small, "--set", "train.epochs=2", *user_model, env=env)
    assert "epoch 2/2" in train.stdout + train.stderr

    client = MlflowClient(tracking_uri=cluster["tracking_uri"])
    champion = client.get_model_version_by_alias("flights-delay", "champion")
    run = client.get_run(champion.run_id)
    assert run.data.params["resolved.train.model.factory"] == "tabular_resnet:build"
    executors = run.data.tags["train.executors"].split(",")
    assert len(executors) == 2 and "driver" not in executors, executors  # one Horovod rank per executor JVM
    assert run.data.metrics["test_auc"] > 0.6
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert "plots/roc_curve.png" in artifacts  # artifacts went through the server's proxy

    _submit(cluster, "score.py", *small, "--date", SCORE_DATE, env=env)
    predictions = pq.read_table(work / "predictions" / f"date={SCORE_DATE}").to_pandas()
    assert len(predictions) > 0 and predictions["probability"].between(0, 1).all()
    assert set(predictions["model_version"].astype(str)) == {str(champion.version)}
