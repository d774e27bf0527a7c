"""The function each training rank runs (shipped by horovod.spark.run or TorchDistributor.run).

Sets up the rank's logging and its backend, runs the loop, and logs any failure with its traceback to the
rank's output, so the driver's error message can show the rank's last lines.
"""

from __future__ import annotations

import logging
import sys

from pipeline.worker.backends import RankBackend
from pipeline.worker.loop import train
from pipeline.worker.plan import EpochCallback, RankResult, TrainPlan

log = logging.getLogger("pipeline.worker")
_PIPELINE_LOG = logging.getLogger("pipeline")


def run_rank(plan: TrainPlan, backend_cls: type[RankBackend], on_epoch: EpochCallback | None = None) -> RankResult:
    """Train this rank with `backend_cls` (chosen on the driver from the backend table)."""
    _configure_rank_logging()
    try:
        backend = backend_cls(plan.use_gpu)
    except Exception:
        log.exception("could not initialise the %s backend", backend_cls.name)
        raise
    try:
        if plan.model_code is not None:
            plan.model_code.activate()  # before the factory is imported
        return train(plan, backend, on_epoch)
    except Exception:
        log.exception("[rank %d] training failed", backend.rank)
        raise
    finally:
        backend.shutdown()


def _configure_rank_logging() -> None:
    """Ranks are fresh processes: send the pipeline's INFO lines to stdout, where the launcher reads them."""
    if not _PIPELINE_LOG.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        _PIPELINE_LOG.addHandler(handler)
        _PIPELINE_LOG.setLevel(logging.INFO)
        _PIPELINE_LOG.propagate = False
