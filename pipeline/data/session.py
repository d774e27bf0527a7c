"""The one place a SparkSession is built from config (driver side)."""

from __future__ import annotations

import logging
import os
import re
import sys

from pipeline.config.schema import SparkConfig

log = logging.getLogger(__name__)


# Static settings a Connect client cannot set (the server fixed them when it started); runtime SQL settings it can.
_STATIC_PREFIXES = (
    "spark.ui.",
    "spark.local.dir",
    "spark.master",
    "spark.app.name",
    "spark.executor.",
    "spark.driver.",
)


def build_spark(cfg: SparkConfig):
    """Create (or reuse) the SparkSession described by `cfg`: a Spark Connect session when spark.remote (or the
    SPARK_REMOTE variable) names an endpoint, else a classic session on spark.master.

    Executors use this interpreter unless PYSPARK_PYTHON says otherwise, so workers import the same
    torch/horovod build as the driver.
    """
    remote = cfg.remote or os.environ.get("SPARK_REMOTE")
    if remote:
        return _connect_session(cfg, remote)
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.master(cfg.master).appName(cfg.app_name)
    for key, value in _settings(cfg).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    log.info("Spark %s session on %s", spark.version, cfg.master)
    return spark


def _settings(cfg: SparkConfig) -> dict[str, str]:
    settings = {
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.execution.arrow.maxRecordsPerBatch": str(cfg.arrow_batch_size),
        "spark.sql.shuffle.partitions": str(cfg.shuffle_partitions),
        "spark.sql.files.maxPartitionBytes": f"{cfg.max_partition_mb}m",
        "spark.sql.session.timeZone": "UTC",
        "spark.ui.enabled": "false" if cfg.ui_port is None else "true",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.debug.maxToStringFields": "1000",  # wide joined tables: no plan-truncation warning
    }
    if cfg.ui_port is not None:
        settings["spark.ui.port"] = str(cfg.ui_port)
    if cfg.local_dir:
        settings["spark.local.dir"] = cfg.local_dir
    return {**settings, **cfg.extra}


def _connect_session(cfg: SparkConfig, remote: str):
    """A Spark Connect session: runtime settings are sent; static ones (UI, executors...) belong to the server."""
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.remote(remote).getOrCreate()
    skipped = []
    for key, value in _settings(cfg).items():
        if key.startswith(_STATIC_PREFIXES):
            skipped.append(key)
            continue
        spark.conf.set(key, value)
    log.info("Spark %s Connect session on %s (server master %s)", spark.version, remote, master(spark))
    if skipped:
        log.info("left to the Connect server (static settings): %s", ", ".join(sorted(skipped)))
    return spark


def is_connect(spark) -> bool:
    """A Spark Connect session: no SparkContext, no JVM on this side (the classic-only seam below)."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def master(spark) -> str:
    """spark.master of the session (the server's, for Connect)."""
    if is_connect(spark):
        return spark.conf.get("spark.master", "unknown")
    return spark.sparkContext.master


def is_local_master(spark) -> bool:
    """local or local[k]: one process runs every task (not local-cluster, whose executors are separate JVMs)."""
    url = master(spark)
    return url == "local" or url.startswith("local[")


def conf_value(spark, key: str, default: str) -> str:
    """A Spark setting, static ones included (a Connect server answers for its own)."""
    if is_connect(spark):
        return spark.conf.get(key, default) or default
    return spark.sparkContext.getConf().get(key, default)


def default_parallelism(spark) -> int:
    """Cores the application can use at once: SparkContext's figure; on Connect, local[k]'s k or the setting."""
    if not is_connect(spark):
        return spark.sparkContext.defaultParallelism
    cores = re.fullmatch(r"local\[(\d+)(?:,\s*\d+)?\]", master(spark))
    if cores:
        return int(cores.group(1))
    return int(conf_value(spark, "spark.default.parallelism", "2"))


def registered_executors(spark) -> int | None:
    """Executors registered with a cluster master (classic only: Connect does not expose them)."""
    if is_connect(spark):
        return None
    return max(1, len(spark.sparkContext._jsc.sc().statusTracker().getExecutorInfos()) - 1)  # minus the driver


def file_bytes_read(spark) -> int | None:
    """Bytes read from files through Hadoop FileSystem so far, or None when executors run in other JVMs.

    Cache and shuffle reads do not count (unlike task input metrics), so prepare can state how many passes it
    made over the raw input, measured rather than assumed. Only visible for local masters.
    """
    if is_connect(spark) or not master(spark).startswith("local"):
        return None  # classic-only: executors in other JVMs, or no JVM on this side at all
    stats = spark.sparkContext._jvm.org.apache.hadoop.fs.FileSystem.getAllStatistics()
    return sum(s.getBytesRead() for s in stats)
