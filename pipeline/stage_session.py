"""The CLI's frame around one stage on the driver: the tracking store checked before Spark starts, the session
built (the store's first use overlapping the JVM's start), the stage run, and Spark always stopped."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("pipeline")


def with_spark(config, stage: Callable):
    """Build the session and the layout, run one stage, always stop Spark (keeps shutdown quiet, ports free)."""
    from pipeline.data.session import build_spark
    from pipeline.layout import Layout
    from pipeline.tracking import runs

    # Every stage here is tracked: a store that cannot work, an unreachable server or credentials it refuses
    # fail in seconds, before Spark starts (and claims executors on a cluster). The stage checks again.
    runs.configure(config.tracking, config.spark.master)
    # The store's first use (a new SQLite file runs MLflow's migrations: seconds) overlaps the JVM's start. Any
    # error is left to the stage, which opens the experiment again and reports it.
    store = threading.Thread(target=_open_experiment, args=(config.tracking,), name="open-experiment", daemon=True)
    store.start()
    spark = build_spark(config.spark)
    store.join()
    try:
        return stage(spark, Layout.from_config(config))
    finally:
        spark.stop()


def _open_experiment(tracking) -> None:
    from pipeline.tracking import runs

    try:
        runs.ensure_experiment(tracking)
    except Exception as exc:  # noqa: BLE001 - reported by the stage, which does the same again
        log.debug("opening the experiment early failed (%s); the stage will retry", exc)
