"""Driver side of training: check task slots, launch the ranks with Horovod or TorchDistributor, report failures.

BACKENDS is the one table from a backend name (train.backend) to its launcher and the rank-side backend class
(pipeline/worker/backends.py) that the launched function uses.
"""

from __future__ import annotations

import collections
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from pipeline.config.schema import TrainConfig
from pipeline.environment import scoped_env
from pipeline.errors import TrainingError
from pipeline.worker.backends import DDPBackend, HorovodBackend, RankBackend
from pipeline.worker.plan import EpochCallback, RankResult, TrainPlan
from pipeline.worker.rank_entry import run_rank

log = logging.getLogger(__name__)
TAIL_LINES = 12  # per rank
_RANK_PREFIX = re.compile(r"^\[(\d+)\]<(?:stdout|stderr)>:")
# The last line of a Python traceback: "ValueError: ...", "horovod.common.exceptions.HorovodInternalError: ...".
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt)(?::|$)")


def available_slots(spark) -> tuple[int, str]:
    """Task slots the application can use at once: executors x cores / spark.task.cpus (local[k] -> k)."""
    sc = spark.sparkContext
    master = sc.master
    task_cpus = int(sc.getConf().get("spark.task.cpus", "1"))
    local = re.fullmatch(r"local(?:\[(\d+|\*)(?:,\s*\d+)?\])?", master)
    cluster = re.fullmatch(r"local-cluster\[(\d+),\s*(\d+),\s*(\d+)\]", master)
    if local:
        cores = (os.cpu_count() or 1) if local.group(1) == "*" else int(local.group(1) or 1)
        source = f"spark.master={master}"
    elif cluster:
        cores = int(cluster.group(1)) * int(cluster.group(2))
        source = f"spark.master={master} ({cluster.group(1)} executors x {cluster.group(2)} cores)"
    else:
        cores = sc.defaultParallelism  # total cores of registered executors on standalone/YARN/k8s
        source = f"{cores} executor cores registered with {master}"
    return cores // task_cpus, f"{source}, spark.task.cpus={task_cpus}"


def check_slots(spark, num_proc: int, register_wait_s: float = 30.0) -> None:
    """Fail in seconds instead of Horovod waiting start_timeout for slots that will never come.

    On a cluster, executors register a few seconds after the session starts, so a shortfall is re-checked
    for up to `register_wait_s` before it is an error; local masters are answered at once.
    """
    slots, source = available_slots(spark)
    deadline = time.monotonic() + register_wait_s
    while num_proc > slots and not spark.sparkContext.master.startswith("local") and time.monotonic() < deadline:
        time.sleep(2)
        slots, source = available_slots(spark)
    if num_proc > slots:
        raise TrainingError(
            f"train.num_proc={num_proc} but the Spark application has only {slots} task slot(s) ({source}). "
            f"Fix: set train.num_proc<={slots}, or give Spark more cores (e.g. spark.master=local[{num_proc}] "
            "or more executors)"
        )


class WorkerTails:
    """Last lines of each rank's output (Horovod prefixes lines with [rank]<stdout>:), for error messages, and the
    last exception line each rank printed (a traceback's final line), which tells a rank's own error from a lost
    peer (pipeline/launch/recovery.py)."""

    def __init__(self) -> None:
        self.by_rank: dict[str, collections.deque] = {}
        self.exceptions: dict[str, str] = {}
        self.lock = threading.Lock()

    def add(self, line: str) -> None:
        match = _RANK_PREFIX.match(line)
        key = f"rank {match.group(1)}" if match else "driver"
        text = line[match.end() :].strip() if match else line.strip()
        with self.lock:
            self.by_rank.setdefault(key, collections.deque(maxlen=TAIL_LINES)).append(line.rstrip())
            if _EXCEPTION_LINE.match(text):
                self.exceptions[key] = text[:500]

    def render(self) -> str:
        if not self.by_rank:
            return "(no worker output captured)"
        parts = []
        for key in sorted(self.by_rank):
            parts.append(f"{key}:\n    " + "\n    ".join(self.by_rank[key]))
        return "\n  ".join(parts)


class TailStream:
    """File-like sink that forwards worker output and remembers each rank's last lines."""

    def __init__(self, target, tails: WorkerTails):
        self.target = target
        self.tails = tails
        self.pending = ""

    def write(self, text: str) -> int:
        self.target.write(text)
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            if line.strip():
                self.tails.add(line)
        return len(text)

    def flush(self) -> None:
        self.target.flush()


