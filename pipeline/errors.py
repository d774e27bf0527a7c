"""Errors a user can cause; the CLI prints them as one line (no stack trace unless --debug)."""


class PipelineError(Exception):
    """Base class: the message names the setting/column/file, the bad value and the fix."""


class ConfigError(PipelineError):
    """A config file, overlay or --set override is invalid."""


class DataError(PipelineError):
    """Input data is missing, empty or does not match its declared schema."""


class TrainingError(PipelineError):
    """A training worker failed or the cluster cannot run the requested workers."""


class TrackingError(PipelineError):
    """MLflow tracking server or model registry is unreachable or lacks a model/alias."""


class ScoringError(PipelineError):
    """Batch scoring cannot run (schema drift, missing model, bad date)."""


class DriftError(ScoringError):
    """A score batch drifted past monitor.fail_psi; its outputs are written. The CLI exits with DRIFT_EXIT_CODE."""


DRIFT_EXIT_CODE = 3  # schedulers branch on it: 2 is a user error, 3 "scored, but the inputs drifted"
BACKFILL_EXIT_CODE = 4  # `score --from/--to`: some dates failed (the others are published; a rerun retries them)
