"""MLflow runs from the driver: store setup, runs, params, metrics, artifacts (the registry is registry.py).

Stages do not start or end runs themselves: pipeline/tracking/tracked.py does, through this module.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import tempfile
from pathlib import Path

from pipeline.config.load import dump_yaml
from pipeline.config.schema import PipelineConfig, TrackingConfig
from pipeline.errors import TrackingError
from pipeline.storage import files
from pipeline.storage.uri_fs import arrow_uri
from pipeline.tracking.server import check_server

log = logging.getLogger(__name__)

TAG_STAGE = "pipeline.stage"
TAG_CONFIG_HASH = "pipeline.config_hash"
TAG_PIPELINE_ID = "pipeline.execution_id"
TAG_STATUS = "pipeline.status"


def resolve_uri(uri: str) -> str:
    """sqlite:///relative/path -> absolute, so workers and `make mlflow-ui` open the same file."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + str(Path(uri[len(prefix) :]).absolute())
    return uri


def _is_local_store(uri: str) -> bool:
    return uri.startswith(("sqlite:", "file:", "/")) or "://" not in uri


def configure(tracking: TrackingConfig, spark_master: str) -> str:
    """Point MLflow at the configured store, fail fast when it cannot work, return the resolved URI.

    Raises:
        TrackingError: a file/SQLite store with a non-local Spark master, an unreachable server, or one that
            refuses the credentials in MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD.
    """
    import mlflow

    uri = resolve_uri(tracking.uri)
    if _is_local_store(uri) and not spark_master.startswith("local"):
        raise TrackingError(
            f"tracking.uri={tracking.uri} is a local store but spark.master={spark_master} runs workers on "
            "other machines that cannot write to it. Fix: run an MLflow tracking server and set tracking.uri "
            "to its http:// URL (see conf/cluster.yaml)"
        )
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    if uri.startswith("http"):
        check_server(uri)  # reachable, and it accepts the credentials in this environment
    mlflow.set_tracking_uri(uri)
    return uri


EXPERIMENT_KIND_TAG, TRAINING_KIND = "mlflow.experimentKind", "custom_model_development"
SERVER_ARTIFACT_ROOT = "mlflow-artifacts:"  # artifacts uploaded to and served by the tracking server


def ensure_experiment(tracking: TrackingConfig) -> str:
    """Experiment id, created with the configured artifact root when missing, marked as a model-training one."""
    import mlflow

    experiment = mlflow.get_experiment_by_name(tracking.experiment)
    if experiment is not None:
        if experiment.tags.get(EXPERIMENT_KIND_TAG) != TRAINING_KIND:
            mlflow.tracking.MlflowClient().set_experiment_tag(
                experiment.experiment_id, EXPERIMENT_KIND_TAG, TRAINING_KIND
            )
        return experiment.experiment_id
    artifact_root = tracking.artifact_root
    if artifact_root.rstrip("/") == SERVER_ARTIFACT_ROOT:
        # The server's own root: it puts the experiment at mlflow-artifacts:/<experiment id>, the layout its
        # basic-auth app reads permissions from (artifacts at the bare root are refused to all but admins).
        artifact_root = None
    elif ":" not in artifact_root:  # a plain path (URIs such as s3://, mlflow-artifacts:/sub pass through)
        artifact_root = Path(artifact_root).absolute().as_uri()
    else:
        artifact_root = arrow_uri(artifact_root)  # MLflow knows s3://, not Hadoop's s3a:// for the same objects
    return mlflow.create_experiment(
        tracking.experiment, artifact_location=artifact_root, tags={EXPERIMENT_KIND_TAG: TRAINING_KIND}
    )


def runs_table_url(tracking: TrackingConfig, base_url: str = "http://127.0.0.1:5000") -> str:
    """The UI link that opens the experiment on its training runs table.

    MLflow 3.17's UI chooses an experiment's first page from a per-browser "workflow type" that defaults to GenAI
    (an empty traces Overview for us); the experiment tag set by ensure_experiment is what later UI versions
    read. `?workflowType=machine_learning` in the link picks the runs table in either.
    """
    return f"{base_url.rstrip('/')}/#/experiments/{ensure_experiment(tracking)}?workflowType=machine_learning"


def config_hash(config: PipelineConfig) -> str:
    """Hash of the settings that decide what training computes (not epochs: resuming may extend them)."""
    relevant = {k: v for k, v in config.to_dict().items() if k in ("data", "features", "split", "train")}
    relevant["train"] = {k: v for k, v in relevant["train"].items() if k not in ("epochs", "start_timeout_s")}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def flatten(prefix: str, value, out: dict[str, str]) -> dict[str, str]:
    if isinstance(value, dict):
        for k, v in value.items():
            flatten(f"{prefix}.{k}" if prefix else k, v, out)
    else:
        out[prefix] = json.dumps(value) if isinstance(value, list | tuple) else str(value)
    return out


