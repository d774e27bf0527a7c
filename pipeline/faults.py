"""The one fault-injection seam, for tests: `SPARKTRAIN_FAULT` makes a process hard-exit (or wait) at a named point.

Values: `train_step:<epoch>,<step>,<rank>` (that training rank exits with code 17 before the step, like a
killed process), `hold_at_checkpoint:<step>` (rank 0 stops right after writing the mid-epoch checkpoint at that
step, once per epoch, until the test releases it through files in SPARKTRAIN_FAULT_HOLD_DIR: a fault from outside
then strikes at a resume point the checkpoint records, whatever the load), `score_before_swap` (the scoring job
exits with code 19 after its staged write, before it publishes), `backfill_after:<n>` (a backfill exits with code 19
once it has published n dates) and `score_kill_executor` (the first scoring task
to run SIGKILLs its own executor JVM, with SPARKTRAIN_FAULT_ONCE naming the marker file every executor can see).
Read only here, at the moment a point is reached; unset in production, it costs one lookup.

With `SPARKTRAIN_FAULT_ONCE=<file>` a fault fires once: the process creates the file before it exits, and no
later process fires while the file exists (a relaunch after an automatic restart trains on, as after a real loss).
"""

from __future__ import annotations

import logging
import os
import signal
import time

log = logging.getLogger(__name__)
ENV = "SPARKTRAIN_FAULT"
ONCE_ENV = "SPARKTRAIN_FAULT_ONCE"
HOLD_DIR_ENV = "SPARKTRAIN_FAULT_HOLD_DIR"
HOLD_LIMIT_S = 600.0  # a test that never releases does not hang the job for ever
TRAIN_STEP_EXIT_CODE = 17
SCORE_EXIT_CODE = 19


def train_step_fault() -> tuple[int, int, int] | None:
    """(epoch, step, rank) at which a training rank should die, when the seam asks for one."""
    point, _, where = os.environ.get(ENV, "").partition(":")
    if point != "train_step" or _already_fired():
        return None
    epoch, step, rank = (int(x) for x in where.split(","))
    return epoch, step, rank


def hold_after_checkpoint(epoch: int, step: int) -> None:
    """Rank 0, right after its mid-epoch checkpoint at (epoch, step): when the seam asks, write `held-<epoch>` in
    the hold folder and wait for `release-<epoch>` there. Once per epoch: a relaunch resumes after this step."""
    point, _, where = os.environ.get(ENV, "").partition(":")
    folder = os.environ.get(HOLD_DIR_ENV)
    if point != "hold_at_checkpoint" or not folder or int(where) != step:
        return
    held = os.path.join(folder, f"held-{epoch}")
    if os.path.exists(held):
        return
    with open(held, "w"):
        pass
    log.warning("fault injection: holding after the checkpoint at epoch %d, step %d", epoch, step)
    release = os.path.join(folder, f"release-{epoch}")
    deadline = time.monotonic() + HOLD_LIMIT_S
    while not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.05)


def exit_now(point: str, code: int) -> None:
    """Hard-exit (no cleanup, like SIGKILL) at `point`; callers decide that the point was reached."""
    log.error("fault injection: exiting at %s", point)
    marker = os.environ.get(ONCE_ENV)
    if marker:
        with open(marker, "a"):
            pass
    os._exit(code)


def _already_fired() -> bool:
    marker = os.environ.get(ONCE_ENV)
    return bool(marker) and os.path.exists(marker)


def exit_if_requested(point: str, code: int) -> None:
    """Hard-exit when the seam names exactly `point` (points without coordinates)."""
    if os.environ.get(ENV) == point:
        exit_now(point, code)


def exit_after_published_dates(published: int) -> None:
    """A backfill, after each date it publishes: hard-exit when the seam asks for `backfill_after:<published>`."""
    point, _, where = os.environ.get(ENV, "").partition(":")
    if point == "backfill_after" and int(where) == published:
        exit_now(f"{point}:{where}", SCORE_EXIT_CODE)


def score_kill_marker() -> str | None:
    """Driver side: the marker file when the scoring job should lose an executor mid-scoring, else None."""
    if os.environ.get(ENV) != "score_kill_executor":
        return None
    return os.environ.get(ONCE_ENV) or None


def kill_own_executor_once(marker: str) -> None:
    """Executor side: SIGKILL the executor JVM this Python worker belongs to, the first time any task gets here."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)  # exactly one task in the cluster wins
    except FileExistsError:
        return
    os.close(fd)
    pid = os.getppid()
    while pid > 1:  # up the tree: python worker -> pyspark daemon -> the executor's JVM
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            if b"CoarseGrainedExecutorBackend" in cmdline.read():
                log.error("fault injection: killing executor JVM %d", pid)
                os.kill(pid, signal.SIGKILL)
                return
        with open(f"/proc/{pid}/stat") as stat:
            pid = int(stat.read().rsplit(")", 1)[1].split()[1])


def pass_through_killing_executor(marker: str):
    """A mapInPandas function (executor side) that kills its executor first (kill_own_executor_once), then passes
    every batch on unchanged; the scoring job adds it only when the seam asks for it."""

    def run(batches):
        kill_own_executor_once(marker)
        yield from batches

    return run
