"""Rank 0's per-epoch MLflow logging: a callback built on the driver and called inside the training rank.

Its own module, importing nothing of the pipeline, because it is unpickled in the rank: the rank must not
import the config, the tracking module or Spark just to log an epoch.

Training waits for the tracking server a few seconds at most: each epoch's record goes into a queue that a
background thread sends, retrying with exponential backoff while the server is away (restarted, a network blip) for
up to `outage_limit_s`. The rank waits up to SENT_WAIT_S for its epoch to be sent, so normally the metrics are in the
run before the checkpoint says the epoch is done; during an outage it goes on training after that. What is still
unsent when the rank exits is not lost: every record is also in the checkpoint's history and the rank's result,
and the driver sends what the run lacks afterwards (pipeline/tracking/metric_backfill.py).
"""

from __future__ import annotations

import logging
import queue
import threading
import time

log = logging.getLogger("pipeline.worker.mlflow")
MAX_BACKOFF_S = 15.0
SENT_WAIT_S = 5.0


class MlflowEpochLogger:
    """Logs one epoch's metrics record to a run, by id, through its own client (no active run in the rank)."""

    def __init__(self, tracking_uri: str, run_id: str, outage_limit_s: float = 300.0):
        self.tracking_uri = tracking_uri
        self.run_id = run_id
        self.outage_limit_s = outage_limit_s
        self._queue: queue.Queue | None = None  # started in the rank, at the first epoch
        self._sent: threading.Condition | None = None
        self._last_sent_epoch = -1

    def __getstate__(self) -> dict:
        # the thread, its queue and its condition stay in the process that made them
        return {**self.__dict__, "_queue": None, "_sent": None, "_last_sent_epoch": -1}

    def __call__(self, record: dict, epoch: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, epoch) for k, v in record.items() if k != "epoch"]
        if self._queue is None:
            self._queue, self._sent = queue.Queue(), threading.Condition()
            threading.Thread(target=self._send_forever, name="mlflow-epoch-logger", daemon=True).start()
        self._queue.put(metrics)
        with self._sent:
            self._sent.wait_for(lambda: self._last_sent_epoch >= epoch, timeout=SENT_WAIT_S)

    def _send_forever(self) -> None:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=self.tracking_uri)
        pending: list = []
        down_since: float | None = None
        backoff = 1.0
        while True:
            pending.extend(self._queue.get())
            while not self._queue.empty():  # whatever piled up during an outage goes in one batch
                pending.extend(self._queue.get_nowait())
            try:
                client.log_batch(self.run_id, metrics=pending)
            except Exception as exc:  # noqa: BLE001 - any failure to reach the server is retried the same way
                now = time.monotonic()
                down_since = down_since or now
                if now - down_since > self.outage_limit_s:
                    log.error(
                        "MLflow tracking server %s unreachable for %.0f s (%s); %d epoch metric(s) wait for the "
                        "driver to send them",
                        self.tracking_uri,
                        now - down_since,
                        type(exc).__name__,
                        len(pending),
                    )
                    return
                log.warning("MLflow logging failed (%s); retrying in %.0f s", type(exc).__name__, backoff)
                self._queue.put([])  # wake up again after the sleep even when no new epoch arrives
                time.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            if down_since is not None:
                log.info("MLflow tracking server back after %.0f s", time.monotonic() - down_since)
            with self._sent:
                self._last_sent_epoch = max([self._last_sent_epoch, *(m.step for m in pending)])
                self._sent.notify_all()
            pending, down_since, backoff = [], None, 1.0
