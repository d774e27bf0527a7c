"""`tune`: an Optuna study whose trials are real 2-worker Horovod runs on the flights subsample.

Covers a completed, a pruned and a failed trial in one study, registration of the best, a no-op rerun, resume of
a study whose process was killed with SIGKILL mid-trial, and the slot check for parallel trials.
"""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import time

import mlflow
import optuna
import pytest
import yaml

from pipeline.errors import ConfigError, TrainingError
from pipeline.layout import Layout
from pipeline.stages import tune
from pipeline.tracking import runs
from tests.helpers import ROOT

pytestmark = pytest.mark.integration
SHORT_TRAINING = ["train.epochs=3", "train.batch_size=512", "train.max_steps_per_epoch=25", "train.patience=5"]


def tune_overrides(tmp_path, study: str, *more: str) -> list[str]:
    return [
        *SHORT_TRAINING,
        f"tune.storage=sqlite:///{tmp_path}/optuna.db",
        f"tune.study_name={study}",
        f"tracking.model_name={study}",
        "tune.pruner_startup_trials=1",
        "tune.pruner_warmup_epochs=0",
        *more,
    ]


def test_complete_pruned_and_failed_trials_then_best_registered(spark, train_config_factory, tmp_path):
    config = train_config_factory(
        *tune_overrides(
            tmp_path,
            "study-a",
            "tune.trials=3",
            "tune.space={train.lr: {loguniform: [0.000001, 0.01]}, train.batch_size: {choice: [512, 100000]}}",
        )
    )
    # Queue the three trials so the test knows which one does what (a user may enqueue trials the same way).
    study = optuna.create_study(study_name="study-a", storage=config.tune.storage, direction="maximize")
    study.enqueue_trial({"train.lr": 0.003, "train.batch_size": "512"})  # learns
    study.enqueue_trial({"train.lr": 0.000001, "train.batch_size": "512"})  # barely moves: pruned after epoch 1
    study.enqueue_trial({"train.lr": 0.003, "train.batch_size": "100000"})  # larger than a worker's shard

    outcome = tune.run(spark, config, Layout.from_config(config))

    assert outcome.counts == {"complete": 1, "pruned": 1, "failed": 1}
    by_number = {t.number: t for t in outcome.trials}
    assert by_number[1].epochs_run == 1 < by_number[1].max_epochs == 3  # the pruner saved two epochs
    assert "train.batch_size=100000" in by_number[2].reason
    assert outcome.best.number == 0 and outcome.best.value > 0.6
    assert outcome.model is not None and outcome.promotion.promoted  # no champion yet

    runs.configure(config.tracking, config.spark.master)
    client = mlflow.tracking.MlflowClient()
    experiment = client.get_experiment_by_name(config.tracking.experiment).experiment_id
    children = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{outcome.run_id}'")
    states = {r.data.tags.get("tune.trial"): (r.info.status, r.data.tags.get("tune.state")) for r in children}
    assert states == {"0": ("FINISHED", "complete"), "1": ("FINISHED", "pruned"), "2": ("FAILED", "failed")}
    pruned = next(r for r in children if r.data.tags.get("tune.trial") == "1")
    assert [m.step for m in client.get_metric_history(pruned.info.run_id, "val_auc")] == [0]
    tune_run = client.get_run(outcome.run_id)
    assert tune_run.data.metrics["trials_pruned"] == 1 and tune_run.data.metrics["test_auc"] > 0.6
    artifacts = {a.path for a in client.list_artifacts(outcome.run_id, "tune")}
    assert {"tune/best_params.yaml", "tune/trials.json", "tune/optimization_history.png"} <= artifacts
    best = yaml.safe_load(mlflow.artifacts.load_text(f"runs:/{outcome.run_id}/tune/best_params.yaml"))
    assert best == {"train": {"lr": 0.003, "batch_size": 512}}  # a ready-to-use overlay
    version = client.get_model_version_by_alias("study-a", "candidate")
    assert version.run_id == outcome.run_id

    again = tune.run(spark, config, Layout.from_config(config))  # a finished study: nothing runs
    assert again.run_id is None and again.best.number == 0 and again.counts == outcome.counts
    assert len(client.search_runs([experiment], f"tags.mlflow.parentRunId = '{outcome.run_id}'")) == 3


