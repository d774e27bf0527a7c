"""`python -m pipeline retrain --date D`: champion/challenger on a rolling window, as one MLflow run on the driver.

The policy (retrain.when) is checked first from the monitoring tables. Then the challenger is prepared and
trained like any model, from the user's config with a time split on the rolling window (pipeline/data/
rolling_window.py) under work_dir/retrain/D; its test split is the compare window, which both the challenger
and the current @champion predict (pipeline/tracking/challenger.py). The decision, both metrics and the window
go to the retrain run (params, metrics, tags, retrain/decision.json) and to the one-line summary. A killed
retrain rerun with the same --date re-opens the challenger's unfinished train run (its config is the same).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from pipeline.config.schema import PipelineConfig
from pipeline.data.rolling_window import RetrainWindow, challenger_config, overlap_with_champion, window_ending
from pipeline.errors import ConfigError, DataError
from pipeline.launch.planning import MONITOR_BY_TASK
from pipeline.layout import Layout
from pipeline.monitoring.retrain_policy import TriggerCheck, check_policy
from pipeline.stages import prepare, train
from pipeline.stages.train import TrainResult
from pipeline.tracking import runs
from pipeline.tracking.challenger import compare_on_window, current_champion
from pipeline.tracking.registry import CHAMPION
from pipeline.tracking.tracked import tracked_stage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetrainResult:
    window: RetrainWindow
    checks: list[TriggerCheck]
    trained: TrainResult | None  # None: no trigger fired, nothing trained
    run_id: str | None = None

    def summary(self) -> str:
        """One line for the scheduler's log: what happened and why."""
        if self.trained is None:
            reasons = "; ".join(c.reason for c in self.checks) or "retrain.when is empty"
            return f"retrain {self.window.last_date}: not needed ({reasons})"
        decision = self.trained.promotion
        outcome = f"v{decision.candidate_version} promoted to @{CHAMPION}" if decision.promoted else "champion kept"
        return (
            f"retrain {self.window.last_date}: {outcome}; {decision.reason}. Trained on "
            f"{self.window.train[0]}..{self.window.train[1]}, compared on {self.window.compare[0]}.."
            f"{self.window.compare[1]} (end excluded)"
        )


def promotion_metric(config: PipelineConfig) -> str:
    """The metric both models are compared by: tracking.promote_metric, else test_ of the monitored metric."""
    monitor = config.train.monitor or MONITOR_BY_TASK[config.features.label.task]
    return config.tracking.promote_metric or "test_" + monitor.removeprefix("val_")


def run(spark, config: PipelineConfig, layout: Layout, last_date: str, ignore_policy: bool = False) -> RetrainResult:
    """Check the policy, then prepare, train and compare a challenger whose compare window ends at `last_date`.

    Raises:
        ConfigError: no date column, a champion trained on the compare window. DataError: no labelled rows in
        a window. TrainingError/TrackingError as train does.
    """
    window = window_ending(last_date, config)
    metric = promotion_metric(config)
    checks = check_policy(spark, config, layout, window, metric)
    for check in checks:
        log.info("retrain.when %s: %s", check.trigger, check.reason)
    if not ignore_policy and not any(check.fired for check in checks):
        return RetrainResult(window, checks, None)
    challenger = challenger_config(config, window)
    challenger_layout = Layout.from_config(challenger)
    runs.configure(config.tracking, config.spark.master)
    _refuse_overlapping_champion(config, window)  # before any run opens: a refusal leaves no failed run behind
    with tracked_stage(config, "retrain") as stage:
        runs.log_params(window.as_params() | {"retrain.margin": config.retrain.margin, "retrain.metric": metric})
        runs.set_tags({"retrain.triggers": ",".join(c.trigger for c in checks if c.fired) or "forced"})
        prepared = prepare.run(spark, challenger, challenger_layout)
        _check_rows(prepared.report.split_rows, window)
        rule = compare_on_window(config.retrain.margin, prepared.spec.label)
        trained = train.run(spark, challenger, challenger_layout, promoter=rule)
        _log_decision(trained, metric)
    result = RetrainResult(window, checks, trained, stage.run_id)
    log.info("%s", result.summary())
    return result


def _refuse_overlapping_champion(config: PipelineConfig, window: RetrainWindow) -> None:
    from mlflow.tracking import MlflowClient

    champion = current_champion(config.tracking.model_name)
    if champion is None:
        return
    params = MlflowClient().get_run(champion.run_id).data.params
    why = overlap_with_champion(params, window)
    if why is not None:
        raise ConfigError(f"retrain --date {window.last_date}: {why}")
    if params.get("split.method") != "time":
        log.warning(
            "champion v%s was split by hash, not by date: whether it saw the compare window cannot be checked",
            champion.version,
        )


def _check_rows(split_rows: dict[str, int], window: RetrainWindow) -> None:
    """Every split of the window needs labelled rows: an empty one is the --date or a window setting."""
    for split, span in (("train", window.train), ("val", window.val), ("test", window.compare)):
        if not split_rows.get(split):
            name = "compare" if split == "test" else split
            raise DataError(
                f"the {name} window {span[0]}..{span[1]} (end excluded) has no labelled rows after cleaning. "
                "Fix: a --date at or before the last date whose outcomes are in the training data, or wider "
                "retrain.window_days / val_days / compare_days"
            )


def _log_decision(trained: TrainResult, metric: str) -> None:
    decision = trained.promotion
    metrics = {f"challenger_{metric}": decision.candidate_metric, f"champion_{metric}": decision.champion_metric}
    runs.log_metrics({name: value for name, value in metrics.items() if value is not None})
    runs.log_dict(asdict(decision), "retrain/decision.json")
    runs.set_tags(
        {
            "retrain.promoted": str(decision.promoted),
            "retrain.challenger_version": decision.candidate_version,
            "retrain.reason": decision.reason[:500],
        }
    )
