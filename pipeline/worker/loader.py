"""Arrow-native, rank-sharded, streaming Parquet -> torch batch loader (worker side).

Each rank owns a disjoint set of row groups. Every rank computes the same steps-per-epoch from Parquet
metadata alone (the smallest shard's full batches), so synchronous allreduce never waits on a rank that
ran out of data. Rows are shuffled by an epoch-seeded row-group order plus a bounded shuffle buffer, and a
background thread prefetches batches while the model trains; a second one decodes the next row group meanwhile
(Arrow releases the GIL), so Parquet decoding overlaps the copies into and out of the buffer.

A batch is (mapping of named tensors, label): the mapping holds one tensor per TensorInput the loader was given
(pipeline/model/inputs.py), e.g. `numeric` float32 [B, n], `categorical` int64 [B, k], and images as stored: uint8
[B, C, H, W] (normalised later, on the device).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import torch

from pipeline.model.inputs import TensorInput
from pipeline.storage.files import parquet_dataset

Batch = tuple[dict[str, torch.Tensor], torch.Tensor]
# Decode the next row group while the current one is copied only when holding one more decoded group is cheap
# (tabular groups: ~20 MB; a 131,072-row group of 3x64x64 images would be 1.6 GB).
READ_AHEAD_MAX_BYTES = 256 << 20


@dataclass(frozen=True)
class RowGroup:
    path: str
    index: int
    rows: int
    nbytes: int = 0  # uncompressed, all columns (Parquet metadata)


def list_row_groups(dataset: ds.FileSystemDataset) -> list[RowGroup]:
    """All row groups of a Parquet dataset, in a stable order (file path, index)."""
    groups = []
    for fragment in sorted(dataset.get_fragments(), key=lambda f: f.path):
        for rg in range(fragment.metadata.num_row_groups):
            meta = fragment.metadata.row_group(rg)
            groups.append(RowGroup(fragment.path, rg, meta.num_rows, meta.total_byte_size))
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
    """Yields ({name: tensor}, y) batches for one rank; the same step count on every rank."""

    def __init__(
        self,
        path: str,
        tensors: list[TensorInput],
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
        pin_memory: bool = False,
    ):
        self.tensors = list(tensors)
        self.pin_memory = pin_memory  # CUDA ranks: pinned in the prefetch thread, so the copy to the GPU is async
        self.label_column = label_column
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.buffer_rows = max(buffer_rows, batch_size)
        self.prefetch = prefetch
        self.label_dtype = label_dtype
        dataset = parquet_dataset(path)  # a path or any URI the storage layer reads (s3://...)
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
        columns = [c for tensor in self.tensors for c in tensor.columns]
        return columns + ([self.label_column] if self.label_column else [])

    def _table(self, group: RowGroup):
        fragment = self._fragments.get(group.path)
        if fragment is None:
            fragment = self._format.make_fragment(group.path, filesystem=self._filesystem)
            self._fragments[group.path] = fragment
        return fragment.subset(row_group_ids=[group.index]).to_table(columns=self._columns())

    def _tables(self, order: np.ndarray) -> Iterator[pa.Table]:
        """The shard's row groups in `order`, each decoded in a reader thread while the previous one is in use.

        One read ahead: at most one decoded row group waits besides the one being copied (none when groups are
        larger than READ_AHEAD_MAX_BYTES). Errors re-raise here. Measured on 40 float columns: epochs ~1.2x faster
        when a core is free, the same CPU time.
        """
        groups = [self.shard[i] for i in order]
        if max((g.nbytes for g in groups), default=0) > READ_AHEAD_MAX_BYTES:
            yield from map(self._table, groups)
            return
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parquet-read")
        try:
            pending = pool.submit(self._table, groups[0]) if groups else None
            for position in range(len(groups)):
                table = pending.result()
                if position + 1 < len(groups):
                    pending = pool.submit(self._table, groups[position + 1])
                yield table
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def _fill(self, buffers, offset: int, table: pa.Table) -> int:
        """Copy one decoded row group into the row-major shuffle buffer; returns its row count.

        Columns come from Arrow without a copy (single-chunk, no nulls), are stacked contiguously and
        transposed in one block: measured ~5.7M rows/s here, versus ~5.2M for 40 strided column writes.
        """
        n = table.num_rows
        *features, y = buffers
        for tensor, buffer in zip(self.tensors, features, strict=True):
            if tensor.packed:  # one column holding a whole tensor per row (image pixels, token ids)
                buffer[offset : offset + n] = _packed_rows(table, tensor.columns[0], tensor.shape)
            else:
                buffer[offset : offset + n] = np.stack([_column(table, c) for c in tensor.columns]).T
        if self.label_column:
            y[offset : offset + n] = _column(table, self.label_column)
        return n

    def _batches(self, epoch: int, full_only: bool) -> Iterator[Batch]:
        """Fill a preallocated buffer, permute it, gather each batch once (one copy in, one copy out)."""
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.shard)) if self.shuffle else np.arange(len(self.shard))
        capacity = self.buffer_rows + max((g.rows for g in self.shard), default=0)
        y_dtype = np.int64 if self.label_dtype == torch.int64 else np.float32
        # Row-major, so a batch is a gather of whole rows (~15M rows/s here, vs ~6M column-wise).
        buffers = (
            *(np.empty((capacity, *t.shape), dtype=np.dtype(t.loader_dtype)) for t in self.tensors),
            np.zeros(capacity, dtype=y_dtype),
        )
        limit = self.steps_per_epoch if full_only else None
        tables = self._tables(order)
        try:
            yield from self._emit(buffers, tables, rng, limit, full_only)
        finally:
            tables.close()  # stops the reader when the consumer stops early

    def _emit(self, buffers, tables: Iterator[pa.Table], rng, limit: int | None, full_only: bool) -> Iterator[Batch]:
        """Per buffer fill: one permutation, then full batches; the tail rows move to the front of the next fill."""
        emitted, filled = 0, 0
        for position, table in enumerate(tables):
            filled += self._fill(buffers, filled, table)
            last = position == len(self.shard) - 1
            if filled < self.buffer_rows and not last:
                continue
            index = rng.permutation(filled) if self.shuffle else np.arange(filled)
            full = filled - filled % self.batch_size
            for start in range(0, full, self.batch_size):
                if limit is not None and emitted >= limit:
                    return
                yield self._gather(buffers, index[start : start + self.batch_size])
                emitted += 1
            rest = index[full:]
            if last:
                if not full_only and len(rest):
                    yield self._gather(buffers, rest)
                return
            for buffer in buffers:  # carry the tail into the next fill (take copies first)
                buffer[: len(rest)] = np.take(buffer, rest, axis=0)
            filled = len(rest)

    def _gather(self, buffers, index: np.ndarray) -> Batch:
        """Fresh arrays for one batch (the buffer is reused afterwards).

        np.take along axis 0 copies whole rows: ~3.5x faster here than the equal `b[index]` (fancy indexing) on a
        53 MB float buffer of 40 columns, and 2x on 28x28 uint8 images.
        """
        *features, y = (torch.from_numpy(np.take(b, index, axis=0)) for b in buffers)
        if self.pin_memory:  # here, in the prefetch thread, not on the training thread
            features, y = [x.pin_memory() for x in features], y.pin_memory()
        return {t.name: x for t, x in zip(self.tensors, features, strict=True)}, y

    def train_epoch(self, epoch: int) -> Iterator[Batch]:
        """Exactly steps_per_epoch full batches (tail rows rotate out, since the order changes each epoch)."""
        return _prefetched(self._batches(epoch, full_only=True), self.prefetch)

    def eval_batches(self) -> Iterator[Batch]:
        """Every row of this rank's shard once, in order (the last batch may be short)."""
        return _prefetched(self._batches(0, full_only=False), self.prefetch)


