"""tune.space on the driver: checked before the first trial, and sampled per trial through Optuna.

Every key must be a training setting (`train.*`: trials share one prepared dataset) that the config accepts at
both ends of its range and for every choice; an empty or inverted range, a non-positive log-uniform bound or an
empty choice is a ConfigError naming `tune.space.<key>` and the fix.
"""

from __future__ import annotations

import json
from typing import Any

from pipeline.config.load import with_values
from pipeline.config.schema import PipelineConfig
from pipeline.config.tuning import Distribution
from pipeline.errors import ConfigError


def check_space(config: PipelineConfig) -> None:
    """Raises ConfigError for the first bad key or range; a config every sampled trial can load otherwise."""
    space = config.tune.space
    if not space:
        raise ConfigError(
            "tune.space is empty: there is nothing to tune. Fix: map training keys to distributions, e.g. "
            "tune.space: {train.lr: {loguniform: [0.0001, 0.01]}}"
        )
    for key, distribution in space.items():
        where = f"tune.space.{key}"
        if not key.startswith("train.") or key in ("train.num_proc", "train.backend"):
            raise ConfigError(
                f"{where}: only training settings can be tuned (trials share one prepared dataset and the "
                "task slots). Fix: tune train.* keys other than train.num_proc and train.backend"
            )
        for value in _probe_values(distribution, where):
            try:
                with_values(config, {key: value}, where)
            except ConfigError as exc:
                detail = str(exc).replace("invalid config:\n  ", "").replace("\n  ", "; ")
                raise ConfigError(
                    f"{where} = {value!r} is not accepted by the config: {detail}. Fix: change the range or choices"
                ) from None


def _probe_values(distribution: Distribution, where: str) -> list[Any]:
    """The values that bound what a trial can get: both ends of a range, every choice."""
    kind = distribution.kind
    if kind == "choice":
        choices = distribution.choice
        if not choices:
            raise ConfigError(f"{where}: choice is empty. Fix: list at least two values")
        return list(choices)
    low, high = getattr(distribution, kind)
    name = "int" if kind == "int_" else kind
    if not low < high:
        raise ConfigError(f"{where}: {name} range [{low}, {high}] is empty. Fix: make low < high")
    if kind == "loguniform" and low <= 0:
        raise ConfigError(f"{where}: loguniform needs low > 0 (got {low}). Fix: e.g. [1e-5, 1e-2], or use uniform")
    return [low, high]


def suggest(trial, space: dict[str, Distribution]) -> dict[str, Any]:
    """One trial's values, by key. Choices go through Optuna as JSON text (lists are not Optuna categories)."""
    values: dict[str, Any] = {}
    for key, distribution in space.items():
        kind = distribution.kind
        if kind == "loguniform":
            values[key] = trial.suggest_float(key, *distribution.loguniform, log=True)
        elif kind == "uniform":
            values[key] = trial.suggest_float(key, *distribution.uniform)
        elif kind == "int_":
            values[key] = trial.suggest_int(key, *distribution.int_)
        else:
            encoded = [json.dumps(c) for c in distribution.choice]
            values[key] = json.loads(trial.suggest_categorical(key, encoded))
    return values


def decode(params: dict[str, Any], space: dict[str, Distribution]) -> dict[str, Any]:
    """A finished trial's Optuna params back to config values (choices were stored as JSON text)."""
    return {
        key: json.loads(value) if key in space and space[key].kind == "choice" else value
        for key, value in params.items()
    }
