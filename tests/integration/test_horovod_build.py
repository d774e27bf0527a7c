"""The patched Horovod build works end to end: a 2-process allreduce through horovod.spark.run."""

from __future__ import annotations

import sys

import cloudpickle
import pytest

pytestmark = pytest.mark.integration


def rank_allreduce():
    import horovod.torch as hvd
    import torch

    hvd.init()
    value = torch.tensor([float(hvd.rank() + 1), 10.0 * (hvd.rank() + 1)])
    total = hvd.allreduce(value, op=hvd.Sum, name="probe")
    return hvd.rank(), hvd.size(), total.tolist()


def test_two_process_allreduce_on_spark(spark):
    import horovod.spark

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # test modules are not importable on workers
    results = horovod.spark.run(rank_allreduce, num_proc=2, start_timeout=120, nics={"lo"}, verbose=0)
    assert sorted(r[0] for r in results) == [0, 1]
    assert all(r[1] == 2 for r in results)
    assert all(r[2] == [3.0, 30.0] for r in results)  # (1 + 2), (10 + 20) on every rank