def find_resumable_run(experiment_id: str, stage: str, cfg_hash: str) -> str | None:
    """The newest run of this stage that did not finish and has the same config hash."""
    from mlflow.tracking import MlflowClient

    runs = MlflowClient().search_runs(
        [experiment_id],
        filter_string=f"tags.`{TAG_STAGE}` = '{stage}' and tags.`{TAG_CONFIG_HASH}` = '{cfg_hash}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if runs and runs[0].data.tags.get(TAG_STATUS) != "finished":
        return runs[0].info.run_id
    return None


SYSTEM_METRIC_STAGES = frozenset({"train"})
SYSTEM_METRICS_INTERVAL_S = 5  # MLflow's default is 10 s; a short run would show a single point


def start_run(
    experiment_id: str,
    stage: str,
    config: PipelineConfig,
    run_id: str | None = None,
    execution_id: str | None = None,
    parent_run_id: str | None = None,
):
    """Start (or re-open) a run and log the effective config as params + YAML artifact, commit and tags.

    It nests under the active run, or under `parent_run_id` (another thread's run: MLflow's active run is
    per thread).
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    parent = mlflow.active_run()
    if parent is None and parent_run_id is not None:
        parent = MlflowClient().get_run(parent_run_id)
    nested = parent is not None
    system_metrics = stage in SYSTEM_METRIC_STAGES  # CPU, memory (GPU when present) in the run's System metrics
    if system_metrics:
        mlflow.set_system_metrics_sampling_interval(SYSTEM_METRICS_INTERVAL_S)
    if run_id is not None:
        resumed = mlflow.start_run(run_id=run_id, nested=nested, log_system_metrics=system_metrics)
        mlflow.set_tag(TAG_STATUS, "running")  # it may say "failed" from the attempt it resumes
        return resumed
    run = mlflow.start_run(
        experiment_id=experiment_id,
        run_name=stage,
        nested=nested,
        parent_run_id=parent.info.run_id if parent is not None else None,
        log_system_metrics=system_metrics,
    )
    execution = (
        parent.data.tags.get(TAG_PIPELINE_ID, parent.info.run_id)
        if parent
        else execution_id or os.environ.get("SPARKTRAIN_EXECUTION_ID") or run.info.run_id
    )
    mlflow.set_tags(
        {
            TAG_STAGE: stage,
            TAG_CONFIG_HASH: config_hash(config),
            TAG_STATUS: "running",
            TAG_PIPELINE_ID: execution,
            "mlflow.source.git.commit": git_commit(),
        }
    )
    params = flatten("", {k: v for k, v in config.to_dict().items() if k != "data"}, {})
    params = {k: v[:6000] for k, v in params.items()}
    for chunk in _chunks(list(params.items()), 90):
        mlflow.log_params(dict(chunk))
    mlflow.log_text(dump_yaml(config), "config/effective_config.yaml")
    return run


def _chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i : i + size]


def mark_finished(run_id: str) -> None:
    from mlflow.tracking import MlflowClient

    MlflowClient().set_tag(run_id, TAG_STATUS, "finished")


def mark_failed(run_id: str) -> None:
    """The stage raised: say so in the tag the UI filters on (a resumable stage still re-opens the run)."""
    from mlflow.tracking import MlflowClient

    MlflowClient().set_tag(run_id, TAG_STATUS, "failed")


def log_params(params: dict) -> None:
    import mlflow

    mlflow.log_params({k: str(v) for k, v in params.items()})


def log_metrics(metrics: dict[str, float], step: int | None = None) -> None:
    import mlflow

    mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)


def log_dict(data: dict, artifact_path: str) -> None:
    import mlflow

    mlflow.log_dict(data, artifact_path)


def load_dict(run_id: str, artifact_path: str) -> dict:
    import mlflow

    return mlflow.artifacts.load_dict(f"runs:/{run_id}/{artifact_path}")


def log_text(text: str, artifact_path: str) -> None:
    import mlflow

    mlflow.log_text(text, artifact_path)


def find_runs(config: TrackingConfig, tags: dict[str, str]) -> list[str]:
    """Ids of the experiment's runs that carry all these tags (a failed tuning trial's train run)."""
    from mlflow.tracking import MlflowClient

    experiment_id = ensure_experiment(config)
    where = " and ".join(f"tags.`{key}` = '{value}'" for key, value in tags.items())
    return [run.info.run_id for run in MlflowClient().search_runs([experiment_id], filter_string=where)]


def set_run_tags(run_id: str, tags: dict[str, str]) -> None:
    """Tags on a run that is not this thread's active one (a tuning trial's outcome, set by the study)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    for key, value in tags.items():
        client.set_tag(run_id, key, value)


def log_file(path: str, artifact_dir: str | None = None) -> None:
    """Log a file that may live on object storage (work_dir on s3://): MLflow reads only local files."""
    import mlflow

    with tempfile.TemporaryDirectory(prefix="sparktrain-") as folder:
        mlflow.log_artifact(files.local_path(path, folder), artifact_dir)


def log_figure(figure, artifact_path: str) -> None:
    import mlflow

    mlflow.log_figure(figure, artifact_path)


def set_tags(tags: dict[str, str]) -> None:
    import mlflow

    mlflow.set_tags(tags)


def end_run(status: str = "FINISHED") -> None:
    import mlflow

    mlflow.end_run(status=status)


def run_metric_history(run_id: str, key: str) -> list[tuple[int, float]]:
    from mlflow.tracking import MlflowClient

    return [(m.step, m.value) for m in MlflowClient().get_metric_history(run_id, key)]
