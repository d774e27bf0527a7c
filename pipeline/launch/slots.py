"""How many training ranks the Spark application can run at once, counting cores and, where tasks ask for GPUs,
GPUs; and the check that fails in seconds instead of Horovod waiting out its start timeout.

Runs on the driver, before any MLflow run exists (train, tune, and recovery before a relaunch).
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from dataclasses import dataclass

from pipeline.data.session import conf_value, default_parallelism, is_local_master, master, registered_executors
from pipeline.errors import TrainingError

log = logging.getLogger(__name__)

TASK_GPUS = "spark.task.resource.gpu.amount"
EXECUTOR_GPUS = "spark.executor.resource.gpu.amount"


@dataclass(frozen=True)
class Executors:
    """What the slot arithmetic needs about the application's executors."""

    count: int
    cores_each: int
    gpus_each: float  # spark.executor.resource.gpu.amount (0: none)
    source: str  # where the figures came from, for the error message


def slot_count(executors: Executors, task_cpus: int, task_gpus: float) -> tuple[int, str]:
    """Tasks that run at once: per executor the fewer of cores / spark.task.cpus and (when tasks ask for GPUs)
    GPUs / spark.task.resource.gpu.amount, times the executors. Returns the count and how it was reached."""
    by_cores = executors.cores_each // task_cpus
    why = f"{executors.source}, spark.task.cpus={task_cpus}"
    if task_gpus <= 0:
        return executors.count * by_cores, why
    by_gpus = math.floor(executors.gpus_each / task_gpus + 1e-9)
    why += f", {EXECUTOR_GPUS}={executors.gpus_each:g}, {TASK_GPUS}={task_gpus:g}"
    if by_gpus < by_cores:
        why += f": GPUs allow {by_gpus} task(s) per executor, cores {by_cores}"
    return executors.count * min(by_cores, by_gpus), why


def available_slots(spark) -> tuple[int | None, str]:
    """Task slots the application can use at once (local[k] -> k; GPUs count only on cluster masters, where Spark
    schedules them); None where they cannot be known (a cluster behind Spark Connect)."""
    task_cpus = int(conf_value(spark, "spark.task.cpus", "1"))
    executors = _executors(spark)
    if executors is None:
        return None, f"executors of {master(spark)} are not visible through Spark Connect"
    task_gpus = 0.0 if is_local_master(spark) else float(conf_value(spark, TASK_GPUS, "0") or 0)
    return slot_count(executors, task_cpus, task_gpus)


def _executors(spark) -> Executors | None:
    url = master(spark)
    gpus = float(conf_value(spark, EXECUTOR_GPUS, "0") or 0)
    local = re.fullmatch(r"local(?:\[(\d+|\*)(?:,\s*\d+)?\])?", url)
    cluster = re.fullmatch(r"local-cluster\[(\d+),\s*(\d+),\s*(\d+)\]", url)
    if local:
        cores = (os.cpu_count() or 1) if local.group(1) == "*" else int(local.group(1) or 1)
        return Executors(1, cores, gpus, f"spark.master={url}")
    if cluster:
        count, cores = int(cluster.group(1)), int(cluster.group(2))
        return Executors(count, cores, gpus, f"spark.master={url} ({count} executors x {cores} cores)")
    count = registered_executors(spark)
    if count is None:
        return None
    total = default_parallelism(spark)  # total cores of registered executors on standalone/YARN/k8s
    return Executors(count, total // count, gpus, f"{total} cores in {count} executor(s) registered with {url}")


def check_slots(spark, num_proc: int, register_wait_s: float = 30.0) -> None:
    """Fail in seconds instead of Horovod waiting start_timeout for slots that will never come.

    On a cluster, executors register a few seconds after the session starts, so a shortfall is re-checked
    for up to `register_wait_s` before it is an error; local masters are answered at once.
    """
    slots, source = available_slots(spark)
    if slots is None:
        log.warning("task slots not checked: %s (Spark waits for %d of them)", source, num_proc)
        return
    deadline = time.monotonic() + register_wait_s
    while num_proc > slots and not master(spark).startswith("local") and time.monotonic() < deadline:
        time.sleep(2)
        slots, source = available_slots(spark)
    if num_proc > slots:
        raise TrainingError(
            f"train.num_proc={num_proc} but the Spark application has only {slots} task slot(s) ({source}). "
            f"Fix: set train.num_proc<={slots}, or give Spark more cores or GPUs (e.g. spark.master=local[{num_proc}]"
            " or more executors)"
        )
