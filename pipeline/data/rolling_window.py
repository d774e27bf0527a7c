"""A retrain's dates: the rolling train window, its validation days and the compare window, all ending at the last
labelled date; and the challenger's config, which is the user's config with a time split on those dates and its
own work_dir. Pure date arithmetic on the driver (unit-tested), no Spark."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from pipeline.config.schema import PipelineConfig
from pipeline.errors import ConfigError


@dataclass(frozen=True)
class RetrainWindow:
    """[start, end) ISO dates of the challenger's train and val splits and of the compare window (its test split)."""

    train: tuple[str, str]
    val: tuple[str, str]
    compare: tuple[str, str]

    @property
    def last_date(self) -> str:
        return _shift(self.compare[1], -1)

    def as_params(self) -> dict[str, str]:
        return {f"window.{name}": f"{start}..{end}" for name, (start, end) in vars(self).items()}


def window_ending(last_date: str, config: PipelineConfig) -> RetrainWindow:
    """The windows for a retrain whose most recent labelled date is `last_date` (included in the compare window)."""
    try:
        end = dt.date.fromisoformat(last_date) + dt.timedelta(days=1)
    except ValueError:
        raise ConfigError(f"retrain --date {last_date!r} is not a date. Fix: give YYYY-MM-DD") from None
    retrain = config.retrain
    compare_start = end - dt.timedelta(days=retrain.compare_days)
    val_start = compare_start - dt.timedelta(days=retrain.val_days)
    train_start = val_start - dt.timedelta(days=retrain.window_days)
    iso = dt.date.isoformat
    return RetrainWindow(
        (iso(train_start), iso(val_start)), (iso(val_start), iso(compare_start)), (iso(compare_start), iso(end))
    )


def date_column(config: PipelineConfig) -> str:
    """The column the challenger's time split uses: split.column, else data.date_column."""
    column = config.split.column or config.data.date_column
    if column is None:
        raise ConfigError(
            "retrain splits by date but neither split.column nor data.date_column is set. "
            "Fix: set data.date_column to the rows' date column"
        )
    return column


def challenger_config(config: PipelineConfig, window: RetrainWindow) -> PipelineConfig:
    """The user's config with a time split on the window and work_dir/retrain/<last date> as work_dir; the same
    tracking store and model name, so the challenger registers beside the champion."""
    data = config.to_dict()
    data["work_dir"] = f"{config.work_dir.rstrip('/')}/retrain/{window.last_date}"
    data["split"] = {
        "method": "time",
        "column": date_column(config),
        "train": list(window.train),
        "val": list(window.val),
        "test": list(window.compare),
    }
    return PipelineConfig.model_validate(data)


def overlap_with_champion(params: dict[str, str], window: RetrainWindow) -> str | None:
    """Why the champion cannot be compared on the window (its own train/val split covers part of it), else None.

    `params` are the champion's train run params (the flattened config). A hash split cannot be checked by date:
    None, and the caller says so.
    """
    if params.get("split.method") != "time":
        return None
    start, end = window.compare
    for split in ("train", "val"):
        raw = params.get(f"split.{split}")
        if not raw:
            continue
        first, last = json.loads(raw)
        if first < end and start < last:
            return (
                f"the champion's {split} split [{first}, {last}) overlaps the compare window [{start}, {end}), so "
                "it would be measured on rows it learned from. Fix: retrain with a later --date, or fewer "
                "retrain.compare_days"
            )
    return None


def _shift(day: str, days: int) -> str:
    return (dt.date.fromisoformat(day) + dt.timedelta(days=days)).isoformat()