@pytest.mark.slow  # a study killed with SIGKILL mid-trial and resumed: two studies in one test
def test_a_killed_study_resumes_its_interrupted_trial_from_the_checkpoint(
    spark, train_config_factory, prepared_flights, flights_raw, tmp_path
):
    overrides = tune_overrides(
        tmp_path,
        "study-b",
        "tune.trials=1",
        "tune.space={train.lr: {loguniform: [0.001, 0.01]}}",
        "train.batch_size=128",  # longer epochs, so the kill lands inside the trial
        "train.max_steps_per_epoch=150",
    )
    config = train_config_factory(*overrides)
    base = [f"work_dir={config.work_dir}", "spark.shuffle_partitions=4", f"tracking.uri={config.tracking.uri}"]
    base += [f"tracking.artifact_root={config.tracking.artifact_root}", "train.model.hidden=[64,64]"]
    command = [sys.executable, "-m", "pipeline", "tune", "--conf", "conf/flights.yaml", "--conf", "conf/local.yaml"]
    for item in base + overrides:
        command += ["--set", item]
    env = {**os.environ, "RAW_DIR": str(flights_raw)}
    started = time.time()
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    checkpoints = Layout.from_config(config).checkpoints("*")
    try:  # SIGKILL the whole process group (driver, JVM, ranks) as soon as the first epoch is checkpointed
        deadline = time.monotonic() + 240
        while not any(os.path.getmtime(p) > started for p in glob.glob(f"{checkpoints}/last.pt")):
            assert process.poll() is None, "the tune process ended before its first checkpoint"
            assert time.monotonic() < deadline, "the tune process never checkpointed an epoch"
            time.sleep(0.2)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)

    outcome = tune.run(spark, config, Layout.from_config(config))

    study = optuna.load_study(study_name="study-b", storage=config.tune.storage)
    first, second = study.trials
    assert first.user_attrs.get("interrupted") and first.state == optuna.trial.TrialState.FAIL
    assert second.params == first.params and second.state == optuna.trial.TrialState.COMPLETE
    assert outcome.counts == {"complete": 1, "pruned": 0, "failed": 0}
    runs.configure(config.tracking, config.spark.master)
    train_run = mlflow.tracking.MlflowClient().get_run(second.user_attrs["train_run_id"])
    result = runs.load_dict(train_run.info.run_id, "training/result.json")
    assert result["resumed_from_epoch"] == 1  # the killed trial's train run, continued after its checkpoint
    assert [m.step for m in mlflow.tracking.MlflowClient().get_metric_history(train_run.info.run_id, "val_auc")] == [
        0,
        1,
        2,
    ]


def test_parallel_trials_need_the_slots_before_the_first_trial(spark, train_config_factory, tmp_path):
    space = "tune.space={train.lr: {uniform: [0.001, 0.01]}}"
    horovod = train_config_factory(*tune_overrides(tmp_path, "study-c", "tune.parallel=2", space))
    with pytest.raises(ConfigError, match="Fix: set train.backend=torch_distributor for parallel trials"):
        tune.run(spark, horovod, Layout.from_config(horovod))
    config = train_config_factory(
        *tune_overrides(tmp_path, "study-c", "tune.parallel=2", "train.backend=torch_distributor", space)
    )
    started = time.monotonic()
    with pytest.raises(TrainingError) as err:
        tune.run(spark, config, Layout.from_config(config))
    assert time.monotonic() - started < 30
    assert "tune.parallel=2 trials x train.num_proc=2 workers need 4 task slots" in str(err.value)
    assert "Fix: lower tune.parallel to 1" in str(err.value)
    assert not os.path.exists(tmp_path / "optuna.db")  # no study was even opened
    # On a local master pyspark would hand every concurrent trial the same GPUs: refused, naming the fix.
    gpus = train_config_factory(
        *tune_overrides(tmp_path, "study-c", "tune.parallel=2", "train.backend=torch_distributor", space),
        "train.device=gpu",
    )
    with pytest.raises(
        ConfigError, match="tune.parallel=2 with GPU training on a local master .* Fix: tune.parallel=1"
    ):
        tune.run(spark, gpus, Layout.from_config(gpus))
