"""Driver side of training: check task slots, launch workers with Horovod or TorchDistributor, report failures."""

from __future__ import annotations

import collections
import logging
import os
import re
import sys
import threading
import time

from pipeline.errors import TrainingError
from pipeline.training import TrainPlan, ddp_entry, horovod_entry

log = logging.getLogger(__name__)
TAIL_LINES = 12  # per rank
_RANK_PREFIX = re.compile(r"^\[(\d+)\]<(?:stdout|stderr)>:")


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
    """Last lines of each rank's output (Horovod prefixes lines with [rank]<stdout>:), for error messages."""

    def __init__(self) -> None:
        self.by_rank: dict[str, collections.deque] = {}
        self.lock = threading.Lock()

    def add(self, line: str) -> None:
        match = _RANK_PREFIX.match(line)
        key = f"rank {match.group(1)}" if match else "driver"
        with self.lock:
            self.by_rank.setdefault(key, collections.deque(maxlen=TAIL_LINES)).append(line.rstrip())

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


def launch(
    spark,
    plan: TrainPlan,
    backend: str,
    num_proc: int,
    start_timeout_s: int,
    nics: list[str] | None,
    horovod_cycle_time_ms: float | None = None,
) -> dict:
    """Run the training function on `num_proc` Spark tasks and return rank 0's result.

    Raises:
        TrainingError: too few slots, or a worker failed (message ends with the workers' last output lines).
    """
    check_slots(spark, num_proc)
    tail = WorkerTails()
    try:
        if backend == "horovod":
            env = horovod_env(dict(os.environ), nics, horovod_cycle_time_ms)
            return _launch_horovod(plan, num_proc, start_timeout_s, nics, env, tail)
        return _launch_torch_distributor(plan, num_proc, nics, spark.sparkContext.master)
    except TrainingError:
        raise
    except Exception as exc:
        raise TrainingError(
            f"training with {backend} failed: {type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}\n"
            f"last output of each worker:\n  {tail.render()}\n"
            "Fix: see the worker error above; re-running the same command resumes from the last checkpoint"
        ) from None


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


def _launch_horovod(plan: TrainPlan, num_proc: int, start_timeout_s: int, nics, env: dict, tail) -> dict:
    import horovod.spark

    results = horovod.spark.run(
        horovod_entry,
        args=(plan,),
        num_proc=num_proc,
        start_timeout=start_timeout_s,
        env=env,
        stdout=TailStream(sys.stdout, tail),
        stderr=TailStream(sys.stderr, tail),
        verbose=0,
        nics=set(nics) if nics else None,
    )
    return results[0]  # every rank returns rank 0's result


def _launch_torch_distributor(plan: TrainPlan, num_proc: int, nics, master: str) -> dict:
    from pyspark.ml.torch.distributor import TorchDistributor

    if nics:
        # Gloo picks its interface from this; the distributor passes the driver's environment through.
        os.environ["GLOO_SOCKET_IFNAME"] = nics[0]
    use_gpu = _cuda_available()
    # On a local master every process is on this machine anyway: one torchrun agent with N processes.
    # One agent per Spark task (local_mode=False) made the agents sometimes miss each other's exit barrier
    # here, so rank 0 waited out torchelastic's 300 s timeout after training had finished.
    local_mode = master.startswith("local")
    distributor = TorchDistributor(num_processes=num_proc, local_mode=local_mode, use_gpu=use_gpu)
    result = distributor.run(ddp_entry, plan)
    if not isinstance(result, dict):
        raise TrainingError(f"TorchDistributor returned {type(result).__name__}, expected rank 0's result dict")
    return result


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()
