"""The one tracked-stage context manager, against a real SQLite MLflow store: FAILED on error, resume, nesting."""

from __future__ import annotations

import mlflow
import pytest

from pipeline.config.load import load_config
from pipeline.tracking import runs
from pipeline.tracking.tracked import tracked_stage

pytestmark = pytest.mark.integration


@pytest.fixture
def config(tmp_path):
    return load_config([], [f"tracking.uri=sqlite:///{tmp_path}/m.db", f"tracking.artifact_root={tmp_path}/a"])


def test_failed_stage_is_marked_failed_and_resumed_then_finished(config):
    with pytest.raises(RuntimeError, match="boom"), tracked_stage(config, "train", resume=True) as first:
        raise RuntimeError("boom")
    client = mlflow.tracking.MlflowClient()
    failed = client.get_run(first.run_id)
    assert failed.info.status == "FAILED" and failed.data.tags[runs.TAG_STATUS] == "failed"
    assert mlflow.active_run() is None

    with tracked_stage(config, "train", resume=True) as second:
        assert second.resumed and second.run_id == first.run_id
        assert client.get_run(first.run_id).data.tags[runs.TAG_STATUS] == "running"
    finished = client.get_run(first.run_id)
    assert finished.info.status == "FINISHED" and finished.data.tags[runs.TAG_STATUS] == "finished"

    with tracked_stage(config, "train", resume=True) as third:  # nothing unfinished left: a new run
        assert not third.resumed and third.run_id != first.run_id


def test_inner_stage_nests_under_the_outer_and_failure_ends_both(config):
    with pytest.raises(ValueError), tracked_stage(config, "pipeline") as outer:
        with tracked_stage(config, "prepare") as inner:
            raise ValueError("bad data")
    client = mlflow.tracking.MlflowClient()
    assert client.get_run(inner.run_id).data.tags["mlflow.parentRunId"] == outer.run_id
    assert client.get_run(inner.run_id).info.status == "FAILED"
    assert client.get_run(outer.run_id).info.status == "FAILED"
    assert {client.get_run(r).data.tags[runs.TAG_STATUS] for r in (inner.run_id, outer.run_id)} == {"failed"}
    assert mlflow.active_run() is None
