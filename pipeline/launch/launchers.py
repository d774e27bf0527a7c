"""Driver side of training: check task slots, launch the ranks with Horovod or TorchDistributor, report failures.

BACKENDS is the one table from a backend name (train.backend) to its launcher and the rank-side backend class
(pipeline/worker/backends.py) that the launched function uses.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import os
import re
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass

from pipeline.config.schema import TrainConfig
from pipeline.data.session import is_connect, master
from pipeline.environment import scoped_env
from pipeline.errors import ConfigError, TrainingError
from pipeline.launch.gpu_resources import check_gpu_backend, resolve_gpu_use
from pipeline.worker.backends import DDPBackend, HorovodBackend, RankBackend
from pipeline.worker.plan import EpochCallback, RankResult, TrainPlan
from pipeline.worker.rank_entry import run_rank

log = logging.getLogger(__name__)
TAIL_LINES = 12  # per rank
# Horovod prefixes rank lines "[1]<stdout>:", torchrun "[rank1]:" (repeated when its output is relayed again).
_RANK_PREFIX = re.compile(r"^(?:\[(\d+)\]<(?:stdout|stderr)>:|(?:\[rank(\d+)\]:\s*)+)")
# The last line of a Python traceback: "ValueError: ...", "horovod.common.exceptions.HorovodInternalError: ...".
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt)(?::|$)")


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
        key = f"rank {match.group(1) or match.group(2)}" if match else "driver"
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

    def __getattr__(self, name: str):  # encoding, isatty, fileno...: the stream it stands in for answers
        return getattr(self.target, name)


def horovod_env(base: dict[str, str], nics: list[str] | None, cycle_time_ms: float | None) -> dict[str, str]:
    """The environment every rank gets: the driver's without its CUDA_VISIBLE_DEVICES (each rank takes the GPU
    Spark assigned to its task, on its own host: pipeline/worker/device.py), plus the Gloo and NCCL interface and
    the background cycle time.

    Horovod's background thread wakes every HOROVOD_CYCLE_TIME ms to negotiate ready gradients; on a few CPU
    cores those wake-ups compete with compute (2 ranks on 2 cores scaled 0.67 at 1 ms, 0.77 at 5 ms).
    """
    env = {k: v for k, v in base.items() if k != "CUDA_VISIBLE_DEVICES"}
    env.update(nic_env(nics))
    if cycle_time_ms is not None:
        env["HOROVOD_CYCLE_TIME"] = f"{cycle_time_ms:g}"
    return env


def nic_env(nics: list[str] | None) -> dict[str, str]:
    """train.nics for every library that moves rank traffic: Horovod's Gloo, torch's Gloo and NCCL."""
    if not nics:
        return {}
    return {"HOROVOD_GLOO_IFACE": nics[0], "GLOO_SOCKET_IFNAME": nics[0], "NCCL_SOCKET_IFNAME": ",".join(nics)}


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
    local_mode = master(spark).startswith("local")
    distributor = TorchDistributor(num_processes=train.num_proc, local_mode=local_mode, use_gpu=plan.use_gpu)
    # Gloo and NCCL pick their interface from the environment; the distributor passes the driver's through.
    # The distributor relays rank output to the driver's stdout (local mode) or stderr (its log server): through
    # the tails, so a rank's own error is recognised and not retried as a lost rank.
    with (
        scoped_env(nic_env(train.nics)),
        contextlib.redirect_stdout(TailStream(sys.stdout, launched.tails)),
        contextlib.redirect_stderr(TailStream(sys.stderr, launched.tails)),
    ):
        result = distributor.run(run_rank, plan, launched.rank_backend, launched.on_epoch)
    if not isinstance(result, RankResult):
        raise TrainingError(f"TorchDistributor returned {type(result).__name__}, expected rank 0's RankResult")
    return result


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
    check_backend_session(spark, train)
    backend = BACKENDS[train.backend]
    use_gpu, why = resolve_gpu_use(spark, train)
    check_gpu_backend(spark, train, use_gpu)
    log.info("training on %s (%s)", "GPU" if use_gpu else "CPU", why)
    plan = dataclasses.replace(plan, use_gpu=use_gpu)
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


def check_backend_session(spark, train: TrainConfig) -> None:
    """Horovod needs a classic session: horovod.spark.run drives a SparkContext, which Spark Connect does not have.

    Raises:
        ConfigError: train.backend=horovod on a Spark Connect session, naming the fix.
    """
    if train.backend == "horovod" and is_connect(spark):
        raise ConfigError(
            "train.backend=horovod needs a classic Spark session (horovod.spark.run drives a SparkContext), but this "
            "session is Spark Connect (spark.remote or SPARK_REMOTE). Fix: set train.backend=torch_distributor, or "
            "leave spark.remote unset"
        )


class LaunchFailed(TrainingError):
    """The ranks failed: the message for the user, plus the launcher's error and each rank's last exception line."""

    def __init__(self, message: str, cause: str, rank_exceptions: dict[str, str]):
        super().__init__(message)
        self.cause = cause
        self.rank_exceptions = rank_exceptions
