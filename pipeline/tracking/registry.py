"""Model registry (driver side): log the pyfunc (spec + weights + code), register it, move aliases, resolve models.

Split from tracking.py (runs, params, metrics) to keep each module to one job. The logged model carries only
pipeline/model/ as code, so it loads where neither Spark nor the rest of the pipeline is installed.
"""

from __future__ import annotations

import io
import json
import logging
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from pipeline.errors import TrackingError
from pipeline.model.pyfunc import ARTIFACT_MODEL, ARTIFACT_PROFILE, ARTIFACT_SPEC, ARTIFACT_WEIGHTS
from pipeline.model.spec import FeatureSpec
from pipeline.storage import files
from pipeline.tracking import promotion_race
from pipeline.tracking.signature import model_signature
from pipeline.worker.user_code import CodeArchive

if TYPE_CHECKING:
    from pipeline.evaluation.bootstrap import Interval

log = logging.getLogger(__name__)
CANDIDATE, CHAMPION = "candidate", "champion"
MODEL_PACKAGE_DIR = Path(__file__).resolve().parents[1] / "model"
# The package marker the shipped code gets instead of pipeline/__init__.py: pipeline.model.* imports resolve.
SHIPPED_PACKAGE_INIT = '"""The parts of sparktrain that a registered model carries (pipeline/model/ only)."""\n'


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    version: str
    run_id: str
    uri: str


@dataclass(frozen=True)
class Promotion:
    """Whether a new version became @champion and why; logged as registry/promotion.json."""

    model: str
    candidate_version: str
    promoted: bool
    reason: str
    metric: str
    candidate_metric: float | None
    champion_metric: float | None
    previous_champion_version: str | None
    baseline_metric: float | None = None  # the constant predictor's value of `metric` on the same test split
    beats_baseline: bool | None = None
    candidate_interval: tuple[float, float] | None = None  # 95% bootstrap interval of `metric` (small test split)


def pip_requirements(spec: FeatureSpec) -> list[str]:
    import mlflow
    import numpy
    import PIL
    import torch

    torch_version = torch.__version__.split("+")[0]
    needs = [f"mlflow=={mlflow.__version__}", f"torch=={torch_version}", "pandas<3", f"numpy=={numpy.__version__}"]
    return needs + ([f"pillow=={PIL.__version__}"] if spec.images else [])


def log_and_register(
    spec: FeatureSpec,
    model_config: dict,
    weights_path: str,
    model_name: str,
    input_example: pd.DataFrame,
    user_code: CodeArchive | None = None,
    profile_path: str | None = None,
) -> RegisteredModel:
    """Log the pyfunc in the active run, register a new version and give it the `candidate` alias.

    `profile_path` (prepare's reference profile) travels with the model so each score run can measure drift.

    `user_code` (train.model.code) joins pipeline/model/ in the model's code_paths, so the model loads from its
    own files wherever it goes (spark_udf executors, `mlflow models serve`), with the user's folder nowhere.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    with tempfile.TemporaryDirectory(prefix="sparktrain-") as tmp:
        spec_path, config_path = Path(tmp) / f"{ARTIFACT_SPEC}.json", Path(tmp) / f"{ARTIFACT_MODEL}.json"
        spec_path.write_text(spec.to_json(), encoding="utf-8")
        config_path.write_text(json.dumps(model_config, indent=2), encoding="utf-8")
        code = _shipped_code(Path(tmp) / "code")
        code_paths = [str(code)]
        if user_code is not None:
            with zipfile.ZipFile(io.BytesIO(user_code.payload)) as archive:
                archive.extractall(Path(tmp) / "user")  # the same bytes the ranks trained with
            shipped = Path(tmp) / "user" / user_code.name
            code_paths.append(str(shipped if shipped.is_dir() else shipped.with_suffix(".py")))
        weights = files.local_path(weights_path, tmp)  # the best weights may be on object storage
        artifacts = {ARTIFACT_SPEC: str(spec_path), ARTIFACT_WEIGHTS: weights, ARTIFACT_MODEL: str(config_path)}
        if profile_path is not None:
            artifacts[ARTIFACT_PROFILE] = files.local_path(profile_path, tmp)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(code / "model" / "entry.py"),  # models-from-code: nothing pickled
            artifacts=artifacts,
            code_paths=code_paths,  # the model loads where only its own files + pip requirements exist
            signature=model_signature(spec),
            input_example=input_example,
            pip_requirements=pip_requirements(spec),
            registered_model_name=model_name,
        )
    version = str(info.registered_model_version)
    client = MlflowClient()
    promotion_race.set_alias(client, model_name, CANDIDATE, version)
    run_id = mlflow.active_run().info.run_id
    log.info("registered %s version %s (alias %s)", model_name, version, CANDIDATE)
    return RegisteredModel(model_name, version, run_id, f"models:/{model_name}/{version}")


def _shipped_code(folder: Path) -> Path:
    """A `pipeline` package holding only model/, so the registered model imports pipeline.model.* and nothing else."""
    package = folder / "pipeline"
    shutil.copytree(MODEL_PACKAGE_DIR, package / "model", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (package / "__init__.py").write_text(SHIPPED_PACKAGE_INIT, encoding="utf-8")
    return package


def describe_version(model: RegisteredModel, description: str, tags: dict[str, str]) -> None:
    """A version's description and tags (test metrics, data digests, commit, promotion), shown in the registry UI."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    client.update_model_version(model.name, model.version, description=description)
    for key, value in tags.items():
        client.set_model_version_tag(model.name, model.version, key, value)


