"""The tune stage's helpers on the driver: the search space (checked before the first trial, sampled per trial
through Optuna) and the study's report (trial summaries, the best values as an overlay, Optuna's plots).

The per-epoch pruner callback runs inside rank 0 and so lives in pipeline/worker/trial_pruner.py.
"""