def horovod_env(base: dict[str, str], nics: list[str] | None, cycle_time_ms: float | None) -> dict[str, str]:
    """The environment every rank gets: the driver's, plus the Gloo interface and the background cycle time.

    Horovod's background thread wakes every HOROVOD_CYCLE_TIME ms to negotiate ready gradients; on a few CPU
    cores those wake-ups compete with compute (2 ranks on 2 cores scaled 0.67 at 1 ms, 0.77 at 5 ms).
    """
    env = dict(base)
    if nics:
        env["HOROVOD_GLOO_IFACE"] = nics[0]
    if cycle_time_ms is not None:
        env["HOROVOD_CYCLE_TIME"] = f"{cycle_time_ms:g}"
    return env


def _launch_horovod(spark, plan: TrainPlan, train: TrainConfig, launched: Launched) -> RankResult:
    import horovod.spark

    results = horovod.spark.run(
        run_rank,
        args=(plan, launched.rank_backend, launched.on_epoch),
        num_proc=train.num_proc,
        start_timeout=train.start_timeout_s,
        env=horovod_env(dict(os.environ), train.nics, train.horovod_cycle_time_ms),
        stdout=TailStream(sys.stdout, launched.tails),
        stderr=TailStream(sys.stderr, launched.tails),
        verbose=0,
        nics=set(train.nics) if train.nics else None,
    )
    return results[0]  # every rank returns rank 0's result


def _launch_torch_distributor(spark, plan: TrainPlan, train: TrainConfig, launched: Launched) -> RankResult:
    from pyspark.ml.torch.distributor import TorchDistributor

    # On a local master every process is on this machine anyway: one torchrun agent with N processes.
    # One agent per Spark task (local_mode=False) made the agents sometimes miss each other's exit barrier
    # here, so rank 0 waited out torchelastic's 300 s timeout after training had finished.
    local_mode = spark.sparkContext.master.startswith("local")
    distributor = TorchDistributor(num_processes=train.num_proc, local_mode=local_mode, use_gpu=_cuda_available())
    # Gloo picks its interface from GLOO_SOCKET_IFNAME; the distributor passes the driver's environment through.
    gloo_iface = {"GLOO_SOCKET_IFNAME": train.nics[0]} if train.nics else {}
    with scoped_env(gloo_iface):
        result = distributor.run(run_rank, plan, launched.rank_backend, launched.on_epoch)
    if not isinstance(result, RankResult):
        raise TrainingError(f"TorchDistributor returned {type(result).__name__}, expected rank 0's RankResult")
    return result


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


@dataclass(frozen=True)
class Launched:
    """What a launcher hands to every rank besides the plan, and where it collects their output."""

    rank_backend: type[RankBackend]
    on_epoch: EpochCallback | None
    tails: WorkerTails


@dataclass(frozen=True)
class Backend:
    launch: Callable[[object, TrainPlan, TrainConfig, Launched], RankResult]
    rank_backend: type[RankBackend]


BACKENDS: dict[str, Backend] = {
    "horovod": Backend(_launch_horovod, HorovodBackend),
    "torch_distributor": Backend(_launch_torch_distributor, DDPBackend),
}


def launch(spark, plan: TrainPlan, train: TrainConfig, on_epoch: EpochCallback | None = None) -> RankResult:
    """Run the rank function on `train.num_proc` Spark tasks and return rank 0's result.

    The caller checks task slots first (check_slots), before any MLflow run exists.

    Raises:
        TrainingError: a rank failed (the message ends with every rank's last output lines).
    """
    backend = BACKENDS[train.backend]
    tails = WorkerTails()
    try:
        return backend.launch(spark, plan, train, Launched(backend.rank_backend, on_epoch, tails))
    except TrainingError:
        raise
    except Exception as exc:
        cause = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:300]}"
        raise LaunchFailed(
            f"training with {train.backend} failed: {cause}\n"
            f"last output of each worker:\n  {tails.render()}\n"
            "Fix: see the worker error above; re-running the same command resumes from the last checkpoint",
            cause=cause,
            rank_exceptions=dict(tails.exceptions),
        ) from None


class LaunchFailed(TrainingError):
    """The ranks failed: the message for the user, plus the launcher's error and each rank's last exception line."""

    def __init__(self, message: str, cause: str, rank_exceptions: dict[str, str]):
        super().__init__(message)
        self.cause = cause
        self.rank_exceptions = rank_exceptions
