"""A tuning trial's pruner: an epoch callback built on the driver and called in rank 0 after every epoch.

Reports the epoch's value of the tuned metric to the Optuna trial in the study's storage and answers whether the
pruner wants the trial stopped (the loop then stops every rank after this epoch). Imports nothing of the
pipeline, like epoch_logger.py: it is unpickled in the rank.
"""

from __future__ import annotations

import logging
import math

log = logging.getLogger(__name__)


def build_pruner(kind: str, startup_trials: int, warmup_epochs: int):
    """The Optuna pruner for tune.pruner; the driver's study and every rank-side report use the same one (a study
    loaded from storage does not remember its pruner)."""
    import optuna

    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=startup_trials, n_warmup_steps=warmup_epochs)
    if kind == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.NopPruner()


class TrialPruner:
    def __init__(self, storage: str, study_name: str, trial_id: int, metric: str, pruner: tuple[str, int, int]):
        self.storage = storage
        self.study_name = study_name
        self.trial_id = trial_id
        self.metric = metric
        self.pruner = pruner  # (tune.pruner, tune.pruner_startup_trials, tune.pruner_warmup_epochs)

    def __call__(self, record: dict, epoch: int) -> bool:
        import optuna

        value = record.get(self.metric)
        if value is None or not math.isfinite(value):
            return False  # a NaN metric (e.g. AUC on one class) says nothing; the trial's result will
        study = optuna.load_study(study_name=self.study_name, storage=self.storage, pruner=build_pruner(*self.pruner))
        trial = optuna.trial.Trial(study, self.trial_id)
        trial.report(float(value), epoch)
        prune = trial.should_prune()
        if prune:
            log.info("trial pruned after epoch %d: %s=%.4f", epoch + 1, self.metric, value)
        return prune
