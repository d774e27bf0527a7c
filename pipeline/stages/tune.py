"""The tune stage on the driver: an Optuna study whose trials are real distributed training runs.

Each trial samples tune.space (search_space.py), trains through the train stage (Horovod or DDP, the configured
num_proc) as a nested MLflow run under one `tune` run, and reports every epoch's validation metric to the
pruner from rank 0 (trial_pruner.py). A failed trial is recorded with its reason and the study goes on. The study
lives in Optuna storage, so a killed tune resumes: trials left RUNNING by the dead process are marked failed and
re-queued with the same values, which re-opens their unfinished train run and continues from its checkpoint.
At the end the best trial's weights are registered (@candidate) and promoted by the usual rule.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import replace

from pipeline.config.load import with_values
from pipeline.config.schema import PipelineConfig
from pipeline.errors import ConfigError, DataError, PipelineError, TrainingError
from pipeline.launch.gpu_resources import check_parallel_gpu_trials
from pipeline.launch.launchers import check_backend_session
from pipeline.launch.planning import MONITOR_BY_TASK, build_plan
from pipeline.launch.slots import available_slots
from pipeline.layout import Layout
from pipeline.stages import train as train_stage
from pipeline.storage import files
from pipeline.storage.uri_fs import is_local
from pipeline.tracking import runs
from pipeline.tracking.tracked import tracked_stage
from pipeline.tuning.report import (
    INTERRUPTED,
    TrialSummary,
    TuneResult,
    counted_trials,
    log_study,
    study_result,
)
from pipeline.tuning.search_space import check_space, suggest
from pipeline.worker.metrics import higher_is_better
from pipeline.worker.trial_pruner import TrialPruner, build_pruner

log = logging.getLogger(__name__)
TAG_STUDY, TAG_TRIAL, TAG_STATE, TAG_REASON = "tune.study", "tune.trial", "tune.state", "tune.failure"
VAL_METRICS = {
    "binary": ("val_loss", "val_auc", "val_accuracy"),
    "multiclass": ("val_loss", "val_accuracy"),
    "regression": ("val_loss", "val_rmse", "val_mae"),
}


class TrialFailed(PipelineError):
    """A trial's own failure (its reason is recorded); caught by the study, which goes on."""


def tuned_metric(config: PipelineConfig, task: str) -> str:
    metric = config.tune.metric or config.train.monitor or MONITOR_BY_TASK[task]
    if metric not in VAL_METRICS[task]:
        raise ConfigError(
            f"tune.metric={metric!r} is not a validation metric of a {task} task. Fix: one of "
            f"{', '.join(VAL_METRICS[task])}"
        )
    return metric


def check_parallel_slots(spark, config: PipelineConfig) -> None:
    """parallel x num_proc ranks run at once: fail before the first trial when the slots are not there.

    Parallel trials run in driver threads; horovod.spark.run installs signal handlers, which Python allows only
    in the main thread, so parallel trials take the torch_distributor backend.
    """
    if config.tune.parallel > 1 and config.train.backend == "horovod":
        raise ConfigError(
            f"tune.parallel={config.tune.parallel} runs trials in threads of the driver, and horovod.spark.run works "
            "only from its main thread. Fix: set train.backend=torch_distributor for parallel trials, or "
            "tune.parallel=1"
        )
    check_backend_session(spark, config.train)
    check_parallel_gpu_trials(spark, config.train, config.tune.parallel)
    needed = config.tune.parallel * config.train.num_proc
    slots, source = available_slots(spark)
    if slots is not None and needed > slots:
        raise TrainingError(
            f"tune.parallel={config.tune.parallel} trials x train.num_proc={config.train.num_proc} workers need "
            f"{needed} task slots, but the Spark application has {slots} ({source}). Fix: lower tune.parallel to "
            f"{max(1, slots // config.train.num_proc)} or give Spark more cores"
        )


def run(spark, config: PipelineConfig, layout: Layout, force_promote: bool = False) -> TuneResult:
    """Run (or resume) the study, then register and promote the best trial's model.

    Raises:
        ConfigError: a bad search space or metric, before any trial. TrainingError: not enough task slots.
        DataError: prepare has not run. TrackingError: MLflow.
    """
    import optuna

    started = time.perf_counter()
    check_space(config)
    spec = train_stage.load_prepared_spec(layout)
    metric = tuned_metric(config, spec.label.task)
    check_parallel_slots(spark, config)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = _open_study(config, layout, metric)
    _requeue_interrupted(study)
    remaining = config.tune.trials - len(counted_trials(study))  # re-queued trials are among these (not counted)
    if remaining <= 0:
        log.info("study %s already has its %d trials: nothing to run", study.study_name, config.tune.trials)
        return study_result(study, config, metric, None, time.perf_counter() - started)

    with tracked_stage(config, "tune", resume=True) as stage:
        runs.set_tags({TAG_STUDY: study.study_name})
        objective = _Objective(spark, config, layout, metric, study.study_name, _storage(config, layout), stage.run_id)
        log.info(
            "study %s: %d trial(s) to run (%d at a time), optimising %s",
            study.study_name,
            remaining,
            config.tune.parallel,
            metric,
        )
        study.optimize(
            objective,
            n_trials=remaining,
            timeout=config.tune.timeout_s,
            n_jobs=config.tune.parallel,
            catch=(TrialFailed,),
        )
        result = study_result(study, config, metric, stage.run_id, time.perf_counter() - started)
        log_study(study, result, layout)
        if result.best is not None:
            best_config = with_values(config, result.best.params, f"tune best trial {result.best.number}")
            model, promotion = _register_best(spark, best_config, layout, result.best, force_promote)
            result = replace(result, model=model, promotion=promotion)
    return result


