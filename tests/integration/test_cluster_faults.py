"""Faults on the real standalone cluster (tests/cluster.py: master + 2 workers, PostgreSQL-backed mlflow server with
basic-auth): an executor killed with SIGKILL, a Worker daemon killed and restarted, the tracking server down for
20 s, an executor killed mid-scoring, two train jobs promoting at once. Each train job must finish by itself with
the weights of an uninterrupted run.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient

from pipeline import faults
from pipeline.config.schema import PipelineConfig
from pipeline.layout import Layout
from pipeline.stages.environment import scoped_env
from pipeline.worker.checkpoint import BEST
from tests.cluster import ROOT, cluster_env, spark_home, submit, wait_for_workers
from tests.helpers import assert_same_weights

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)

EXPERIMENT = MODEL = "flights-delay"  # conf/flights.yaml
# About 140 steps per epoch on one core per rank: long enough to hit an epoch in its middle.
TRAIN = ["train.nics=[lo]", "train.epochs=3", "train.batch_size=128", "train.seed=5", "train.model.hidden=[32]"]
TRAIN += ["train.checkpoint_every_steps=20", "train.restart_wait_s=120", "tracking.model_name=flights-faults"]
RECOVERY: dict[str, dict] = {}  # what each fault cost, logged at the end of the module


def _sets(settings: list[str]) -> list[str]:
    return [arg for setting in settings for arg in ("--set", setting)]


def _popen(cluster: dict, job: str, args: list[str], env: dict, log_path: Path) -> subprocess.Popen:
    command = [str(spark_home() / "bin" / "spark-submit"), "--master", cluster["master"], str(ROOT / "jobs" / job)]
    command += ["--conf", str(ROOT / "conf/flights.yaml"), "--conf", str(ROOT / "conf/cluster.yaml"), *args]
    with open(log_path, "w") as out:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def _finish(job: subprocess.Popen, log_path: Path, timeout_s: float = 600) -> str:
    job.wait(timeout=timeout_s)
    output = log_path.read_text(errors="replace")
    assert job.returncode == 0, f"job exited {job.returncode}:\n{output[-4000:]}"
    return output


class JobUser:
    """MLflow calls from the test process as the job's user (the server refuses anonymous requests)."""

    def __init__(self, cluster: dict):
        self.env = {
            "MLFLOW_TRACKING_URI": cluster["tracking_uri"],
            "MLFLOW_TRACKING_USERNAME": cluster["username"],
            "MLFLOW_TRACKING_PASSWORD": cluster["password"],
        }
        self.uri = cluster["tracking_uri"]

    def __call__(self, call):
        with scoped_env(self.env):
            return call(MlflowClient(tracking_uri=self.uri))

    def newest_train_run(self, after: float = 0.0):
        def find(client):
            experiment = client.get_experiment_by_name(EXPERIMENT)
            if experiment is None:
                return None
            runs = client.search_runs(
                [experiment.experiment_id],
                "tags.`pipeline.stage` = 'train'",
                order_by=["attributes.start_time DESC"],
                max_results=1,
            )
            return runs[0] if runs and runs[0].info.start_time / 1000 >= after else None

        return self(find)

    def epochs_logged(self, run_id: str) -> list[int]:
        return sorted(m.step for m in self(lambda c: c.get_metric_history(run_id, "val_auc")))


def _wait(what: str, check, timeout_s: float = 300, job: subprocess.Popen | None = None, log_path=None):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if job is not None and job.poll() is not None:
            pytest.fail(f"{what}: the job ended first ({job.returncode}):\n{log_path.read_text()[-3000:]}")
        try:
            value = check()
        except Exception:  # noqa: BLE001 - a server that is starting answers with errors for a moment
            value = None
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"{what}: not after {timeout_s} s")


