"""Which rows a score run takes and which partition it replaces, checked from the config alone (no Spark)."""

from __future__ import annotations

import datetime as dt

import pytest

from pipeline.config.load import load_config
from pipeline.data.score_selection import select_rows
from pipeline.errors import ScoringError

SOURCE = {"name": "t", "format": "csv", "path": "in.csv", "schema": {"id": "bigint"}}


def config(path: str = "in.csv", date_column: str | None = None):
    data = f"data.sources=[{{name: t, format: csv, path: '{path}', schema: {{id: bigint}}}}]"
    return load_config([], [data, f"data.date_column={date_column or 'null'}", "split.key=id"])


def test_date_selects_rows_by_column_or_path():
    assert select_rows(config(date_column="day"), "2024-05-01", None).partition == "date=2024-05-01"
    dated = select_rows(config(path="in/{date}/*.csv"), "2024-05-01", None)
    assert dated.day == dt.date(2024, 5, 1) and dated.partition == "date=2024-05-01"


def test_without_a_date_every_row_is_scored_into_a_named_or_dated_batch():
    assert select_rows(config(), None, "first-load").partition == "batch=first-load"
    today = dt.datetime.now(dt.timezone.utc).date().isoformat()
    whole = select_rows(config(), None, None)
    assert whole.day is None and whole.partition in (f"date={today}", f"date={dt.date.today().isoformat()}")


def test_impossible_selections_fail_with_the_fix():
    with pytest.raises(ScoringError, match="cannot select rows for --date 2024-05-01: the data has no date"):
        select_rows(config(), "2024-05-01", None)
    with pytest.raises(ScoringError, match=r"contains \{date\}. Fix: pass --date"):
        select_rows(config(path="in/{date}/*.csv"), None, None)
    with pytest.raises(ScoringError, match="--batch-id 'a/b' cannot name a folder"):
        select_rows(config(), None, "a/b")
    with pytest.raises(ScoringError, match="--date and --batch-id both name the output partition"):
        select_rows(config(date_column="day"), "2024-05-01", "x")
    with pytest.raises(ScoringError, match="is not a date"):
        select_rows(config(date_column="day"), "2024-13-01", None)
