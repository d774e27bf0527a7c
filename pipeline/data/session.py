"""The one place a SparkSession is built from config (driver side)."""

from __future__ import annotations

import logging
import os
import sys

from pipeline.config.schema import SparkConfig

log = logging.getLogger(__name__)


def build_spark(cfg: SparkConfig):
    """Create (or reuse) the SparkSession described by `cfg`.

    Executors use this interpreter unless PYSPARK_PYTHON says otherwise, so workers import the same
    torch/horovod build as the driver.
    """
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.master(cfg.master)
        .appName(cfg.app_name)
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(cfg.arrow_batch_size))
        .config("spark.sql.shuffle.partitions", str(cfg.shuffle_partitions))
        .config("spark.sql.files.maxPartitionBytes", f"{cfg.max_partition_mb}m")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false" if cfg.ui_port is None else "true")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.debug.maxToStringFields", "1000")  # wide joined tables: no plan-truncation warning
    )
    if cfg.ui_port is not None:
        builder = builder.config("spark.ui.port", str(cfg.ui_port))
    if cfg.local_dir:
        builder = builder.config("spark.local.dir", cfg.local_dir)
    for key, value in cfg.extra.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    log.info("Spark %s session on %s", spark.version, cfg.master)
    return spark


def file_bytes_read(spark) -> int | None:
    """Bytes read from files through Hadoop FileSystem so far, or None when executors run in other JVMs.

    Cache and shuffle reads do not count (unlike task input metrics), so prepare can state how many passes it
    made over the raw input, measured rather than assumed. Only visible for local masters.
    """
    if not spark.sparkContext.master.startswith("local"):
        return None
    stats = spark.sparkContext._jvm.org.apache.hadoop.fs.FileSystem.getAllStatistics()
    return sum(s.getBytesRead() for s in stats)
