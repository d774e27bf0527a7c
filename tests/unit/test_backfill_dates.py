"""`score --from/--to`: the range and the input it needs, checked on the driver before any Spark work."""

from __future__ import annotations

import datetime as dt

import pytest

from pipeline.config.load import load_config
from pipeline.data.range_scoring import check_dated_input, dates_between
from pipeline.errors import ScoringError
from tests.helpers import ROOT


def test_a_range_is_every_date_from_first_to_last():
    assert dates_between("2013-12-30", "2014-01-02") == [dt.date(2013, 12, 30) + dt.timedelta(days=i) for i in range(4)]
    assert dates_between("2013-12-30", "2013-12-30") == [dt.date(2013, 12, 30)]


@pytest.mark.parametrize(
    ("first", "last", "message"),
    [
        ("2013-12-31", "2013-12-01", "--from 2013-12-31 is after --to 2013-12-01"),
        ("2013-13-01", "2014-01-01", "is not a date"),
        ("2000-01-01", "2013-01-01", "spans 4750 dates"),
    ],
)
def test_a_bad_range_is_one_clear_error(first, last, message):
    with pytest.raises(ScoringError, match=message):
        dates_between(first, last)


def test_a_backfill_needs_dated_rows_read_in_one_pass():
    config = load_config([ROOT / "conf/flights.yaml", ROOT / "conf/local.yaml"], [])
    check_dated_input(config)  # flights: data.date_column=flight_date
    with pytest.raises(ScoringError, match=r"Fix: set data.date_column"):
        check_dated_input(load_config([ROOT / "conf/flights.yaml"], ["data.date_column=null"]))
    per_day = load_config([ROOT / "conf/flights.yaml"], ['score.input_sources={flights: "/in/{date}/f.csv"}'])
    with pytest.raises(ScoringError, match=r"one folder per date"):
        check_dated_input(per_day)
