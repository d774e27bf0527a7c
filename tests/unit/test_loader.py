"""The sharded loader: disjoint shards, equal steps on every rank, epoch-seeded shuffling, full eval pass."""

from __future__ import annotations

import pytest
import torch

from pipeline.model.inputs import TensorInput
from pipeline.worker.loader import ShardedParquetLoader, assign_shards, list_row_groups
from tests.helpers import write_features

TENSORS = [TensorInput("numeric", (2,), "float32", ("a", "b")), TensorInput("categorical", (1,), "int64", ("c",))]


def loader(folder, rank, size, batch=10, shuffle=True, **kw):
    return ShardedParquetLoader(str(folder), TENSORS, "label", batch, rank, size, shuffle, **kw)


def test_shards_are_disjoint_and_cover_everything(tmp_path):
    total = write_features(tmp_path / "f", [95, 40, 33, 7], row_group=20)
    seen = []
    for rank in range(3):
        for batch, _ in loader(tmp_path / "f", rank, 3, shuffle=False).eval_batches():
            seen.extend(batch["numeric"][:, 0].int().tolist())
    assert sorted(seen) == list(range(total))


def test_uneven_shards_give_equal_steps(tmp_path):
    write_features(tmp_path / "f", [500, 130, 45])  # 3 very uneven row groups over 2 ranks
    loaders = [loader(tmp_path / "f", r, 2, batch=16) for r in range(2)]
    assert loaders[0].rows != loaders[1].rows
    steps = [sum(1 for _ in ld.train_epoch(0)) for ld in loaders]
    assert steps[0] == steps[1] == min(ld.rows for ld in loaders) // 16


def test_greedy_assignment_balances_rows(tmp_path):
    write_features(tmp_path / "f", [100] * 5 + [50] * 4, row_group=100)
    import pyarrow.dataset as ds

    shards = assign_shards(list_row_groups(ds.dataset(tmp_path / "f")), 2)
    rows = [sum(g.rows for g in s) for s in shards]
    assert rows == [350, 350]


def test_shuffle_is_epoch_seeded_and_batches_are_full(tmp_path):
    write_features(tmp_path / "f", [300, 300], row_group=50)
    ld = loader(tmp_path / "f", 0, 1, batch=32, buffer_rows=128, seed=3)
    first = torch.cat([b["numeric"][:, 0] for b, _ in ld.train_epoch(0)])
    again = torch.cat([b["numeric"][:, 0] for b, _ in ld.train_epoch(0)])
    other = torch.cat([b["numeric"][:, 0] for b, _ in ld.train_epoch(1)])
    assert torch.equal(first, again)  # resume replays the same order
    assert not torch.equal(first, other)
    assert len(first) == (600 // 32) * 32 and len(set(first.tolist())) == len(first)
    assert not torch.equal(first, torch.sort(first).values)  # actually shuffled


def test_batch_types_and_row_alignment(tmp_path):
    write_features(tmp_path / "f", [64])
    batch, y = next(iter(loader(tmp_path / "f", 0, 1, batch=8).train_epoch(0)))
    assert set(batch) == {"numeric", "categorical"}  # the names the model's forward reads
    x_num, x_cat = batch["numeric"], batch["categorical"]
    assert x_num.dtype == torch.float32 and x_cat.dtype == torch.int64 and y.dtype == torch.float32
    ids = x_num[:, 0].long()
    assert torch.equal(x_num[:, 1], (ids * 2).float()) and torch.equal(x_cat[:, 0], ids % 7)
    assert torch.equal(y, (ids % 2).float())


def test_loader_error_surfaces_from_prefetch_thread(tmp_path):
    write_features(tmp_path / "f", [64])
    tensors = [TensorInput("numeric", (1,), "float32", ("nope",))]
    bad = ShardedParquetLoader(str(tmp_path / "f"), tensors, "label", 8, 0, 1, shuffle=False)
    with pytest.raises(Exception, match="nope"):
        list(bad.train_epoch(0))
