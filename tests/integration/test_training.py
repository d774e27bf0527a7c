"""Real 2-worker training through horovod.spark.run and TorchDistributor on the flights subsample."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import horovod.spark
import pytest
from mlflow.tracking import MlflowClient

from pipeline import faults
from pipeline.errors import TrackingError, TrainingError
from pipeline.launch.launchers import horovod_env
from pipeline.launch.planning import build_plan
from pipeline.layout import Layout
from pipeline.model.spec import CategoricalVocab, FeatureSpec, LabelSpec, NumericStats
from pipeline.tracking import runs
from pipeline.worker.backends import HorovodBackend
from pipeline.worker.rank_entry import run_rank
from tests.helpers import assert_same_weights, free_port, run_train, write_features
from tests.services import Service, http_ok

pytestmark = pytest.mark.integration


def test_horovod_two_workers_learn_and_only_rank0_logs(trained_flights):
    config, outcome = trained_flights
    runs.configure(config.tracking, config.spark.master)  # other tests point MLflow at their own stores
    result = outcome.result
    assert result.world_size == 2
    assert result.best_metric >= 0.65  # val AUC; predicting the base rate gives 0.5
    assert result.test_metrics["test_auc"] >= 0.65
    assert len(result.history) == 3
    history = runs.run_metric_history(outcome.run_id, "val_auc")
    assert sorted(step for step, _ in history) == [0, 1, 2]  # one value per epoch: rank 1 never logged
    assert Path(result.best_model_path).exists()
    # train.device=auto with no GPU declared to Spark: CPU, whatever CUDA the driver might see, and it says why
    assert [w["device"] for w in result.workers] == ["cpu", "cpu"]
    assert {w["device_reason"] for w in result.workers} == {"train.device resolved to cpu"}


def test_torch_distributor_backend_trains_the_same_loop(spark, train_config_factory):
    config = train_config_factory("train.backend=torch_distributor")
    result = run_train(spark, config).result
    assert result.world_size == 2
    assert result.best_metric >= 0.65
    assert len(result.history) == 3


@pytest.fixture
def uninterrupted(trained_flights_session):
    """The run every interrupted one below must reproduce exactly: the suite's shared training, same settings."""
    return trained_flights_session[1]


@pytest.mark.slow  # exact resume after a lost rank stays in the inner loop (the relaunch test below)
def test_killed_worker_fails_fast_then_rerun_resumes_exactly(spark, train_config_factory, monkeypatch, uninterrupted):

    config = train_config_factory()
    monkeypatch.setenv(faults.ENV, "train_step:1,5,1")  # rank 1 hard-exits at epoch 1 (0-based), step 5
    started = time.monotonic()
    with pytest.raises(TrainingError) as err:
        run_train(spark, config)
    assert time.monotonic() - started < 120  # bounded: no waiting on the dead rank forever
    assert "fault injection" in str(err.value)  # the worker's own last lines reach the driver
    monkeypatch.delenv(faults.ENV)

    resumed = run_train(spark, config)
    assert resumed.result.resumed_from_epoch == 1  # epoch 0 was checkpointed, epoch 1 was not
    assert resumed.result.epochs_run == uninterrupted.result.epochs_run == 3
    assert_same_weights(uninterrupted.result.best_model_path, resumed.result.best_model_path)
    assert resumed.result.test_metrics == uninterrupted.result.test_metrics


def test_uneven_shards_finish_and_all_ranks_return_the_result(spark, train_config_factory, tmp_path):
    config = train_config_factory("train.epochs=2", "train.batch_size=64", "train.monitor=val_loss")
    layout = Layout.from_config(config.model_copy(update={"work_dir": str(tmp_path)}))
    spec = FeatureSpec(  # two numeric columns and one categorical with 5 + 2 (null, unseen) indices
        input_schema={"a": "double", "b": "double", "c": "string", "label": "int"},
        numeric=tuple(NumericStats(name, 0, 0, 1, missing_indicator=False) for name in ("a", "b")),
        categorical=(CategoricalVocab("c", tuple("01234")),),
        label=LabelSpec("label", "binary"),
    )
    names = (*spec.numeric_columns, *spec.categorical_columns)
    for split, sizes in {"train": [3000, 800, 250], "val": [500, 37], "test": [300]}.items():
        write_features(Path(layout.prepared.features(split)), sizes, names=names)
    plan = build_plan(config, spec, layout, "uneven")
    results = horovod.spark.run(
        run_rank,
        args=(plan, HorovodBackend),
        num_proc=2,
        start_timeout=60,
        env=horovod_env(dict(os.environ), ["lo"], None),
    )
    # Every rank returns rank 0's result: TorchDistributor's local mode keeps whichever process writes last.
    assert len(results) == 2 and results[0] == results[1]
    result = results[0]
    assert result.steps_per_epoch == 1050 // 64  # the smaller shard (800 + 250 rows) sets the pace
    assert result.epochs_run == 2


