"""Every stage through Spark Connect: a Connect server from the pyspark package on loopback (started here, as a
user starts one with sbin/start-connect-server.sh), and the CLI as the client, with conf/connect.yaml."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from tests.cluster import spark_home
from tests.helpers import ROOT, free_port
from tests.services import Service

pytestmark = [pytest.mark.integration, pytest.mark.slow]
STARTED = "Spark Connect server started at"


@pytest.fixture(scope="module")
def connect_server(tmp_path_factory):
    """`spark-submit --class ...SparkConnectServer` on local[2] (what start-connect-server.sh runs); yields sc://."""
    folder, port = tmp_path_factory.mktemp("connect"), free_port()
    command = [str(spark_home() / "bin" / "spark-submit"), "--class"]
    command += ["org.apache.spark.sql.connect.service.SparkConnectServer", "--master", "local[2]"]
    command += [
        "--conf",
        f"spark.connect.grpc.binding.port={port}",
        "--conf",
        "spark.connect.grpc.binding.address=127.0.0.1",
    ]
    command += ["--conf", "spark.ui.enabled=false", "spark-internal"]
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable}
    service = Service("connect", command, env=env, folder=folder, ready=lambda s: STARTED in s.log_since_start())
    service.start()
    try:
        yield f"sc://127.0.0.1:{port}"
    finally:
        service.stop()


def cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pipeline", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900, env=env, check=False)


def _args(stage: str, remote: str | None, work, store, *overrides: str) -> list[str]:
    """The stage's arguments: conf/flights.yaml, and conf/connect.yaml pointed at `remote` (None: classic)."""
    args = [stage, "--conf", str(ROOT / "conf/flights.yaml")]
    args += ["--conf", str(ROOT / "conf/connect.yaml"), "--set", f"spark.remote={remote}"] if remote else []
    settings = [f"work_dir={work}", f"tracking.uri=sqlite:///{store}/mlflow.db"]
    settings += [f"tracking.artifact_root={store}/artifacts", "train.nics=[lo]", *overrides]
    for item in settings:
        args += ["--set", item]
    return args


def test_every_flights_stage_runs_through_spark_connect(connect_server, flights_raw, tmp_path):
    env = {**os.environ, "RAW_DIR": str(flights_raw), "SPARK_LOCAL_IP": "127.0.0.1"}
    work, store = tmp_path / "work", tmp_path / "mlflow"
    quick = ("train.epochs=2", "train.batch_size=512", "train.model.hidden=[32]")
    started = time.monotonic()
    out = cli(*_args("run", connect_server, work, store, *quick), "--date", "2013-12-30", env=env)
    seconds = time.monotonic() - started
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-4000:]
    assert f"Connect session on {connect_server}" in log and "epoch 2/2" in log
    predictions = pq.read_table(work / "predictions" / "date=2013-12-30").to_pandas()
    assert len(predictions) > 0 and predictions["probability"].between(0, 1).all()
    print(f"flights chain through Spark Connect: {seconds:.0f} s")

    # The same registered model scored through a classic session gives the same predictions, row for row.
    classic_out = tmp_path / "classic-predictions"
    args = _args("score", None, work, store, f"score.output_dir={classic_out}")
    classic = cli(*args, "--date", "2013-12-30", env={k: v for k, v in env.items() if k != "SPARK_REMOTE"})
    assert classic.returncode == 0, classic.stderr[-3000:]
    assert "Connect session" not in classic.stdout + classic.stderr
    again = pq.read_table(classic_out / "date=2013-12-30").to_pandas()
    keys = ["flight_id"]  # conf/flights.yaml data.key_columns
    columns = [c for c in ("prediction", "probability", "model_version") if c in predictions.columns]
    left = predictions.sort_values(keys).reset_index(drop=True)[keys + columns]
    right = again.sort_values(keys).reset_index(drop=True)[keys + columns]
    assert left.equals(right)

    # The same training through a classic session, on the same prepared files: the same seeds and shards.
    classic_train = _args("train", None, work, store, *quick, "train.backend=torch_distributor")
    trained = cli(*classic_train, env={k: v for k, v in env.items() if k != "SPARK_REMOTE"})
    assert trained.returncode == 0, trained.stderr[-3000:]
    through_connect, through_classic = _train_test_metrics(store)
    assert through_connect.keys() == through_classic.keys() and "test_auc" in through_connect
    assert through_connect == through_classic  # exactly: DDP on CPU with fixed seeds is bit-reproducible

    # Outcomes that arrive later, joined with the Connect-scored predictions; then a short study, both on Connect.
    clean = pq.read_table(work / "prepared" / "clean", columns=["flight_id", "late", "flight_date"]).to_pandas()
    day = clean[clean["flight_date"].astype(str) == "2013-12-30"]
    day[["flight_id", "late"]].to_csv(tmp_path / "outcomes.csv", index=False)
    source = (
        f"{{name: arrivals, format: csv, path: {tmp_path / 'outcomes.csv'}, schema: {{flight_id: string, late: int}}}}"
    )
    evaluated = cli(
        *_args("evaluate", connect_server, work, store, f"monitor.outcomes.source={source}"),
        "--date",
        "2013-12-30",
        env=env,
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    matched = int(predictions["flight_id"].isin(day["flight_id"]).sum())
    assert matched > 0 and f"{matched} of {len(predictions)} predictions found their outcome" in evaluated.stderr
    study = ("tune.trials=2", "tune.space={train.lr: {loguniform: [0.001, 0.01]}}", "train.epochs=1")
    tuned = cli(*_args("tune", connect_server, work, store, *study), env=env)
    assert tuned.returncode == 0, tuned.stderr[-3000:]
    assert "2 trial(s) to run" in tuned.stderr and "tune finished" in tuned.stderr


def _train_test_metrics(store) -> list[dict[str, float]]:
    """Each train run's test metrics in the store, oldest first."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{store}/mlflow.db")
    experiments = [e.experiment_id for e in client.search_experiments()]
    found = client.search_runs(experiments, "tags.`pipeline.stage` = 'train'", order_by=["attributes.start_time ASC"])
    return [{k: v for k, v in run.data.metrics.items() if k.startswith("test_")} for run in found]


def test_horovod_on_a_connect_session_is_a_one_line_error_before_any_work(connect_server, tmp_path):
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "RAW_DIR": str(tmp_path)}
    out = cli(*_args("train", connect_server, tmp_path / "w", tmp_path / "m", "train.backend=horovod"), env=env)
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-2000:]
    assert "train.backend=horovod needs a classic Spark session" in out.stderr
    assert "Fix: set train.backend=torch_distributor" in out.stderr and "Traceback" not in out.stderr


def test_the_digits_image_chain_runs_through_spark_connect(connect_server, tmp_path):
    """Images: the binaryFile source, its coalescing and the CNN, all through the Connect client."""
    from pipeline.data.demo import write_digits_images

    raw = tmp_path / "raw"
    write_digits_images(raw / "digits")
    env = {**os.environ, "RAW_DIR": str(raw), "SPARK_LOCAL_IP": "127.0.0.1"}
    args = _args("run", connect_server, tmp_path / "work", tmp_path / "mlflow", "train.epochs=3")
    args[args.index(str(ROOT / "conf/flights.yaml"))] = str(ROOT / "conf/digits.yaml")
    out = cli(*args, "--batch-id", "connect", env=env)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-4000:]
    assert "prepare: 1797 rows -> 1797 clean" in log and "1797 rows scored" in log
    assert float(re.search(r"test_accuracy=([\d.]+)", log).group(1)) > 0.8  # 3 epochs; 20 give 0.98
