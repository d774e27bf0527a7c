"""Faults on the real standalone cluster (tests/cluster.py: master + 2 workers, PostgreSQL-backed mlflow server with
basic-auth): an executor killed with SIGKILL, a Worker daemon killed and restarted, the tracking server down for
20 s, an executor killed mid-scoring, two train jobs promoting at once. Each train job must finish by itself with
the weights of an uninterrupted run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from mlflow.tracking import MlflowClient

from pipeline import faults
from pipeline.config.schema import PipelineConfig
from pipeline.environment import scoped_env
from pipeline.layout import Layout
from pipeline.worker.checkpoint import BEST, LAST
from tests.cluster import ROOT, spark_home, submit, wait_for_workers
from tests.helpers import assert_same_weights

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EXPERIMENT = "flights-delay"  # conf/flights.yaml
SCORE_DATE = "2013-12-30"
# About 160 steps per epoch on one core per rank (few, yet step 50 stays well inside an epoch); the faults strike at
# the first mid-epoch checkpoint of an epoch (step 50), so the relaunch continues inside an epoch. Rank 0 holds right
# after writing it (the `hold_at_checkpoint` seam) until the fault has struck: the resume point does not depend on
# the load.
TRAIN = ["train.nics=[lo]", "train.epochs=3", "train.batch_size=128", "train.seed=5", "train.model.hidden=[32]"]
TRAIN += ["train.checkpoint_every_steps=50", "train.restart_wait_s=120", "tracking.model_name=flights-faults"]
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


def _wait(what: str, check, timeout_s: float = 300, job: subprocess.Popen | None = None, log_path=None, poll_s=0.5):
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
        time.sleep(poll_s)
    pytest.fail(f"{what}: not after {timeout_s} s")


def executor_pids(cluster: dict) -> list[int]:
    """The executor JVMs this cluster's Workers run (one application at a time on it). Only below its Workers: a
    test beside this one (pytest-xdist) may run local-cluster executors of its own."""
    workers = [s for name, s in cluster["services"].items() if name.startswith("worker") and s.running()]
    below = set().union(*(_process_tree(worker.process.pid) for worker in workers))
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                    if b"CoarseGrainedExecutorBackend" in cmdline.read() and int(entry) in below:
                        pids.append(int(entry))
            except OSError:
                continue
    return sorted(pids)


def _process_tree(root: int) -> set[int]:
    """`root` and every process below it (the executor JVM, its Python workers and the Horovod ranks they start)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    tree, todo = set(), [root]
    while todo:
        pid = todo.pop()
        tree.add(pid)
        todo.extend(children.get(pid, []))
    return tree


def _wait_gone(pids: set[int], timeout_s: float = 60) -> None:
    def gone() -> bool:
        return not any(os.path.exists(f"/proc/{pid}") and "Z" not in _state(pid) for pid in pids)

    _wait(f"processes {sorted(pids)} to end", gone, timeout_s, poll_s=0.05)