def _column(table, name: str) -> np.ndarray:
    """A column as numpy, zero-copy when Arrow allows it (one chunk, no nulls)."""
    column = table.column(name)
    if column.num_chunks == 1:
        return column.chunk(0).to_numpy(zero_copy_only=False)
    return column.to_numpy()


def _packed_rows(table, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """A column of equal-size values (binary: uint8 pixels; list<int32>: token ids) as [rows, *shape], no per-row copy.

    Arrow keeps the values of a binary or list column back to back in one buffer, so each chunk is one reshape of
    that buffer; a value of another size means the features Parquet does not match the spec.
    """
    size = int(np.prod(shape))
    parts = []
    for chunk in table.column(name).chunks:
        if len(chunk) == 0:
            continue
        if pa.types.is_list(chunk.type) or pa.types.is_large_list(chunk.type):
            offsets = chunk.offsets.to_numpy()
            values = chunk.values.to_numpy(zero_copy_only=False)
        else:
            offsets_type = np.int64 if pa.types.is_large_binary(chunk.type) else np.int32
            _, offsets_buffer, data = chunk.buffers()
            offsets = np.frombuffer(offsets_buffer, dtype=offsets_type)[chunk.offset : chunk.offset + len(chunk) + 1]
            values = np.frombuffer(data, dtype=np.uint8)
        if chunk.null_count or np.any(np.diff(offsets) != size):
            raise ValueError(
                f"column {name!r} holds values that are not {' x '.join(map(str, shape))} = {size} items, or nulls: "
                "the features Parquet does not match the feature spec. Fix: re-run prepare"
            )
        parts.append(values[offsets[0] : offsets[-1]].reshape(len(chunk), *shape))
    if not parts:
        return np.empty((0, *shape))
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


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
