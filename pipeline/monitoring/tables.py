"""The monitoring tables' one write and one read. Write: a small pandas frame replaces one partition (date=… or
batch=…), written to a staging folder and swapped in like the predictions, so a rerun replaces its rows and
readers never see half. Read: the date= partitions of a range as one pandas frame. Driver side (the rows are a
few per batch)."""

from __future__ import annotations

import datetime as dt
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


def read_dates(spark, output: DatedOutput, first: str, end: str):
    """The `date=` partitions of `output` from `first` to `end` (excluded) as pandas with a `date` column (ISO
    text), in one Spark read; None when none exists (a `batch=` partition is never read)."""
    from pyspark.sql import functions as F

    storage = Storage()
    start, stop = dt.date.fromisoformat(first), dt.date.fromisoformat(end)
    days = [(start + dt.timedelta(days=i)).isoformat() for i in range((stop - start).days)]
    paths = [output.partition(f"date={day}") for day in days if storage.exists(output.partition(f"date={day}"))]
    if not paths:
        return None
    day = F.regexp_extract(F.input_file_name(), r"date=([0-9-]+)", 1)
    return spark.read.parquet(*paths).withColumn("date", day).toPandas()
