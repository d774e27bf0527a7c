"""Training ranks on object storage: features read and checkpoints written on s3:// of a real S3-protocol server
(moto's server mode, started on loopback by this module), with no shared file system involved on the rank side.

Spark itself cannot write s3a:// here (the hadoop-aws jars come from Maven, which this machine cannot reach), so
the prepared features are copied up the way a user's prepare on a cluster would leave them.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pyarrow.fs as pafs
import pytest

from pipeline import faults
from pipeline.config.load import dump_yaml
from pipeline.errors import TrainingError
from pipeline.launch.launchers import launch
from pipeline.launch.planning import build_plan
from pipeline.layout import Layout
from pipeline.model.spec import FeatureSpec
from pipeline.stages.train import clean_split_rows
from pipeline.storage import files
from pipeline.storage.uri_fs import resolve
from pipeline.tracking import registry, runs
from tests.helpers import ROOT, assert_same_weights, free_port, run_score
from tests.services import Service, http_ok

pytestmark = [pytest.mark.integration, pytest.mark.slow]
BUCKET = "sparktrain"
SCORE_DATE = "2013-12-30"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    """`python -m moto.server` on a free loopback port with one bucket; yields its URL."""
    import boto3

    folder, port = tmp_path_factory.mktemp("s3"), free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    service = Service("s3", command, env={**os.environ, **CREDENTIALS}, folder=folder, ready=lambda _: http_ok(url))
    service.start()
    try:
        boto3.client("s3", endpoint_url=url, **_boto_credentials()).create_bucket(Bucket=BUCKET)
        yield url
    finally:
        service.stop()


def _boto_credentials() -> dict:
    return {
        "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "region_name": CREDENTIALS["AWS_REGION"],
    }


@pytest.fixture(scope="module")
def on_s3(s3_server):
    """The driver's (and so every rank's) environment pointing the storage layer at the loopback server."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {**CREDENTIALS, "AWS_ENDPOINT_URL": s3_server}.items():
            patch.setenv(name, value)
        yield s3_server


@pytest.fixture(scope="module")
def trained_on_s3(spark, prepared_flights, train_config_factory, on_s3):
    """One uninterrupted run and one killed mid-epoch and resumed, features and checkpoints on s3a://."""
    local_config, _ = prepared_flights
    work = f"s3a://{BUCKET}/work"  # Hadoop's scheme, as a Spark user writes it; the storage layer maps it
    filesystem, features = resolve(f"{work}/prepared/features")
    prepared = Layout.from_config(local_config).prepared
    pafs.copy_files(prepared.features_dir, features, destination_filesystem=filesystem)
    files.write_bytes(f"{work}/prepared/reference_profile.json", files.read_bytes(prepared.profile_file))
    spec = FeatureSpec.load(prepared.spec_file)

    settings = ("train.seed=11", "train.epochs=2", "train.checkpoint_every_steps=4", "train.nics=[lo]")
    config = train_config_factory(*settings).model_copy(update={"work_dir": work})
    layout = Layout.from_config(config)
    whole = launch(spark, build_plan(config, spec, layout, "whole"), config.train)
    interrupted = build_plan(config, spec, layout, "interrupted")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(faults.ENV, "train_step:1,6,1")  # rank 1 exits at epoch 1, step 6: after the step-4 checkpoint
        with pytest.raises(TrainingError, match="fault injection"):
            launch(spark, interrupted, config.train)
    resumed = launch(spark, interrupted, config.train)
    return {"work": work, "layout": layout, "spec": spec, "plan": interrupted, "whole": whole, "resumed": resumed}


def test_ranks_train_from_s3_features_and_resume_exactly_from_s3_checkpoints(trained_on_s3, tmp_path):
    work, whole, resumed = trained_on_s3["work"], trained_on_s3["whole"], trained_on_s3["resumed"]
    assert trained_on_s3["layout"].checkpoints("x") == f"{work}/checkpoints/x"
    assert resumed.resumed_from_epoch == 1 and resumed.resumed_from_step == 4
    assert whole.best_model_path == f"{work}/checkpoints/whole/best_model.pt"
    assert_same_weights(whole.best_model_path, resumed.best_model_path)  # bit for bit, read back from S3
    assert resumed.test_metrics == whole.test_metrics
    written = files.list_files(f"s3://{BUCKET}/work/checkpoints/interrupted")
    assert written == [f"s3://{BUCKET}/work/checkpoints/interrupted/{name}" for name in ("best_model.pt", "last.pt")]
    assert not (ROOT / "s3a:").exists() and not (tmp_path / "s3a:").exists()  # nothing went to a local "s3a:" folder


