"""The `tune` section: the search space and the Optuna study (`python -m pipeline tune`). Part of the config
schema (pipeline/config/schema.py assembles the sections)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from pipeline.config.frozen import Frozen


class Distribution(Frozen):
    """One search dimension; set exactly one of the keys."""

    loguniform: tuple[float, float] | None = None
    """[low, high], sampled on a log scale (learning rates, weight decay); low > 0."""
    uniform: tuple[float, float] | None = None
    """[low, high], sampled uniformly (dropout)."""
    int_: tuple[int, int] | None = Field(None, alias="int")
    """[low, high] integers, both included (blocks, epochs)."""
    choice: list[Any] | None = None
    """Values to choose from (widths as lists, activations, batch sizes)."""

    @model_validator(mode="after")
    def _exactly_one(self) -> Distribution:
        given = [name for name in ("loguniform", "uniform", "int_", "choice") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                f"set exactly one of loguniform, uniform, int, choice (got {len(given)}). "
                "Fix: e.g. {loguniform: [0.0001, 0.01]}"
            )
        return self

    @property
    def kind(self) -> str:
        return next(n for n in ("loguniform", "uniform", "int_", "choice") if getattr(self, n) is not None)


class TuneConfig(Frozen):
    space: dict[str, Distribution] = Field(default_factory=dict)
    """Training key (train.lr, train.model.hidden, train.model.params.width, ...) -> distribution."""
    trials: int = Field(12, ge=1)
    """Trials in the study (finished ones count when a study is resumed)."""
    timeout_s: int | None = Field(None, ge=1)
    """Stop starting new trials after this many seconds; null: no limit."""
    metric: str | None = None
    """Validation metric to optimise (its best epoch per trial); null: train.monitor (or the task's default)."""
    pruner: Literal["median", "successive_halving", "none"] = "median"
    """Stops unpromising trials early from each epoch's `metric`."""
    pruner_startup_trials: int = Field(3, ge=0)
    """median: trials that finish before any is pruned."""
    pruner_warmup_epochs: int = Field(1, ge=0)
    """median: epochs of every trial that are never pruned."""
    parallel: int = Field(1, ge=1)
    """Trials at once; needs parallel x train.num_proc task slots (checked before the first trial)."""
    seed: int = 0
    """Seed of the TPE sampler."""
    storage: str | None = None
    """Optuna storage URL (the study's trials, so a killed tune resumes); null: sqlite under <work_dir>/tune/. On
    a cluster use a database every executor reaches (rank 0 reports each epoch to it)."""
    study_name: str | None = None
    """null: <tracking.model_name>-tune."""
