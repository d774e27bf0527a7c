"""Arrow-native, rank-sharded, streaming Parquet -> torch batch loader (worker side).

Each rank owns a disjoint set of row groups. Every rank computes the same steps-per-epoch from Parquet
metadata alone (the smallest shard's full batches), so synchronous allreduce never waits on a rank that
ran out of data. Rows are shuffled by an epoch-seeded row-group order plus a bounded shuffle buffer, and a
background thread prefetches batches while the model trains.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow.dataset as ds
import torch

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class RowGroup:
    path: str
    index: int
    rows: int


def list_row_groups(dataset: ds.FileSystemDataset) -> list[RowGroup]:
    """All row groups of a Parquet dataset, in a stable order (file path, index)."""
    groups = []
    for fragment in sorted(dataset.get_fragments(), key=lambda f: f.path):
        for rg in range(fragment.metadata.num_row_groups):
            groups.append(RowGroup(fragment.path, rg, fragment.metadata.row_group(rg).num_rows))
    return groups


def assign_shards(groups: list[RowGroup], size: int) -> list[list[RowGroup]]:
    """Greedy largest-first assignment: disjoint shards with row counts as equal as row groups allow."""
    shards: list[list[RowGroup]] = [[] for _ in range(size)]
    totals = [0] * size
    for group in sorted(groups, key=lambda g: (-g.rows, g.path, g.index)):
        target = min(range(size), key=lambda r: (totals[r], r))
        shards[target].append(group)
        totals[target] += group.rows
    return shards


class ShardedParquetLoader:
    """Yields (x_num float32, x_cat int64, y) batches for one rank; the same step count on every rank."""

    def __init__(
        self,
        path: str,
        numeric_columns: list[str],
        categorical_columns: list[str],
        label_column: str | None,
        batch_size: int,
        rank: int,
        size: int,
        shuffle: bool,
        seed: int = 0,
        buffer_rows: int = 200_000,
        prefetch: int = 4,
        label_dtype: torch.dtype = torch.float32,
        max_steps: int | None = None,
    ):
        self.numeric_columns = list(numeric_columns)
        self.categorical_columns = list(categorical_columns)
        self.label_column = label_column
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.buffer_rows = max(buffer_rows, batch_size)
        self.prefetch = prefetch
        self.label_dtype = label_dtype
        dataset = ds.dataset(path, format="parquet")
        self._filesystem = dataset.filesystem
        groups = list_row_groups(dataset)
        if not groups:
            raise ValueError(f"no Parquet row groups under {path}")
        shards = assign_shards(groups, size)
        self.shard = shards[rank]
        self.shard_rows = [sum(g.rows for g in s) for s in shards]
        self.rows = self.shard_rows[rank]
        # Identical on every rank: computed from metadata only.
        self.steps_per_epoch = min(self.shard_rows) // batch_size
        if max_steps is not None:
            self.steps_per_epoch = min(self.steps_per_epoch, max_steps)
        self._fragments: dict[str, ds.ParquetFileFragment] = {}
        self._format = ds.ParquetFileFormat()

    def _columns(self) -> list[str]:
        return self.numeric_columns + self.categorical_columns + ([self.label_column] if self.label_column else [])

    def _read(self, group: RowGroup) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        fragment = self._fragments.get(group.path)
        if fragment is None:
            fragment = self._format.make_fragment(group.path, filesystem=self._filesystem)
            self._fragments[group.path] = fragment
        table = fragment.subset(row_group_ids=[group.index]).to_table(columns=self._columns())
        n = table.num_rows
        x_num = np.empty((n, len(self.numeric_columns)), dtype=np.float32)
        for j, name in enumerate(self.numeric_columns):
            x_num[:, j] = table.column(name).to_numpy()
        x_cat = np.empty((n, len(self.categorical_columns)), dtype=np.int64)
        for j, name in enumerate(self.categorical_columns):
            x_cat[:, j] = table.column(name).to_numpy()
        y = table.column(self.label_column).to_numpy() if self.label_column else np.zeros(n, dtype=np.float32)
        return x_num, x_cat, y

    def _arrays(self, epoch: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Shuffled (or ordered) array chunks of at most ~buffer_rows rows, streamed from disk."""
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.shard)) if self.shuffle else np.arange(len(self.shard))
        buffer: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        buffered = 0
        for i in order:
            buffer.append(self._read(self.shard[i]))
            buffered += len(buffer[-1][0])
            if buffered >= self.buffer_rows:
                yield self._mix(buffer, rng)
                buffer, buffered = [], 0
        if buffer:
            yield self._mix(buffer, rng)

    def _mix(self, buffer, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x_num = np.concatenate([b[0] for b in buffer])
        x_cat = np.concatenate([b[1] for b in buffer])
        y = np.concatenate([b[2] for b in buffer])
        if self.shuffle:
            perm = rng.permutation(len(y))
            x_num, x_cat, y = x_num[perm], x_cat[perm], y[perm]
        return x_num, x_cat, y

    def _batches(self, epoch: int, full_only: bool) -> Iterator[Batch]:
        carry: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        emitted = 0
        limit = self.steps_per_epoch if full_only else None
        for chunk in self._arrays(epoch):
            if carry is not None:
                chunk = tuple(np.concatenate([c, n]) for c, n in zip(carry, chunk, strict=True))
            start = 0
            while len(chunk[0]) - start >= self.batch_size:
                if limit is not None and emitted >= limit:
                    return
                end = start + self.batch_size
                yield self._to_torch(chunk, start, end)
                emitted += 1
                start = end
            carry = tuple(a[start:] for a in chunk)
        if not full_only and carry is not None and len(carry[0]):
            yield self._to_torch(carry, 0, len(carry[0]))

    def _to_torch(self, chunk, start: int, end: int) -> Batch:
        x_num, x_cat, y = (a[start:end] for a in chunk)
        return (
            torch.from_numpy(np.ascontiguousarray(x_num)),
            torch.from_numpy(np.ascontiguousarray(x_cat)),
            torch.from_numpy(np.ascontiguousarray(y)).to(self.label_dtype),
        )

    def train_epoch(self, epoch: int) -> Iterator[Batch]:
        """Exactly steps_per_epoch full batches (tail rows rotate out, since the order changes each epoch)."""
        return _prefetched(self._batches(epoch, full_only=True), self.prefetch)

    def eval_batches(self) -> Iterator[Batch]:
        """Every row of this rank's shard once, in order (the last batch may be short)."""
        return _prefetched(self._batches(0, full_only=False), self.prefetch)


_DONE = object()


def _prefetched(source: Iterator[Batch], depth: int) -> Iterator[Batch]:
    """Run `source` in a daemon thread, `depth` batches ahead; re-raise its errors in the consumer."""
    if depth <= 0:
        yield from source
        return
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in source:
                while not stop.is_set():
                    try:
                        buffer.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            buffer.put(_DONE)
        except BaseException as exc:  # handed to the consumer thread, which re-raises it
            buffer.put(exc)

    thread = threading.Thread(target=produce, name="parquet-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = buffer.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
