"""A tuning trial's pruner: an epoch callback built on the driver and called in rank 0 after every epoch.

Reports the epoch's value of the tuned metric to the Optuna trial in the study's storage and answers whether the
pruner wants the trial stopped (the loop then stops every rank after this epoch). Imports nothing of the
pipeline, like epoch_logger.py: it is unpickled in the rank.
"""

from __future__ import annotations

import logging
import math

log = logging.getLogger(__name__)


class TrialPruner:
    def __init__(self, storage: str, study_name: str, trial_id: int, metric: str):
        self.storage = storage
        self.study_name = study_name
        self.trial_id = trial_id
        self.metric = metric

    def __call__(self, record: dict, epoch: int) -> bool:
        import optuna

        value = record.get(self.metric)
        if value is None or not math.isfinite(value):
            return False  # a NaN metric (e.g. AUC on one class) says nothing; the trial's result will
        study = optuna.load_study(study_name=self.study_name, storage=self.storage)
        trial = optuna.trial.Trial(study, self.trial_id)
        trial.report(float(value), epoch)
        prune = trial.should_prune()
        if prune:
            log.info("trial pruned after epoch %d: %s=%.4f", epoch + 1, self.metric, value)
        return prune
