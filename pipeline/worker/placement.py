"""Where a training rank runs: host, process and the Spark executor that launched it.

Runs in each training rank. Recorded with every training run (the run's training/result.json) so an operator
can see that ranks were really spread over executors, and which executor to look at when one rank misbehaves.
"""

from __future__ import annotations

import os
import socket

import psutil

from pipeline.worker.device import DeviceChoice

_EXECUTOR_MAIN = "CoarseGrainedExecutorBackend"
_DRIVER_MAIN = "SparkSubmit"


def worker_placement(rank: int, device: DeviceChoice) -> dict:
    """This process's host and pid, the executor id / pid of the Spark JVM it descends from, its device and why,
    and the GPU addresses Spark assigned to its task."""
    executor_id, jvm_pid = _spark_ancestor()
    return {
        "rank": rank,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "executor_id": executor_id,
        "executor_pid": jvm_pid,
        "device": device.device,
        "device_reason": device.reason,
        "spark_gpus": list(device.spark_gpus),
    }


def _spark_ancestor() -> tuple[str | None, int | None]:
    """Walk up the process tree to the first Spark JVM: an executor (its --executor-id) or the driver."""
    try:
        for process in psutil.Process().parents():
            try:
                cmdline = process.cmdline()
            except (psutil.AccessDenied, psutil.ZombieProcess):
                continue
            if any(arg.endswith(_EXECUTOR_MAIN) for arg in cmdline):
                return _argument(cmdline, "--executor-id"), process.pid
            if any(arg.endswith(_DRIVER_MAIN) for arg in cmdline):
                return "driver", process.pid  # local masters run tasks inside the driver JVM
    except psutil.Error:
        pass
    return None, None


def _argument(cmdline: list[str], flag: str) -> str | None:
    for i, arg in enumerate(cmdline[:-1]):
        if arg == flag:
            return cmdline[i + 1]
    return None