def test_a_model_registered_from_s3_to_an_s3_artifact_root_scores_through_spark_udf_in_a_fresh_process(
    spark, trained_on_s3, train_config_factory, on_s3, tmp_path
):
    """The S3-resumed weights and profile, registered with MLflow's artifact root on s3a://; `python -m pipeline
    score` in a new process loads that version from S3 and scores a day as this process's score run does."""
    import mlflow
    import pandas as pd

    root = f"s3a://{BUCKET}/mlartifacts"
    config = train_config_factory(f"tracking.artifact_root={root}", f"score.output_dir={tmp_path}/fresh")
    spec, plan, layout = trained_on_s3["spec"], trained_on_s3["plan"], Layout.from_config(config)
    runs.configure(config.tracking, config.spark.master)
    with mlflow.start_run(experiment_id=runs.ensure_experiment(config.tracking)):
        example = clean_split_rows(spark, layout, spec, "test", limit=5)[spec.input_columns]
        model = registry.log_and_register(
            spec,
            {**plan.model, "decision_threshold": 0.5},
            trained_on_s3["resumed"].best_model_path,
            config.tracking.model_name,
            example,
            profile_path=f"{trained_on_s3['work']}/prepared/reference_profile.json",
        )
    stored = files.list_files(f"s3://{BUCKET}/mlartifacts")
    assert any(name.endswith("/artifacts/best_model.pt") for name in stored), stored
    assert any(name.endswith("/artifacts/reference_profile.json") for name in stored), stored

    (tmp_path / "score.yaml").write_text(dump_yaml(config), encoding="utf-8")
    args = ["score", "--conf", str(tmp_path / "score.yaml"), "--date", SCORE_DATE, "--model-version", model.version]
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}  # the module's AWS_* settings included
    fresh = subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=tmp_path, env=env, capture_output=True)
    assert fresh.returncode == 0, fresh.stderr.decode()[-3000:]

    here = config.model_copy(update={"score": config.score.model_copy(update={"output_dir": f"{tmp_path}/here"})})
    run_score(spark, here, SCORE_DATE, model_version=model.version)
    key = "flight_id"
    by_fresh, by_here = (pd.read_parquet(tmp_path / n).sort_values(key).reset_index() for n in ("fresh", "here"))
    assert len(by_fresh) == len(by_here) > 100
    pd.testing.assert_series_equal(by_fresh["probability"], by_here["probability"])
    assert by_fresh[key].tolist() == by_here[key].tolist()


def test_an_atomic_write_replaces_the_whole_object(on_s3):
    uri = f"s3://{BUCKET}/atomic/state.bin"
    files.write_bytes(uri, b"first")
    files.write_bytes(uri, b"second, longer")
    assert files.read_bytes(uri) == b"second, longer"
    assert files.list_files(f"s3://{BUCKET}/atomic") == [uri]  # no temporary object left beside it
    files.delete(uri)
    assert not files.exists(uri)


def test_the_drivers_file_operations_work_on_s3_without_a_jvm(on_s3):
    """pipeline/storage/folders.py: globs (segments and Hadoop's {a,b}) over s3a:// names, sniffing, probes."""
    from pipeline.storage.folders import Storage

    storage = Storage()
    for key in ("raw/2013/jan.csv", "raw/2013/feb.csv", "raw/2014/jan.csv", "raw/2014/_SUCCESS", "raw/notes.txt"):
        files.write_bytes(f"s3://{BUCKET}/{key}", b"a,b\n1,2\n")
    root = f"s3a://{BUCKET}/raw"
    assert [f.path for f in storage.glob_files(f"{root}/*/jan.csv")] == [f"{root}/2013/jan.csv", f"{root}/2014/jan.csv"]
    assert [f.path for f in storage.glob_files(f"{root}/2013")] == [f"{root}/2013/feb.csv", f"{root}/2013/jan.csv"]
    assert len(storage.glob_files(f"{root}/{{2013,2014}}/*.csv")) == 3  # _SUCCESS is a marker, not data
    assert storage.glob_dirs(f"{root}/20*") == [f"{root}/2013", f"{root}/2014"]
    assert storage.glob_files(f"{root}/1999/*.csv") == []
    assert storage.first_line(f"{root}/2013/jan.csv") == "a,b" and storage.head_bytes(f"{root}/notes.txt", 3) == b"a,b"
    storage.check_writable(f"{root}/out", "score.output_dir")
    assert storage.glob_files(f"{root}/out") == []  # the probe is gone