class _Objective:
    """One trial: sample, train as a nested run (pruned from rank 0), return the best epoch's metric."""

    def __init__(self, spark, config, layout, metric, study_name, storage, parent_run_id):
        self.spark, self.config, self.layout, self.metric = spark, config, layout, metric
        self.study_name, self.storage, self.parent_run_id = study_name, storage, parent_run_id

    def __call__(self, trial) -> float:
        import optuna

        values = suggest(trial, self.config.tune.space)
        log.info("trial %d: %s", trial.number, values)
        tags = {TAG_STUDY: self.study_name, TAG_TRIAL: str(trial.number)}
        try:
            trial_config = with_values(self.config, values, f"tune trial {trial.number}")
            pruner = None
            if self.config.tune.pruner != "none":
                settings = _pruner_settings(self.config)
                pruner = TrialPruner(self.storage, self.study_name, trial._trial_id, self.metric, settings)
            outcome = train_stage.run(
                self.spark,
                trial_config,
                self.layout,
                register=False,
                on_epoch=pruner,
                parent_run_id=self.parent_run_id,
                tags=tags,
            )
        except (ConfigError, DataError, TrainingError) as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:500]
            trial.set_user_attr("failure", reason)
            self._record_failure(tags, reason, values)
            log.warning("trial %d failed: %s", trial.number, reason)
            raise TrialFailed(reason) from None
        history = outcome.result.history
        trial.set_user_attr("train_run_id", outcome.run_id)
        trial.set_user_attr("epochs_run", outcome.result.epochs_run)
        trial.set_user_attr("max_epochs", outcome.max_epochs)
        values_seen = [r[self.metric] for r in history if r.get(self.metric) == r.get(self.metric)]  # not NaN
        if not values_seen:
            raise TrialFailed(f"no finite {self.metric} in any epoch")
        best = max(values_seen) if higher_is_better(self.metric) else min(values_seen)
        state = "pruned" if outcome.result.stopped_by_callback else "complete"
        runs.set_run_tags(outcome.run_id, {TAG_STATE: state, f"tune.{self.metric}": f"{best:.6f}"})
        if state == "pruned":
            raise optuna.TrialPruned(f"pruned after epoch {outcome.result.epochs_run}")
        return best

    def _record_failure(self, tags: dict[str, str], reason: str, values: dict) -> None:
        """Tag the trial's train run when it exists, else record the trial as a run of its own."""
        failed = runs.find_runs(self.config.tracking, tags)
        for run_id in failed:
            runs.set_run_tags(run_id, {TAG_STATE: "failed", TAG_REASON: reason})
        if failed:
            return
        with contextlib.suppress(TrialFailed):
            with tracked_stage(self.config, "trial", parent_run_id=self.parent_run_id):
                runs.set_tags({**tags, TAG_STATE: "failed", TAG_REASON: reason})
                runs.log_params({f"trial.{k}": v for k, v in values.items()})
                raise TrialFailed(reason)  # ends this record FAILED


def _storage(config: PipelineConfig, layout: Layout) -> str:
    if config.tune.storage:
        return config.tune.storage
    if not is_local(layout.tune_dir):
        raise ConfigError(
            f"work_dir is {layout.work_dir}, but the study's default store is a SQLite file, which needs a local "
            "disk. Fix: set tune.storage to a database URL (e.g. postgresql://user@host/optuna) or "
            "sqlite:////local/folder/optuna.db"
        )
    files.make_dirs(layout.tune_dir)
    return layout.tune_storage


def _pruner_settings(config: PipelineConfig) -> tuple[str, int, int]:
    return config.tune.pruner, config.tune.pruner_startup_trials, config.tune.pruner_warmup_epochs


def _open_study(config: PipelineConfig, layout: Layout, metric: str):
    import optuna

    tune = config.tune
    pruner = build_pruner(*_pruner_settings(config))
    return optuna.create_study(
        study_name=tune.study_name or f"{config.tracking.model_name}-tune",
        storage=_storage(config, layout),
        sampler=optuna.samplers.TPESampler(seed=tune.seed),
        pruner=pruner,
        direction="maximize" if higher_is_better(metric) else "minimize",
        load_if_exists=True,
    )


def _requeue_interrupted(study) -> list[int]:
    """Trials a dead process left RUNNING: mark them failed (interrupted) and queue their values again."""
    from optuna.trial import TrialState

    requeued = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study._storage.set_trial_user_attr(trial._trial_id, INTERRUPTED, True)
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        study.enqueue_trial(trial.params, skip_if_exists=False)
        requeued.append(trial.number)
        log.warning("trial %d was interrupted (its process died); queued again with the same values", trial.number)
    return requeued


def _register_best(spark, config: PipelineConfig, layout: Layout, best: TrialSummary, force: bool):
    """Register the best trial's weights from its finished train run, in the tune run, and promote as usual."""
    spec = train_stage.load_prepared_spec(layout)
    rank_result = train_stage.load_result(best.train_run_id)
    plan = build_plan(config, spec, layout, best.train_run_id)  # the plan the best trial used
    runs.log_metrics(rank_result.test_metrics)  # promotion compares the registering run's test metric
    return train_stage.register_and_evaluate(spark, config, layout, plan, rank_result, force)