def promote(
    model: RegisteredModel,
    metric: str,
    higher_is_better: bool,
    force: bool,
    baseline: float | None = None,
    interval: Interval | None = None,
) -> Promotion:
    """Give `champion` to the candidate if its test metric beats the current champion's (or none exists).

    A candidate that does not beat `baseline` (the constant predictor) is never promoted, not even by `force`.
    With `interval` (a small test split), beating the champion by less than its half-width is not better.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    candidate_value = client.get_run(model.run_id).data.metrics.get(metric)
    try:
        champion = client.get_model_version_by_alias(model.name, CHAMPION)
    except MlflowException:
        champion = None
    champion_value = client.get_run(champion.run_id).data.metrics.get(metric) if champion else None
    beats_baseline = None
    if baseline is not None and candidate_value is not None:
        beats_baseline = _beats(candidate_value, baseline, higher_is_better)
    if beats_baseline is False:
        _warn_no_better_than_constant(model, metric, candidate_value, baseline)
        promoted = False
        why = f"{metric} {candidate_value:.5f} does not beat the constant baseline {baseline:.5f}: not promoted"
    else:
        promoted, why = _decide(metric, candidate_value, champion, champion_value, force, higher_is_better)
        if promoted and not force and champion_value is not None and interval is not None:
            promoted, why = _beyond_noise(metric, candidate_value, champion_value, interval, why)
    if promoted:
        promoted, why = take_champion(client, model, metric, candidate_value, champion, force, higher_is_better, why)
    decision = Promotion(
        model=model.name,
        candidate_version=model.version,
        promoted=promoted,
        reason=why,
        metric=metric,
        candidate_metric=candidate_value,
        champion_metric=champion_value,
        previous_champion_version=str(champion.version) if champion else None,
        baseline_metric=baseline,
        beats_baseline=beats_baseline,
        candidate_interval=(interval.low, interval.high) if interval else None,
    )
    log.info("promotion of %s v%s: %s (%s)", model.name, model.version, "champion" if promoted else "kept", why)
    return decision


def _beats(a: float, b: float, higher_is_better: bool) -> bool:
    return a > b if higher_is_better else a < b


def _warn_no_better_than_constant(model: RegisteredModel, metric: str, value: float, baseline: float) -> None:
    log.warning(
        "model %s v%s is no better than predicting a constant (%s %.5f vs %.5f): registered as @candidate "
        "only. Check the features, the label and the training settings",
        model.name,
        model.version,
        metric,
        value,
        baseline,
    )


def _decide(metric, candidate_value, champion, champion_value, force: bool, higher_is_better: bool):
    """(promote?, why) for a candidate that beats the baseline (or has none), before any alias moves."""
    if force:
        return True, "forced with --force-promote"
    if champion is None:
        return True, "no champion yet"
    if candidate_value is None:
        return False, f"candidate has no {metric}"
    if champion_value is None:
        return True, f"champion has no {metric}"
    better = _beats(candidate_value, champion_value, higher_is_better)
    return (
        better,
        f"{metric} {candidate_value:.5f} {'beats' if better else 'does not beat'} champion {champion_value:.5f}",
    )


def _beyond_noise(metric: str, candidate: float, champion: float, interval: Interval, why: str) -> tuple[bool, str]:
    """A better metric on a small test split counts only when the margin exceeds the bootstrap half-width."""
    margin, noise = abs(candidate - champion), interval.half_width
    if margin > noise:
        return True, f"{why}, by {margin:.4f}, more than the noise (+-{noise:.4f} on {interval.rows} test rows)"
    return False, (
        f"{metric} {candidate:.5f} beats champion {champion:.5f} by {margin:.4f}, within the noise "
        f"(+-{noise:.4f} on {interval.rows} test rows): not called better"
    )


def take_champion(client, model, metric, candidate_value, champion, force: bool, higher_is_better: bool, why: str):
    """Move @champion to the candidate, then settle a race with a job promoting at the same time.

    Returns (still promoted?, why): a better version promoted concurrently keeps the alias.
    """
    previous = str(champion.version) if champion else None
    promotion_race.declare_intent(client, model.name, model.version, metric, candidate_value)
    promotion_race.set_alias(client, model.name, CHAMPION, model.version)
    if force:  # a forced promotion is a person's decision: it keeps the alias
        return True, why
    winner = promotion_race.settle(client, model.name, CHAMPION, model.version, metric, higher_is_better, previous)
    if winner is not None:
        return False, why + f"; but v{winner}, promoted at the same time, is better and holds @{CHAMPION}"
    return True, why


def resolve(model_name: str, version: str | None = None, alias: str = CHAMPION) -> RegisteredModel:
    """Find a registered version by number or alias; a missing name/alias is a TrackingError with the fix."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    try:
        found = (
            client.get_model_version(model_name, version)
            if version
            else client.get_model_version_by_alias(model_name, alias)
        )
    except MlflowException as exc:
        wanted = f"version {version}" if version else f"alias @{alias}"
        raise TrackingError(
            f"registered model {model_name!r} has no {wanted} ({exc.error_code}). "
            "Fix: run 'python -m pipeline train' first, or pass an existing --model-version / tracking.model_name"
        ) from None
    return RegisteredModel(model_name, str(found.version), found.run_id, f"models:/{model_name}/{found.version}")


def load_pyfunc(uri: str):
    import mlflow.pyfunc

    return mlflow.pyfunc.load_model(uri)


def load_spec(uri: str) -> FeatureSpec:
    """A registered version's feature spec alone (one small artifact), where loading the model is not needed."""
    import mlflow.artifacts

    return FeatureSpec.load(mlflow.artifacts.download_artifacts(f"{uri}/artifacts/{ARTIFACT_SPEC}.json"))
