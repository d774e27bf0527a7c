"""Scoring many dates in one job (`score --from D1 --to D2`): the Spark side and the per-date swaps.

One read of the input for every pending date, one scoring pass and one partitioned write of all their predictions
(and quarantined rows) to a hidden staging folder; then each date's partition is swapped in on its own, so a date
that fails leaves the others published, and a killed backfill's rerun finds the finished dates in place and does
only the missing ones. Runs on the driver; the executors read, score and write.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pipeline.config.schema import PipelineConfig
from pipeline.data.quarantine_rate import QuarantineRate, check_quarantine_rate, unexpected_quarantine
from pipeline.data.score_selection import DATE_TOKEN, parse_date, primary_scoring_path
from pipeline.data.scoring import DAY
from pipeline.errors import ScoringError
from pipeline.layout import Layout, partition_name
from pipeline.storage.folders import Storage

MAX_DATES = 3660  # ten years of days: a longer range is almost certainly a typo in --from / --to


@dataclass(frozen=True)
class DateOutcome:
    """One date's line of a backfill's table."""

    date: str
    status: str  # scored | skipped | failed
    rows: int = 0
    quarantined: int = 0
    note: str = ""  # the drift line, the reason it was skipped, or the one-line error that failed it
    max_psi: float | None = None  # the date's largest feature PSI, where drift was measured


def dates_between(first: str, last: str) -> list[dt.date]:
    """Every date from --from to --to, both included.

    Raises:
        ScoringError: a bad date, an empty range or more than MAX_DATES dates.
    """
    start, end = parse_date(first), parse_date(last)
    if end < start:
        raise ScoringError(f"--from {first} is after --to {last}. Fix: give the earlier date to --from")
    count = (end - start).days + 1
    if count > MAX_DATES:
        raise ScoringError(f"--from {first} --to {last} spans {count} dates (limit {MAX_DATES}). Fix: split the range")
    return [start + dt.timedelta(days=i) for i in range(count)]


def check_dated_input(config: PipelineConfig) -> None:
    """A backfill selects its dates by data.date_column in one read; a {date} path would need one read per date."""
    if DATE_TOKEN in primary_scoring_path(config):
        raise ScoringError(
            f"the scoring input path {primary_scoring_path(config)!r} has one folder per date ({{date}}), and a "
            "backfill reads all its dates in one pass by data.date_column. Fix: run `score --date D` per date, or "
            "point score.input_sources at the whole table and set data.date_column"
        )
    if not config.data.date_column:
        raise ScoringError("--from/--to select rows by date, but the data has no date. Fix: set data.date_column")


def date_partition(day: dt.date) -> str:
    return partition_name(day.isoformat(), None, "")


def already_scored(storage: Storage, layout: Layout, days: list[dt.date]) -> list[dt.date]:
    """The dates whose predictions partition is published (a rerun skips them unless --force)."""
    return [day for day in days if storage.exists(layout.predictions.partition(date_partition(day)))]


def stage_outputs(spark, storage: Storage, layout: Layout, token: str, predictions, rejected) -> tuple[dict, dict]:
    """Write every date's predictions and quarantined rows under the staging folders, one folder per date (DAY=…),
    in one job each; returns ({date: rows}, {date: quarantined rows})."""
    for output in (layout.predictions, layout.score_quarantine):
        for stale in storage.glob_dirs(output.stale_staging_glob):
            storage.delete(stale)  # left by a killed run; never visible to readers (one scorer per output dir)
    counts = []
    for output, frame in ((layout.predictions, predictions), (layout.score_quarantine, rejected)):
        folder = output.staging(token)
        frame.write.mode("overwrite").partitionBy(DAY).parquet(folder)
        written = storage.glob_dirs(f"{folder}/{DAY}=*")  # an empty frame writes no date folder at all
        rows = spark.read.parquet(folder).groupBy(DAY).count().collect() if written else []
        counts.append({row[DAY]: row["count"] for row in rows})
    return counts[0], counts[1]


def publish_date(
    spark, storage: Storage, config: PipelineConfig, layout: Layout, token: str, day: dt.date, counts, hold: bool
) -> None:
    """Swap one date's staged partitions in, with a single-date run's rules: no rows is an error; above
    data.max_quarantine_fraction only the quarantine is published and the date fails; `hold` keeps the predictions
    back (the monitoring step's decision).

    Raises:
        ScoringError: no rows for the date. DataError: too many quarantined.
    """
    rows, bad = counts[0].get(day, 0), counts[1].get(day, 0)
    name = date_partition(day)
    if rows == 0 and bad == 0:
        raise ScoringError(
            f"no input rows for {day} (data.date_column={config.data.date_column}). Fix: check the range and the "
            "source paths; nothing was written for this date"
        )
    staged_bad = f"{layout.score_quarantine.staging(token)}/{DAY}={day}"
    rate = unexpected_quarantine(spark.read.parquet(staged_bad), rows + bad) if bad else QuarantineRate(rows, 0, [])
    limit = config.data.max_quarantine_fraction
    if rows and rate.fraction <= limit and not hold:
        storage.replace_dir(f"{layout.predictions.staging(token)}/{DAY}={day}", layout.predictions.partition(name))
    if bad:
        storage.replace_dir(staged_bad, layout.score_quarantine.partition(name))
    else:
        storage.delete(layout.score_quarantine.partition(name))  # a forced rerun's stale quarantine rows
    check_quarantine_rate(rate, limit, f"score {day}", layout.score_quarantine.partition(name))


def clear_staging(storage: Storage, layout: Layout, token: str) -> None:
    for output in (layout.predictions, layout.score_quarantine):
        storage.delete(output.staging(token))