def _state(pid: int) -> str:
    """A process's state letter ('Z' for a zombie its parent has not reaped yet), '' when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return ""


@pytest.fixture(scope="module")
def faults_setup(cluster_prepared, spark, tmp_path_factory):
    """The prepared features on the cluster and an uninterrupted run of the same training on them, in this process
    (local[2], the same two Horovod ranks and plan): every faulted run must end with its weights."""
    from pipeline.config.load import load_config
    from tests.helpers import run_train

    cluster, work, env = cluster_prepared["cluster"], cluster_prepared["work"], cluster_prepared["env"]
    store = tmp_path_factory.mktemp("faults-baseline-mlflow")
    with scoped_env({k: env[k] for k in ("SPARKTRAIN_WORK_DIR", "RAW_DIR", "SPARK_MASTER_URL")}):
        config = load_config(
            [ROOT / "conf/flights.yaml", ROOT / "conf/cluster.yaml"],
            [*TRAIN, "spark.master=local[2]", f"tracking.uri=sqlite:///{store}/mlflow.db"]
            + [f"tracking.artifact_root={store}/artifacts"],
        )
    baseline = run_train(spark, config, register=False)
    yield {"cluster": cluster, "work": work, "env": env, "user": JobUser(cluster), "baseline": baseline}
    for name, numbers in RECOVERY.items():
        print(f"recovery, {name}: {numbers}", file=sys.stderr)  # noqa: T201 - the numbers of the closing note


def _best_weights(work: Path, run_id: str) -> str:
    return str(Path(_layout(work).checkpoints(run_id)) / BEST)


def _layout(work: Path) -> Layout:
    return Layout.from_config(PipelineConfig(work_dir=str(work)))


def _mid_epoch_checkpoint(path: Path, epoch: int, step: int) -> bool:
    """The checkpoint on disk is the mid-epoch one of `epoch` at `step` (rank 0 replaces the file atomically)."""
    if not path.exists():
        return False
    partial = torch.load(path, map_location="cpu", weights_only=True).get("partial")
    return partial is not None and (partial["epoch"], partial["step"]) == (epoch, step)


@pytest.fixture(scope="module")
def faulted_run(faults_setup, tmp_path_factory):
    """ONE train job that meets three faults, each inside an epoch, at a mid-epoch checkpoint: epoch 0, an executor
    JVM SIGKILLed; epoch 1, a Worker daemon killed with its executor and restarted 5 s later; epoch 2, the tracking
    server killed and restarted 20 s later. The job must finish by itself."""
    setup = faults_setup
    cluster, user = setup["cluster"], setup["user"]
    folder = tmp_path_factory.mktemp("faulted-run")
    log_path, holds = folder / "train.log", folder / "holds"
    holds.mkdir()
    env = {**setup["env"], faults.ENV: "hold_at_checkpoint:50", faults.HOLD_DIR_ENV: str(holds)}
    started = time.time()
    job = _popen(cluster, "train.py", _sets(TRAIN), env, log_path)
    run = _wait("the train run starts", lambda: user.newest_train_run(after=started), job=job, log_path=log_path)
    checkpoint = Path(_layout(setup["work"]).checkpoints(run.info.run_id)) / LAST
    injected = {}

    def at_checkpoint(epoch: int) -> None:
        """Rank 0 holds after the checkpoint at step 50 of `epoch`: the fault strikes there, whatever the load."""
        what = f"rank 0 holding at the mid-epoch checkpoint of epoch {epoch}"
        _wait(what, lambda: (holds / f"held-{epoch}").exists(), job=job, log_path=log_path, poll_s=0.05)
        assert _mid_epoch_checkpoint(checkpoint, epoch, step=50)
        injected[epoch] = time.time()

    def release(epoch: int) -> None:
        (holds / f"release-{epoch}").touch()

    at_checkpoint(0)
    victim = executor_pids(cluster)[:1]
    assert victim, "no executor JVM found to kill"
    doomed = _process_tree(victim[0])  # a rank outlives its JVM for a moment: release once the whole tree is gone
    os.kill(victim[0], signal.SIGKILL)
    _wait_gone(doomed)
    release(0)

    at_checkpoint(1)
    worker = cluster["services"]["worker1"]
    doomed = _process_tree(worker.process.pid)
    worker.kill()  # the daemon and its executor JVM: a node that went down
    _wait_gone(doomed)
    release(1)
    time.sleep(5)
    worker.start()  # back, and registered with the master again

    at_checkpoint(2)
    server = cluster["services"]["mlflow"]
    server.kill()
    release(2)  # training goes on while the server is away
    time.sleep(20)
    server.start()

    output = _finish(job, log_path)
    finished = time.time()
    run = user(lambda c: c.get_run(run.info.run_id))
    restarts = user(lambda c: c.get_metric_history(run.info.run_id, "restarts"))
    return {
        "run": run,
        "output": output,
        "injected": injected,
        "started": started,
        "finished": finished,
        "restarts": sorted(restarts, key=lambda m: m.step),
    }


def _recovery_numbers(setup: dict, faulted: dict, number: int, epoch: int) -> dict:
    """Seconds from the fault to the relaunch (the `restarts` metric is logged just before it) and the slot wait."""
    run_id = faulted["run"].info.run_id
    waits = setup["user"](lambda c: c.get_metric_history(run_id, "restart_slot_wait_s"))
    relaunched = faulted["restarts"][number - 1].timestamp / 1000
    return {
        "fault_to_relaunch_s": round(relaunched - faulted["injected"][epoch], 1),
        "slot_wait_s": round(next(m.value for m in waits if m.step == number), 1),
    }


def test_executor_sigkill_mid_epoch_recovers_exactly(faults_setup, faulted_run):
    run, output = faulted_run["run"], faulted_run["output"]
    assert run.info.status == "FINISHED"
    assert run.data.tags["train.restarts"] == "2", output[-3000:]  # this fault and the Worker's, nothing else
    assert "non-zero status" in run.data.tags["train.restart.1"]
    assert "epoch 0 of 3 already done, and 50 steps of the next" in output.replace("resuming from checkpoint: ", "")
    baseline = faults_setup["baseline"].result.best_model_path
    assert_same_weights(baseline, _best_weights(faults_setup["work"], run.info.run_id))
    assert faulted_run["restarts"][0].step == 1
    RECOVERY["executor SIGKILL in epoch 0"] = _recovery_numbers(faults_setup, faulted_run, 1, 0)


def test_worker_daemon_killed_and_restarted_recovers_exactly(faults_setup, faulted_run):
    run, output = faulted_run["run"], faulted_run["output"]
    assert "non-zero status" in run.data.tags["train.restart.2"]
    assert "epoch 1 of 3 already done, and 50 steps of the next" in output.replace("resuming from checkpoint: ", "")
    assert [m.step for m in faulted_run["restarts"]] == [1, 2]
    wait_for_workers(faults_setup["cluster"], 2)  # the restarted Worker is part of the cluster again
    RECOVERY["Worker daemon killed, restarted 5 s later, in epoch 1"] = _recovery_numbers(
        faults_setup, faulted_run, 2, 1
    )


def test_tracking_server_down_for_20s_loses_no_epoch_metric(faults_setup, faulted_run):
    run, user = faulted_run["run"], faults_setup["user"]
    assert run.info.status == "FINISHED"
    assert user.epochs_logged(run.info.run_id) == [0, 1, 2]  # every epoch's metrics, each once
    baseline = faults_setup["baseline"].result.history
    logged = user(lambda c: c.get_metric_history(run.info.run_id, "val_auc"))
    assert [m.value for m in sorted(logged, key=lambda m: m.step)] == [r["val_auc"] for r in baseline]
    RECOVERY["whole job"] = {
        "job_s": round(faulted_run["finished"] - faulted_run["started"], 1),
        "restarts": len(faulted_run["restarts"]),
    }


def test_executor_killed_mid_scoring_gives_the_same_partition(faults_setup, faulted_run, tmp_path):
    """Score one day with the model the faulted run registered, then score it again losing an executor in the
    middle: Spark's task retry finishes the job and the replaced partition equals the first one."""
    cluster, env = faults_setup["cluster"], faults_setup["env"]
    args = ["--set", "train.nics=[lo]", "--set", "tracking.model_name=flights-faults", "--date", SCORE_DATE]
    partition = _layout(faults_setup["work"]).predictions.partition(f"date={SCORE_DATE}")
    submit(cluster, "score.py", *args, env=env)
    clean = pq.read_table(partition).to_pandas()
    marker = tmp_path / "executor-killed"
    faulted = {**env, faults.ENV: "score_kill_executor", faults.ONCE_ENV: str(marker)}
    out = submit(cluster, "score.py", *args, env=faulted)
    assert marker.exists()  # an executor really was killed mid-scoring
    assert "Lost executor" in out.stdout + out.stderr, out.stderr[-3000:]
    again = pq.read_table(partition).to_pandas()
    keys = ["flight_id"]  # data.key_columns of conf/flights.yaml
    assert len(clean) > 0 and not again.duplicated(keys).any() and len(again) == len(clean)
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
