"""Training ranks: the per-rank loop, loader, backends, checkpoints, placement, and rank 0's callbacks.

Runs inside Horovod or TorchDistributor worker processes. Takes a plan of plain values and reports each epoch
through callbacks the driver builds and rank 0 calls (epoch_logger.py sends metrics to MLflow, trial_pruner.py
reports to the Optuna study); imports no pyspark, no config, and no driver package (tracking, launch, stages).
"""
