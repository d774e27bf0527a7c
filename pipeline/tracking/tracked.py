"""The one place a stage's MLflow run is started and ended: start (or re-open), mark FAILED on error, finish.

A stage inside another (prepare/train/score inside `run`) becomes a nested run of the outer one, so the UI
groups a pipeline execution. A run that raised ends FAILED with the tag `pipeline.status=failed`; a resumable
stage (train) re-opens any unfinished run on the next attempt with the same config.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass

from pipeline.config.schema import PipelineConfig
from pipeline.environment import NO_CLIENT_RETRIES, scoped_env
from pipeline.errors import TrackingError
from pipeline.tracking import runs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StageRun:
    run_id: str
    tracking_uri: str  # resolved, so training ranks on other processes reach the same store
    resumed: bool  # an unfinished run of this stage with the same config was re-opened


@contextlib.contextmanager
def tracked_stage(
    config: PipelineConfig, stage: str, resume: bool = False, parent_run_id: str | None = None
) -> Iterator[StageRun]:
    """Run the body inside an MLflow run for `stage`; an unreachable store fails before any work.

    Args:
        resume: re-open the newest unfinished run of this stage whose config hash matches, if there is one.
        parent_run_id: nest under this run although no run is active in this thread (a parallel tuning trial).
    """
    uri = runs.configure(config.tracking, config.spark.master)
    experiment_id = runs.ensure_experiment(config.tracking)
    resume_id = None
    if resume:
        resume_id = runs.find_resumable_run(experiment_id, stage, runs.config_hash(config))
    run = runs.start_run(experiment_id, stage, config, run_id=resume_id, parent_run_id=parent_run_id)
    try:
        yield StageRun(run.info.run_id, uri, resume_id is not None)
    except TrackingError:
        # The server is (still) away: try once to mark the run FAILED; if that fails too, the run stays open and the
        # next attempt with the same config re-opens it (a resumable stage) rather than waiting out the retries here.
        # end_run leaves MLflow's active-run stack first, so no later stage nests under this run even if it raises.
        try:
            with scoped_env(NO_CLIENT_RETRIES):
                runs.end_run("FAILED")
                runs.mark_failed(run.info.run_id)
        except Exception as exc:  # noqa: BLE001 - the TrackingError being raised is the one to report
            log.warning("could not mark run %s FAILED (%s); it stays open", run.info.run_id, type(exc).__name__)
        raise
    except BaseException:
        runs.end_run("FAILED")
        try:
            runs.mark_failed(run.info.run_id)
        except Exception as exc:  # noqa: BLE001 - the stage's own error is the one to report
            log.warning("could not tag run %s failed (%s)", run.info.run_id, type(exc).__name__)
        raise
    runs.mark_finished(run.info.run_id)
    runs.end_run()
