"""Everything that talks to MLflow, on the driver: runs and their contents (runs.py), the tracked-stage wrapper,
the model registry and promotion (with the promotion race between two jobs), the server and credential check,
the back-fill of epoch metrics rank 0 could not send, and the datasets a run used as run inputs.

Rank 0's own per-epoch logger runs inside a training rank and so lives in pipeline/worker/epoch_logger.py.
"""
