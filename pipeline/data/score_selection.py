"""Which rows a score run takes and which output partition it replaces (a date, a named batch, or today), and the
source paths of new data: checked on the driver before any Spark work (pipeline/data/scoring.py reads them)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from pipeline.config.schema import DataConfig, PipelineConfig
from pipeline.errors import ScoringError
from pipeline.layout import partition_name

DATE_TOKEN = "{date}"


@dataclass(frozen=True)
class Selection:
    """Which input rows a score run takes, and the output partition it replaces."""

    day: dt.date | None  # rows of this date; None: every row of the scoring input
    partition: str  # date=YYYY-MM-DD, or batch=<id>


def select_rows(config: PipelineConfig, date: str | None, batch_id: str | None) -> Selection:
    """Check on the driver, before any work, that `date` / `batch_id` can be honoured with this config.

    With --date the rows of that date are scored into date=<date> (rows are selected by data.date_column, or
    by {date} in the primary source's path). Without it every input row is scored, into batch=<batch_id> or,
    without a batch id, into date=<today, UTC>.

    Raises:
        ScoringError: a bad date or batch id, a date that cannot select rows, or a {date} path without --date.
    """
    day = parse_date(date) if date is not None else None
    if batch_id is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", batch_id):
        raise ScoringError(
            f"--batch-id {batch_id!r} cannot name a folder. Fix: use letters, digits, '_', '.' or '-' (e.g. 2024-w18)"
        )
    if day is not None and batch_id is not None:
        raise ScoringError("--date and --batch-id both name the output partition. Fix: pass one of them")
    dated_path = DATE_TOKEN in primary_scoring_path(config)
    if day is not None and not config.data.date_column and not dated_path:
        raise ScoringError(
            f"cannot select rows for --date {day}: the data has no date. Fix: set data.date_column, put {{date}} "
            "in the primary source path (or score.input_sources), or leave --date out to score every input row"
        )
    if day is None and dated_path:
        raise ScoringError(
            f"the scoring input path {primary_scoring_path(config)!r} contains {{date}}. Fix: pass --date YYYY-MM-DD"
        )
    today = dt.datetime.now(dt.timezone.utc).date().isoformat()
    return Selection(day, partition_name(day.isoformat() if day else None, batch_id, today))


def primary_scoring_path(config: PipelineConfig) -> str:
    sources = config.data.sources
    primary = next((s for s in sources if s.primary), sources[0] if sources else None)
    if primary is None:
        return ""
    return config.score.input_sources.get(primary.name, primary.path)


def parse_date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ScoringError(f"--date {value!r} is not a date. Fix: use YYYY-MM-DD, e.g. --date 2013-12-31") from None


def scoring_sources(config: PipelineConfig, day: dt.date | None) -> DataConfig:
    """Source paths for new data: score.input_sources overrides, with {date} filled in."""
    sources = []
    for source in config.data.sources:
        path = config.score.input_sources.get(source.name, source.path)
        if day is not None:
            path = path.replace(DATE_TOKEN, day.isoformat())
        sources.append(source.model_copy(update={"path": path}))
    unknown = set(config.score.input_sources) - {s.name for s in config.data.sources}
    if unknown:
        raise ScoringError(
            f"score.input_sources names unknown source(s) {sorted(unknown)}. Fix: use names from data.sources"
        )
    return config.data.model_copy(update={"sources": sources})
