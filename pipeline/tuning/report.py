"""What a tune stage reports: each trial's summary, the study's result, and what the tune run logs (counts, the
pruner's saving, the best values as a YAML overlay, Optuna's plots). Runs on the driver (pipeline/stages/tune.py)."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import yaml

from pipeline.config.load import nested_dict
from pipeline.config.schema import PipelineConfig
from pipeline.evaluation import plots
from pipeline.layout import Layout
from pipeline.storage import files
from pipeline.tracking import runs
from pipeline.tracking.registry import Promotion, RegisteredModel
from pipeline.tuning.search_space import decode
from pipeline.worker.metrics import higher_is_better

log = logging.getLogger("pipeline.stages.tune")
INTERRUPTED = "interrupted"  # user attr of a trial whose process died; it does not count towards tune.trials


@dataclass(frozen=True)
class TrialSummary:
    number: int
    state: str  # complete | pruned | failed
    value: float | None
    params: dict
    train_run_id: str | None
    epochs_run: int | None
    max_epochs: int | None
    reason: str | None = None


@dataclass(frozen=True)
class TuneResult:
    study_name: str
    metric: str
    run_id: str | None  # the tune run; None when the study had already finished (a no-op rerun)
    trials: list[TrialSummary]
    best: TrialSummary | None
    model: RegisteredModel | None = None
    promotion: Promotion | None = None
    seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)


def counted_trials(study) -> list:
    """Finished trials that count towards tune.trials (interrupted ones were re-queued instead)."""
    from optuna.trial import TrialState

    done = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    return [t for t in study.get_trials(deepcopy=False, states=done) if not t.user_attrs.get(INTERRUPTED)]


def study_result(study, config: PipelineConfig, metric: str, run_id: str | None, seconds: float) -> TuneResult:
    from optuna.trial import TrialState

    names = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed"}
    summaries = []
    for trial in counted_trials(study):
        summaries.append(
            TrialSummary(
                number=trial.number,
                state=names[trial.state],
                value=trial.value,
                params=decode(trial.params, config.tune.space),
                train_run_id=trial.user_attrs.get("train_run_id"),
                epochs_run=trial.user_attrs.get("epochs_run"),
                max_epochs=trial.user_attrs.get("max_epochs"),
                reason=trial.user_attrs.get("failure"),
            )
        )
    complete = [s for s in summaries if s.state == "complete"]
    best = None
    if complete:
        pick = max if higher_is_better(metric) else min
        best = pick(complete, key=lambda s: s.value)
    counts = {state: sum(s.state == state for s in summaries) for state in ("complete", "pruned", "failed")}
    return TuneResult(study.study_name, metric, run_id, summaries, best, seconds=seconds, counts=counts)


def log_study(study, result: TuneResult, layout: Layout) -> None:
    """Counts, the pruner's saving, the best values as a YAML overlay, and Optuna's plots, in the tune run."""
    trained = [s for s in result.trials if s.epochs_run is not None]
    epochs_run = sum(s.epochs_run for s in trained)
    epochs_max = sum(s.max_epochs for s in trained)
    metrics = {f"trials_{state}": count for state, count in result.counts.items()}
    pruned_away = sum(s.max_epochs - s.epochs_run for s in trained if s.state == "pruned")
    metrics |= {"epochs_run": epochs_run, "epochs_budget": epochs_max, "tune_seconds": result.seconds}
    if epochs_max:
        # Early stopping and the pruner together; the pruner alone saved at most `pruned_away` epochs (a pruned
        # trial might also have stopped early by itself).
        metrics["epochs_saved_share"] = 1 - epochs_run / epochs_max
        metrics["epochs_pruned_share_max"] = pruned_away / epochs_max
    if result.best is not None:
        metrics[f"best_{result.metric}"] = result.best.value
        overlay = yaml.safe_dump(nested_dict(result.best.params), sort_keys=False)
        header = (
            f"# best trial {result.best.number} of study {result.study_name}: {result.metric}={result.best.value:.5f}\n"
        )
        files.write_bytes(layout.tune_best_overlay, (header + overlay).encode("utf-8"))
        runs.log_text(header + overlay, "tune/best_params.yaml")
        runs.set_tags({"tune.best_trial": str(result.best.number), "tune.best_train_run_id": result.best.train_run_id})
    runs.log_metrics(metrics)
    runs.log_dict({"trials": [asdict(s) for s in result.trials]}, "tune/trials.json")
    for name, figure in plots.study_figures(study).items():
        runs.log_figure(figure, f"tune/{name}")
    log.info(
        "study %s: %s; best %s",
        result.study_name,
        ", ".join(f"{n} {state}" for state, n in result.counts.items()),
        f"trial {result.best.number} {result.metric}={result.best.value:.4f} {result.best.params}"
        if result.best
        else "none (no trial completed)",
    )