def executor_pids() -> list[int]:
    """The executor JVMs running on this machine (one application at a time in these tests)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                    if b"CoarseGrainedExecutorBackend" in cmdline.read():
                        pids.append(int(entry))
            except OSError:
                continue
    return sorted(pids)


@pytest.fixture(scope="module")
def faults_setup(standalone_cluster, flights_raw, tmp_path_factory):
    """Prepared features on the cluster and one uninterrupted train run to compare every faulted run with."""
    cluster = standalone_cluster
    work = tmp_path_factory.mktemp("faults-work")
    env = cluster_env(cluster, work, flights_raw)
    submit(cluster, "prepare.py", "--set", "train.nics=[lo]", env=env)
    user = JobUser(cluster)
    started = time.time()
    submit(cluster, "train.py", *_sets(TRAIN), env=env)
    baseline = user.newest_train_run(after=started)
    yield {"cluster": cluster, "work": work, "env": env, "user": user, "baseline": baseline}
    for name, numbers in RECOVERY.items():
        log.warning("recovery %s: %s", name, numbers)


def _best_weights(work: Path, run_id: str) -> str:
    return str(Path(_layout(work).checkpoints(run_id)) / BEST)


def _layout(work: Path) -> Layout:
    return Layout.from_config(PipelineConfig(work_dir=str(work)))


def _train_with_fault(setup: dict, name: str, inject, tmp_path: Path):
    """Start a train job, call inject(run_id) once epoch 1 is under way, and check the job recovered by itself."""
    cluster, user = setup["cluster"], setup["user"]
    log_path = tmp_path / f"{name}.log"
    started = time.time()
    job = _popen(cluster, "train.py", _sets(TRAIN), setup["env"], log_path)
    run = _wait("the train run starts", lambda: user.newest_train_run(after=started), job=job, log_path=log_path)
    _wait("epoch 0 logged", lambda: user.epochs_logged(run.info.run_id), job=job, log_path=log_path)
    time.sleep(2)  # into epoch 1, past its first mid-epoch checkpoint
    injected_at = time.time()
    inject()
    output = _finish(job, log_path)
    finished_at = time.time()
    run = user(lambda c: c.get_run(run.info.run_id))
    assert run.info.status == "FINISHED"
    assert user.epochs_logged(run.info.run_id) == [0, 1, 2]  # every epoch's metrics, each once
    baseline = setup["baseline"]
    assert_same_weights(
        _best_weights(setup["work"], baseline.info.run_id), _best_weights(setup["work"], run.info.run_id)
    )
    return run, output, {"injected_at": injected_at, "finished_at": finished_at, "started": started}


def _restart_numbers(setup: dict, run, times: dict) -> dict:
    restarts = setup["user"](lambda c: c.get_metric_history(run.info.run_id, "restarts"))
    relaunched = min(m.timestamp for m in restarts) / 1000
    baseline = setup["baseline"].info
    return {
        "restarts": len(restarts),
        "kill_to_relaunch_s": round(relaunched - times["injected_at"], 1),
        "job_s": round(times["finished_at"] - times["started"], 1),
        "uninterrupted_job_s": round((baseline.end_time - baseline.start_time) / 1000, 1),
        "detected_after_s": run.data.metrics["restart_detected_after_s"],
        "slot_wait_s": run.data.metrics["restart_slot_wait_s"],
    }


def test_executor_sigkill_mid_epoch_recovers_exactly(faults_setup, tmp_path):
    victims = []

    def kill_an_executor():
        victims.extend(executor_pids()[:1])
        assert victims, "no executor JVM found to kill"
        os.kill(victims[0], signal.SIGKILL)

    run, output, times = _train_with_fault(faults_setup, "executor-sigkill", kill_an_executor, tmp_path)
    assert int(run.data.tags["train.restarts"]) >= 1, output[-3000:]
    assert "resuming from checkpoint" in output and "steps of the next" in output  # mid-epoch, not from epoch 1's start
    RECOVERY["executor SIGKILL"] = _restart_numbers(faults_setup, run, times)


def test_worker_daemon_killed_and_restarted_recovers_exactly(faults_setup, tmp_path):
    cluster = faults_setup["cluster"]
    worker = cluster["services"]["worker1"]

    def crash_and_restart_worker():
        worker.kill()  # the daemon and its executor JVM: a node that went down
        time.sleep(5)
        worker.start()  # back, and registered with the master again

    run, output, times = _train_with_fault(faults_setup, "worker-restart", crash_and_restart_worker, tmp_path)
    assert int(run.data.tags["train.restarts"]) >= 1, output[-3000:]
    wait_for_workers(cluster, 2)
    RECOVERY["worker daemon restart"] = _restart_numbers(faults_setup, run, times)


def test_tracking_server_down_for_20s_loses_no_epoch_metric(faults_setup, tmp_path):
    server = faults_setup["cluster"]["services"]["mlflow"]

    def server_away_20s():
        server.kill()
        time.sleep(20)
        server.start()

    run, output, times = _train_with_fault(faults_setup, "tracking-down", server_away_20s, tmp_path)
    assert "train.restarts" not in run.data.tags  # the ranks never noticed: nothing to restart
    RECOVERY["tracking server down 20 s"] = {"job_s": round(times["finished_at"] - times["started"], 1)}


def test_executor_killed_mid_scoring_gives_the_same_partition(faults_setup, tmp_path):
    cluster, env = faults_setup["cluster"], faults_setup["env"]
    args = ["--set", "train.nics=[lo]", "--set", "tracking.model_name=flights-faults"]
    submit(cluster, "score.py", *args, "--batch-id", "clean", env=env)
    marker = tmp_path / "executor-killed"
    faulted = {**env, faults.ENV: "score_kill_executor", faults.ONCE_ENV: str(marker)}
    out = submit(cluster, "score.py", *args, "--batch-id", "faulted", env=faulted)
    assert marker.exists()  # an executor really was killed mid-scoring
    assert "Lost executor" in out.stdout + out.stderr or "ExecutorLost" in out.stdout + out.stderr
    layout = _layout(faults_setup["work"])
    clean = pq.read_table(layout.predictions.partition("batch=clean")).to_pandas()
    again = pq.read_table(layout.predictions.partition("batch=faulted")).to_pandas()
    keys = ["flight_id"]  # data.key_columns of conf/flights.yaml
    assert not again.duplicated(keys).any() and len(again) == len(clean)
    merged = clean.merge(again, on=keys, suffixes=("", "_faulted"))
    assert len(merged) == len(clean) and (merged["probability"] == merged["probability_faulted"]).all()


def test_two_train_jobs_promoting_at_once_leave_the_better_as_champion(faults_setup, tmp_path):
    """One core each (spark.cores.max=1, one rank), two seeds, a model name of their own: both find no champion,
    both promote, and the aliases must end on the better of the two whatever order the requests landed in."""
    cluster, user = faults_setup["cluster"], faults_setup["user"]
    one_core = "spark.extra={spark.executor.cores: '1', spark.task.cpus: '1', spark.cores.max: '1'}"
    jobs = []
    for seed in (1, 2):
        settings = ["train.nics=[lo]", "train.num_proc=1", "train.epochs=1", f"train.seed={seed}", one_core]
        settings += ["train.model.hidden=[32]", "tracking.model_name=flights-race"]
        log_path = tmp_path / f"race-{seed}.log"
        jobs.append((_popen(cluster, "train.py", _sets(settings), faults_setup["env"], log_path), log_path))
    for job, log_path in jobs:
        _finish(job, log_path)

    def outcome(client):
        versions = client.search_model_versions("name='flights-race'")
        metrics = {str(v.version): client.get_run(v.run_id).data.metrics["test_auc"] for v in versions}
        return metrics, str(client.get_model_version_by_alias("flights-race", "champion").version)

    metrics, champion = user(outcome)
    assert len(metrics) == 2
    assert metrics[champion] == max(metrics.values()), (metrics, champion)