def test_slot_check_errors_before_any_run(spark, train_config_factory):
    config = train_config_factory("train.num_proc=3", "train.start_timeout_s=600")
    started = time.monotonic()
    with pytest.raises(TrainingError) as err:
        run_train(spark, config)
    assert time.monotonic() - started < 30  # instead of Horovod's 600 s start_timeout
    message = str(err.value)
    assert "train.num_proc=3" in message and "only 2 task slot(s)" in message and "local[2]" in message


def test_gpu_training_with_a_horovod_built_without_nccl_is_refused_before_any_run(spark, train_config_factory):
    """This machine's Horovod is Gloo-only: a CUDA allreduce would throw inside its background loop and every rank
    would wait forever, so asking for GPUs with it is a one-line error naming the fixes."""
    from pipeline.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        run_train(spark, train_config_factory("train.device=gpu"))
    message = str(err.value)
    assert "Horovod was built without NCCL" in message and "no [X] NCCL" in message
    assert "train.backend=torch_distributor" in message and "train.device=cpu" in message


def test_torch_distributor_on_gpus_of_a_local_master_needs_the_drivers_gpus_declared(spark, train_config_factory):
    """pyspark's TorchDistributor would otherwise fail with "GPUs were unable to be found on the driver"."""
    from pipeline.errors import ConfigError

    config = train_config_factory("train.device=gpu", "train.backend=torch_distributor")
    with pytest.raises(ConfigError) as err:
        run_train(spark, config)
    assert "spark.driver.resource.gpu.amount=0 for train.num_proc=2" in str(err.value)
    assert "spark.driver.resource.gpu.discoveryScript" in str(err.value)


def test_batch_larger_than_a_worker_shard_is_a_config_error_before_any_run(spark, train_config_factory):
    import mlflow

    from pipeline.errors import ConfigError

    config = train_config_factory("train.batch_size=100000", "train.model.hidden=[8]")
    runs.configure(config.tracking, config.spark.master)
    experiment = mlflow.get_experiment_by_name(config.tracking.experiment)
    runs_before = len(mlflow.search_runs([experiment.experiment_id])) if experiment else 0
    started = time.monotonic()
    with pytest.raises(ConfigError) as err:
        run_train(spark, config)
    assert time.monotonic() - started < 30
    message = str(err.value)
    assert "train.batch_size=100000" in message and "Fix: lower train.batch_size" in message
    assert "resume" not in message  # a config mistake: re-running cannot fix it
    experiment = mlflow.get_experiment_by_name(config.tracking.experiment)
    assert (len(mlflow.search_runs([experiment.experiment_id])) if experiment else 0) == runs_before


FLAKY_MODEL = '''
"""A user's network with a bug that shows on its 4th training batch in a process (after the pre-launch check)."""
from pipeline.model.networks import mlp

calls = {"n": 0}


def build(inputs, params):
    net = mlp(inputs, {"hidden": [8], "activation": "relu", "dropout": 0.0, "norm": "none", "embedding_dim": None})
    forward = net.forward

    def flaky(batch):
        if net.training:
            calls["n"] += 1
            if calls["n"] == 4:
                raise ValueError("column 'dep_delay' has an unexpected shape in batch 4")
        return forward(batch)

    net.forward = flaky
    return net
'''


