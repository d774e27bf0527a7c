"""The monitoring tables' one write: a small pandas frame replaces one partition (date=… or batch=…), written to a
staging folder and swapped in like the predictions, so a rerun replaces its rows and readers never see half.
Driver side (the rows are a few per batch)."""

from __future__ import annotations

import uuid

from pipeline.layout import DatedOutput
from pipeline.storage.folders import Storage


def replace_partition(spark, storage: Storage, output: DatedOutput, partition: str, frame) -> str:
    """Write `frame` as `output`'s partition `partition`; returns the partition's path."""
    token = uuid.uuid4().hex[:8]
    staged = output.staged_partition(token, partition)
    try:
        spark.createDataFrame(frame).coalesce(1).write.mode("overwrite").parquet(staged)
        storage.replace_dir(staged, output.partition(partition))
    finally:
        storage.delete(output.staging(token))
    return output.partition(partition)
