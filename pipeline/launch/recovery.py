"""Automatic recovery on the driver: relaunch every rank from the last checkpoint after a lost rank or executor.

A launch that fails because a rank died (killed, out of memory, its executor or node lost) or because a collective
broke (Gloo/NCCL: a peer went away) is relaunched, up to train.max_restarts times, inside the same tracked stage,
so the relaunched ranks resume from the run's own checkpoints and log into the same MLflow run. Before each
relaunch the driver waits (at most train.restart_wait_s) for the cluster to give back train.num_proc task slots.

A rank's own Python error (bad data, a model or loss that raises, a wrong setting) is not retried: it would fail
the same way again. It is recognised from the last traceback line a rank printed: any exception that is not one
of the collective/connection errors below.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass

from pipeline.config.schema import TrainConfig
from pipeline.data.session import master
from pipeline.errors import TrainingError
from pipeline.launch.launchers import LaunchFailed, launch
from pipeline.launch.slots import check_slots
from pipeline.tracking import runs
from pipeline.worker.plan import EpochCallback, RankResult, TrainPlan

log = logging.getLogger(__name__)
DEFAULT_CLUSTER_RESTARTS = 3
# Exceptions a surviving rank raises when a peer died or the network between ranks broke.
_LOST_PEER_TYPES = re.compile(
    r"(?:^|\.)(?:HorovodInternalError|DistBackendError|DistNetworkError|DistStoreError|ConnectionError|"
    r"ConnectionResetError|ConnectionAbortedError|ConnectionRefusedError|BrokenPipeError|EOFError|TimeoutError)(?::|$)"
)
# RuntimeErrors raised by Gloo, NCCL or the rendezvous when a peer is gone (the type alone is too broad).
_LOST_PEER_TEXT = re.compile(r"gloo|nccl|connection|peer|socket|timed out|broken pipe|rendezvous", re.IGNORECASE)


@dataclass(frozen=True)
class Failure:
    """One failed launch: why (the launcher's error and each rank's last exception line), and when."""

    cause: str
    rank_exceptions: dict[str, str]
    failed_after_s: float

    def summary(self) -> str:
        ranks = "; ".join(f"{rank}: {line}" for rank, line in sorted(self.rank_exceptions.items()))
        return f"{self.cause}" + (f" [{ranks}]" if ranks else " [no rank printed an error: killed or lost]")


def max_restarts(train: TrainConfig, master: str) -> int:
    """train.max_restarts, or its default: restarts on cluster masters, none on local[N] (see the config reference)."""
    if train.max_restarts is not None:
        return train.max_restarts
    return 0 if re.fullmatch(r"local(\[.*\])?", master) else DEFAULT_CLUSTER_RESTARTS


def user_error(failure: LaunchFailed) -> str | None:
    """The rank exception that makes this failure the user's (not retried), or None for a lost rank or peer."""
    for rank, line in sorted(failure.rank_exceptions.items()):
        if _LOST_PEER_TYPES.search(line.split(" ", 1)[0]):
            continue
        if line.startswith("RuntimeError") and _LOST_PEER_TEXT.search(line):
            continue
        return f"{rank}: {line}"
    return None


def launch_with_restarts(
    spark, plan: TrainPlan, train: TrainConfig, on_epoch: EpochCallback | None = None
) -> tuple[RankResult, list[Failure]]:
    """launch(), relaunched after lost ranks; returns rank 0's result and the failures it recovered from.

    Each restart is recorded in the active MLflow run: the metric `restarts` (its step: the restart's number),
    `restart_detected_after_s` and `restart_slot_wait_s`, and the tag `train.restart.<n>` with the cause.

    Raises:
        TrainingError: a rank's own error (at once), or a failure after the last allowed restart (with every
        failure's summary), or slots that did not come back within train.restart_wait_s.
    """
    allowed = max_restarts(train, master(spark))
    failures: list[Failure] = []
    while True:
        started = time.monotonic()
        try:
            return launch(spark, plan, train, on_epoch), failures
        except LaunchFailed as exc:
            failure = Failure(exc.cause, exc.rank_exceptions, time.monotonic() - started)
            mistake = user_error(exc)
            if mistake is not None:
                if allowed:
                    log.error("not restarting: %s is the rank's own error (restarts are for lost ranks)", mistake)
                raise
            if len(failures) >= allowed:
                if not allowed:
                    raise
                raise _gave_up(exc, failures + [failure], allowed) from None
            failures.append(failure)
            number = len(failures)
            log.warning(
                "training failed (%s); restart %d of %d from the last checkpoint", failure.summary(), number, allowed
            )
            waited = _wait_for_slots(spark, train, number, failures)
            runs.log_metrics(
                {"restarts": number, "restart_detected_after_s": failure.failed_after_s, "restart_slot_wait_s": waited},
                step=number,
            )
            runs.set_tags({f"train.restart.{number}": failure.summary()[:4000], "train.restarts": str(number)})


def _wait_for_slots(spark, train: TrainConfig, number: int, failures: list[Failure]) -> float:
    """Wait for train.num_proc task slots (a lost executor is replaced by the cluster manager); seconds waited."""
    started = time.monotonic()
    try:
        check_slots(spark, train.num_proc, register_wait_s=train.restart_wait_s)
    except TrainingError as exc:
        raise TrainingError(
            f"restart {number} gave up: the cluster did not give back {train.num_proc} task slots within "
            f"train.restart_wait_s={train.restart_wait_s:g}. {exc}\nfailures so far:\n{_history(failures)}\n"
            "Fix: add executors (or raise train.restart_wait_s), then re-run the same command: it resumes from "
            "the last checkpoint"
        ) from None
    return time.monotonic() - started


def _gave_up(last: LaunchFailed, failures: list[Failure], allowed: int) -> TrainingError:
    return TrainingError(
        f"training failed {len(failures)} times, more than train.max_restarts={allowed} allows:\n"
        f"{_history(failures)}\n"
        f"the last failure in full:\n{last}\n"
        "Fix: see the failures above (a node that keeps dying, too little memory); re-running the same command "
        "resumes from the last checkpoint, and a larger train.max_restarts tolerates more losses"
    )


def _history(failures: list[Failure]) -> str:
    return "\n".join(f"  failure {i}: {f.summary()}" for i, f in enumerate(failures, 1))