def test_lost_rank_is_relaunched_in_the_same_run_and_resumes_mid_epoch_exactly(
    spark, train_config_factory, monkeypatch, tmp_path, uninterrupted
):

    # Checkpoints every 2 steps; rank 1 dies once at epoch 1, step 5: the relaunch continues at step 4.
    config = train_config_factory("train.max_restarts=2", "train.checkpoint_every_steps=2")
    monkeypatch.setenv(faults.ENV, "train_step:1,5,1")
    monkeypatch.setenv(faults.ONCE_ENV, str(tmp_path / "fired"))
    outcome = run_train(spark, config)
    assert (tmp_path / "fired").exists()  # the fault did fire: this run really lost a rank
    result = outcome.result
    assert (result.resumed_from_epoch, result.resumed_from_step) == (1, 4)
    assert result.epochs_run == uninterrupted.result.epochs_run == 3
    assert_same_weights(uninterrupted.result.best_model_path, result.best_model_path)
    assert result.test_metrics == uninterrupted.result.test_metrics

    runs.configure(config.tracking, config.spark.master)
    run = MlflowClient().get_run(outcome.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["train.restarts"] == "1"
    cause = run.data.tags["train.restart.1"]
    assert "non-zero status" in cause, cause  # the launcher's error: a process exited, no Python error of a rank
    assert run.data.metrics["restarts"] == 1
    assert sorted(step for step, _ in runs.run_metric_history(outcome.run_id, "val_auc")) == [0, 1, 2]


@pytest.mark.parametrize("backend", ["horovod", "torch_distributor"])
def test_a_ranks_own_error_is_not_retried(spark, train_config_factory, tmp_path, backend):
    """Both launchers read the ranks' output (Horovod's "[1]<stdout>:" lines, torchrun's "[rank1]:" ones relayed by
    TorchDistributor), so the rank's own exception is told from a lost peer."""
    (tmp_path / "flaky_net.py").write_text(FLAKY_MODEL)
    config = train_config_factory(
        f"train.backend={backend}",
        "train.max_restarts=3",
        "train.model.type=custom",
        "train.model.factory=flaky_net:build",
        f"train.model.code={tmp_path / 'flaky_net.py'}",
    )
    with pytest.raises(TrainingError) as err:
        run_train(spark, config)
    message = str(err.value)
    assert "ValueError: column 'dep_delay' has an unexpected shape in batch 4" in message
    assert "more than train.max_restarts" not in message  # failed at once, not after 3 restarts
    runs.configure(config.tracking, config.spark.master)
    found = MlflowClient().search_runs(
        [MlflowClient().get_experiment_by_name(config.tracking.experiment).experiment_id]
    )
    assert [r.data.metrics.get("restarts") for r in found] == [None]


@pytest.mark.slow  # an outage of several minutes of waiting by design
def test_tracking_server_gone_past_the_limit_fails_naming_it_then_rerun_completes(
    spark, train_config_factory, tmp_path
):
    """The server dies after epoch 0 and stays away: training still finishes, the job fails at the outage limit
    naming the URL, and once the server is back the same command resumes, back-fills epochs 1-2 and registers."""
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    command += ["--backend-store-uri", f"sqlite:///{tmp_path}/mlflow.db", "--artifacts-destination", str(tmp_path)]
    server = Service("mlflow", command, env=dict(os.environ), folder=tmp_path, ready=lambda _: http_ok(f"{uri}/health"))
    server.start()
    try:
        config = train_config_factory(
            f"tracking.uri={uri}", "tracking.artifact_root=mlflow-artifacts:/", "tracking.outage_limit_s=5"
        )
        killer = threading.Thread(target=_kill_after_first_epoch, args=(uri, server), daemon=True)
        killer.start()
        started = time.monotonic()
        with pytest.raises(TrackingError, match=f"MLflow tracking server {uri} did not answer"):
            run_train(spark, config)
        assert time.monotonic() - started < 180  # the limit, not MLflow's 4 minutes of retries per request
        killer.join()

        server.start()
        outcome = run_train(spark, config)  # re-opens the same run: training is done, only the bookkeeping is left
        assert outcome.result.resumed_from_epoch == 3 and outcome.model is not None
        history = MlflowClient(tracking_uri=uri).get_metric_history(outcome.run_id, "val_auc")
        assert sorted(m.step for m in history) == [0, 1, 2]
        assert MlflowClient(tracking_uri=uri).get_run(outcome.run_id).info.status == "FINISHED"
    finally:
        server.stop()


def _kill_after_first_epoch(uri: str, server: Service) -> None:
    """Test side: SIGKILL the server once epoch 0 of the (only) run has been logged."""
    client = MlflowClient(tracking_uri=uri)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
        if runs and client.get_metric_history(runs[0].info.run_id, "val_auc"):
            server.kill()
            return
        time.sleep(0.3)
