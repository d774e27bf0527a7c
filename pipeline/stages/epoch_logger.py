"""Rank 0's per-epoch MLflow logging: a callback built on the driver and called inside the training rank.

Its own module, importing nothing of the pipeline, because it is unpickled in the rank: the rank must not
import the config, the tracking module or Spark just to log an epoch.
"""

from __future__ import annotations

import time


class MlflowEpochLogger:
    """Logs one epoch's metrics record to a run, by id, through its own client (no active run in the rank)."""

    def __init__(self, tracking_uri: str, run_id: str):
        self.tracking_uri = tracking_uri
        self.run_id = run_id

    def __call__(self, record: dict, epoch: int) -> None:
        from mlflow.entities import Metric
        from mlflow.tracking import MlflowClient

        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, epoch) for k, v in record.items() if k != "epoch"]
        MlflowClient(tracking_uri=self.tracking_uri).log_batch(self.run_id, metrics=metrics)
