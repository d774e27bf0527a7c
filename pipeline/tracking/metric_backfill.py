"""After training, on the driver: send the epoch metrics the run lacks (rank 0 could not reach the tracking server).

Rank 0 logs each epoch in the background and keeps going while the server is away (pipeline/worker/epoch_logger.py);
records still unsent when it exits are in the rank's result. Here each metric's logged steps are compared with the
result's history and the missing ones are logged, retrying with backoff until tracking.outage_limit_s, so a run
never ends FINISHED with a hole in its curves.
"""

from __future__ import annotations

import logging
import time

from pipeline.environment import NO_CLIENT_RETRIES, scoped_env
from pipeline.errors import TrackingError

log = logging.getLogger(__name__)


def send_missing_epoch_metrics(tracking_uri: str, run_id: str, history: list[dict], outage_limit_s: float) -> int:
    """Log every (metric, epoch) of `history` the run does not have yet; returns how many were sent.

    Raises:
        TrackingError: the server did not answer for outage_limit_s (names the URL; checkpoints stay).
    """
    started = time.monotonic()
    backoff = 1.0
    while True:
        try:
            with scoped_env(NO_CLIENT_RETRIES):  # this loop backs off itself, bounded by outage_limit_s
                return _send_missing(tracking_uri, run_id, history)
        except Exception as exc:  # noqa: BLE001 - an unreachable server surfaces as several exception types
            waited = time.monotonic() - started
            if waited + backoff > outage_limit_s:
                raise TrackingError(
                    f"MLflow tracking server {tracking_uri} did not answer for {waited:.0f} s "
                    f"(tracking.outage_limit_s={outage_limit_s:g}; last error {type(exc).__name__}: "
                    f"{str(exc).splitlines()[0][:200] if str(exc) else ''}). Training finished and its checkpoints "
                    "are kept. Fix: bring the server back, then re-run the same command: it resumes the run, sends "
                    "the epoch metrics and registers the model"
                ) from None
            log.warning(
                "MLflow server %s not answering (%s); retrying in %.0f s", tracking_uri, type(exc).__name__, backoff
            )
            time.sleep(backoff)
            backoff = min(backoff * 2, 15.0)


def _send_missing(tracking_uri: str, run_id: str, history: list[dict]) -> int:
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    keys = sorted({key for record in history for key in record if key != "epoch"})
    now = int(time.time() * 1000)
    missing = []
    for key in keys:
        logged = {m.step for m in client.get_metric_history(run_id, key)}
        missing += [
            Metric(key, float(r[key]), now, r["epoch"]) for r in history if key in r and r["epoch"] not in logged
        ]
    for start in range(0, len(missing), 1000):  # MLflow's log_batch limit
        client.log_batch(run_id, metrics=missing[start : start + 1000])
    if missing:
        log.info("sent %d epoch metric value(s) that rank 0 could not log during training", len(missing))
    return len(missing)
