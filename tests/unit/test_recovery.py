"""Recovery's decisions without a cluster: which failures are retried, the restart default, and what a mid-epoch
checkpoint restores (the end-to-end proofs are in tests/integration/test_training.py and test_cluster_faults.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline import faults
from pipeline.config.schema import TrainConfig
from pipeline.launch.launchers import LaunchFailed, WorkerTails
from pipeline.launch.recovery import max_restarts, user_error
from pipeline.model.spec import LabelSpec
from pipeline.worker.checkpoint import checkpoint_state, new_best, resume_point
from pipeline.worker.metrics import MetricSums


def _failure(*lines: str) -> LaunchFailed:
    tails = WorkerTails()
    for line in lines:
        tails.add(line)
    return LaunchFailed(
        "failed",
        cause="RuntimeError: Horovod detected that one or more processes exited",
        rank_exceptions=tails.exceptions,
    )


@pytest.mark.parametrize(
    "lines",
    [
        (),  # a killed rank prints nothing
        ("[0]<stderr>:horovod.common.exceptions.HorovodInternalError: ncclAllReduce failed",),
        ("[1]<stdout>:RuntimeError: [../third_party/gloo/gloo/transport/tcp/pair.cc:598] Connection closed by peer",),
        ("[0]<stderr>:torch.distributed.DistBackendError: NCCL error in: ProcessGroupNCCL.cpp",),
        ("[1]<stderr>:ConnectionResetError: [Errno 104] Connection reset by peer",),
    ],
)
def test_lost_ranks_and_broken_collectives_are_retried(lines):
    assert user_error(_failure(*lines)) is None


@pytest.mark.parametrize(
    "line",
    [
        "[1]<stdout>:ValueError: train split has too few rows for 2 workers",
        "[0]<stderr>:RuntimeError: mat1 and mat2 shapes cannot be multiplied (512x9 and 8x64)",
        "[0]<stderr>:KeyError: 'dep_delay'",
        "[1]<stderr>:torch.OutOfMemoryError: CUDA out of memory",
    ],
)
def test_a_ranks_own_error_is_not_retried(line):
    found = user_error(_failure("[0]<stderr>:horovod.common.exceptions.HorovodInternalError: peer gone", line))
    assert found is not None and line.split(":", 1)[1].split(">:", 1)[-1] in found


def test_exception_lines_are_told_from_log_lines():
    tails = WorkerTails()
    tails.add("[1]<stdout>:12:00:01 ERROR pipeline.worker: [rank 1] training failed")
    tails.add("[1]<stdout>:Traceback (most recent call last):")
    tails.add("[1]<stdout>:ValueError: bad batch")
    tails.add("[1]<stdout>:12:00:02 INFO pipeline.worker: shutting down")
    assert tails.exceptions == {"rank 1": "ValueError: bad batch"}


def test_restarts_default_to_three_on_cluster_masters_and_none_on_local():
    train = TrainConfig()
    assert max_restarts(train, "local[2]") == 0 and max_restarts(train, "local") == 0
    assert max_restarts(train, "spark://10.0.0.1:7077") == 3 and max_restarts(train, "local-cluster[2,1,1024]") == 3
    assert max_restarts(TrainConfig(max_restarts=1), "yarn") == 1


def test_mid_epoch_checkpoint_restores_each_ranks_state():
    best = new_best()
    state = checkpoint_state({}, {}, 0, best, [{"epoch": 0}])
    ranks = [{"sums": torch.tensor([float(r)])} for r in range(2)]
    point = resume_point({**state, "partial": {"epoch": 1, "step": 40, "ranks": ranks}}, rank=1, size=2)
    assert (point.start_epoch, point.skip_steps, point.resumed) == (1, 40, True)
    assert point.rank_state is ranks[1]
    # Another worker count: the shards differ, so the step position is meaningless; the epoch restarts.
    other = resume_point({**state, "partial": {"epoch": 1, "step": 40, "ranks": ranks}}, rank=0, size=3)
    assert (other.start_epoch, other.skip_steps, other.rank_state) == (1, 0, None)
    assert resume_point(None, 0, 2).resumed is False


def test_metric_sums_round_trip_exactly():
    sums = MetricSums("binary", LabelSpec("y", "binary"))
    sums.update(torch.tensor([0.3, -1.2, 2.0]), torch.tensor([1.0, 0.0, 1.0]))
    again = MetricSums("binary", LabelSpec("y", "binary"))
    again.restore(sums.as_tensor())
    assert torch.equal(again.as_tensor(), sums.as_tensor()) and np.array_equal(again.hist, sums.hist)


def test_a_fault_fires_once_with_a_marker(monkeypatch, tmp_path):
    monkeypatch.setenv(faults.ENV, "train_step:1,5,0")
    monkeypatch.setenv(faults.ONCE_ENV, str(tmp_path / "fired"))
    assert faults.train_step_fault() == (1, 5, 0)
    (tmp_path / "fired").touch()  # what exit_now leaves behind
    assert faults.train_step_fault() is None


def test_a_concurrent_first_alias_write_is_written_again_other_errors_are_not():
    """Two jobs inserting the same new alias at once: the losing insert fails on the primary key (seen on the
    PostgreSQL registry); the row exists by then, so the same write again succeeds."""
    import pytest
    from mlflow.exceptions import MlflowException

    from pipeline.tracking.promotion_race import set_alias

    class Registry:
        def __init__(self, errors):
            self.errors, self.aliases = list(errors), {}

        def set_registered_model_alias(self, name, alias, version):
            if self.errors:
                raise MlflowException(self.errors.pop(0))
            self.aliases[(name, alias)] = version

    duplicate = 'duplicate key value violates unique constraint "registered_model_alias_pk"'
    registry = Registry([duplicate])
    set_alias(registry, "m", "candidate", "2")
    assert registry.aliases == {("m", "candidate"): "2"}
    with pytest.raises(MlflowException, match="PERMISSION_DENIED"):
        set_alias(Registry(["PERMISSION_DENIED"]), "m", "candidate", "2")
