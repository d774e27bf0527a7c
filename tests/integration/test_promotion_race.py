"""Two jobs promoting versions of one registered model at the same time, on a real MLflow store: the steps of
pipeline/tracking/promotion_race.py in the interleavings that matter, and registry.promote end to end."""

from __future__ import annotations

import json
import time

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from pipeline.tracking import promotion_race, registry
from pipeline.tracking.registry import CHAMPION, RegisteredModel

pytestmark = pytest.mark.integration
NAME, METRIC = "race-model", "test_auc"


@pytest.fixture
def client(tmp_path, monkeypatch):
    """A fresh SQLite-backed store with three versions whose runs scored test_auc 0.60 (v1), 0.70 (v2), 0.72 (v3)."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(tracking_uri=uri)
    client.create_registered_model(NAME)
    experiment = client.create_experiment("race", artifact_location=str(tmp_path / "artifacts"))
    for value in (0.60, 0.70, 0.72):
        run = client.create_run(experiment)
        client.log_metric(run.info.run_id, METRIC, value)
        client.set_terminated(run.info.run_id)
        client.create_model_version(NAME, source=str(tmp_path / "m"), run_id=run.info.run_id)
    client.set_registered_model_alias(NAME, CHAMPION, "1")
    return client


def _champion(client) -> str:
    return str(client.get_model_version_by_alias(NAME, CHAMPION).version)


def test_the_worse_candidate_writing_last_hands_the_alias_to_the_better(client):
    # Both read v1 as champion and beat it; v3 (0.72) moves the alias first, v2 (0.70) last.
    promotion_race.declare_intent(client, NAME, "2", METRIC, 0.70)
    promotion_race.declare_intent(client, NAME, "3", METRIC, 0.72)
    client.set_registered_model_alias(NAME, CHAMPION, "3")
    assert promotion_race.settle(client, NAME, CHAMPION, "3", METRIC, True, "1") is None
    client.set_registered_model_alias(NAME, CHAMPION, "2")  # the stale write
    assert promotion_race.settle(client, NAME, CHAMPION, "2", METRIC, True, "1") == "3"
    assert _champion(client) == "3"


def test_the_better_candidate_writing_last_keeps_it(client):
    promotion_race.declare_intent(client, NAME, "2", METRIC, 0.70)
    client.set_registered_model_alias(NAME, CHAMPION, "2")
    promotion_race.declare_intent(client, NAME, "3", METRIC, 0.72)
    assert promotion_race.settle(client, NAME, CHAMPION, "2", METRIC, True, "1") == "3"  # v3 declared in between
    client.set_registered_model_alias(NAME, CHAMPION, "3")
    assert promotion_race.settle(client, NAME, CHAMPION, "3", METRIC, True, "1") is None
    assert _champion(client) == "3"


def test_old_intents_do_not_undo_a_later_rollback(client):
    stale = {"metric": METRIC, "value": 0.72, "time": time.time() - promotion_race.RACE_WINDOW_S - 60}
    client.set_model_version_tag(NAME, "3", promotion_race.INTENT_TAG, json.dumps(stale))
    promotion_race.declare_intent(client, NAME, "2", METRIC, 0.70)
    client.set_registered_model_alias(NAME, CHAMPION, "2")
    assert promotion_race.settle(client, NAME, CHAMPION, "2", METRIC, True, "1") is None
    assert _champion(client) == "2"


def test_promote_end_to_end_reports_the_concurrent_winner(client):
    def model(version: str) -> RegisteredModel:
        found = client.get_model_version(NAME, version)
        return RegisteredModel(NAME, version, found.run_id, f"models:/{NAME}/{version}")

    # v3 promoted while v2's job was still deciding: v2 then compares with v3 at promotion time and stays out.
    first = registry.promote(model("3"), METRIC, True, force=False)
    second = registry.promote(model("2"), METRIC, True, force=False)
    assert first.promoted and not second.promoted
    assert second.previous_champion_version == "3" and "does not beat champion 0.72000" in second.reason
    assert _champion(client) == "3"
