"""Training ranks on object storage: features read and checkpoints written on s3:// of a real S3-protocol server
(moto's server mode, started on loopback by this module), with no shared file system involved on the rank side.

Spark itself cannot write s3a:// here (the hadoop-aws jars come from Maven, which this machine cannot reach), so
the prepared features are copied up the way a user's prepare on a cluster would leave them.
"""

from __future__ import annotations

import os
import sys

import pyarrow.fs as pafs
import pytest

from pipeline import faults
from pipeline.errors import TrainingError
from pipeline.launch.launchers import launch
from pipeline.launch.planning import build_plan
from pipeline.layout import Layout
from pipeline.model.spec import FeatureSpec
from pipeline.storage import files
from pipeline.storage.uri_fs import resolve
from tests.helpers import ROOT, assert_same_weights, free_port
from tests.services import Service, http_ok

pytestmark = [pytest.mark.integration, pytest.mark.slow]
BUCKET = "sparktrain"
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


@pytest.fixture
def on_s3(s3_server, monkeypatch):
    """The driver's (and so every rank's) environment pointing the storage layer at the loopback server."""
    for name, value in {**CREDENTIALS, "AWS_ENDPOINT_URL": s3_server}.items():
        monkeypatch.setenv(name, value)
    return s3_server


def test_ranks_train_from_s3_features_and_resume_exactly_from_s3_checkpoints(
    spark, prepared_flights, train_config_factory, on_s3, monkeypatch, tmp_path
):
    local_config, _ = prepared_flights
    work = f"s3a://{BUCKET}/work"  # Hadoop's scheme, as a Spark user writes it; the storage layer maps it
    filesystem, features = resolve(f"{work}/prepared/features")
    pafs.copy_files(Layout.from_config(local_config).prepared.features_dir, features, destination_filesystem=filesystem)
    spec = FeatureSpec.load(Layout.from_config(local_config).prepared.spec_file)

    settings = ("train.seed=11", "train.epochs=2", "train.checkpoint_every_steps=4", "train.nics=[lo]")
    config = train_config_factory(*settings).model_copy(update={"work_dir": work})
    layout = Layout.from_config(config)
    assert layout.checkpoints("x") == f"{work}/checkpoints/x"

    whole = launch(spark, build_plan(config, spec, layout, "whole"), config.train)
    interrupted = build_plan(config, spec, layout, "interrupted")
    monkeypatch.setenv(faults.ENV, "train_step:1,6,1")  # rank 1 exits at epoch 1, step 6: after the step-4 checkpoint
    with pytest.raises(TrainingError, match="fault injection"):
        launch(spark, interrupted, config.train)
    monkeypatch.delenv(faults.ENV)
    resumed = launch(spark, interrupted, config.train)

    assert resumed.resumed_from_epoch == 1 and resumed.resumed_from_step == 4
    assert whole.best_model_path == f"{work}/checkpoints/whole/best_model.pt"
    assert_same_weights(whole.best_model_path, resumed.best_model_path)  # bit for bit, read back from S3
    assert resumed.test_metrics == whole.test_metrics
    written = files.list_files(f"s3://{BUCKET}/work/checkpoints/interrupted")
    assert written == [f"s3://{BUCKET}/work/checkpoints/interrupted/{name}" for name in ("best_model.pt", "last.pt")]
    assert not (ROOT / "s3a:").exists() and not (tmp_path / "s3a:").exists()  # nothing went to a local "s3a:" folder


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
