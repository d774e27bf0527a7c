"""The user's SQL (data.query, cleaning rules): one-line errors naming the setting, no Java stack on stderr."""

from __future__ import annotations

import pytest

from pipeline.config.schema import CleaningConfig, DataConfig
from pipeline.data.cleaning import tag_invalid
from pipeline.data.sources import LoadedSource, raw_table
from pipeline.data.user_sql import run_query
from pipeline.errors import DataError

JAVA_FRAMES = ("\tat org.apache", "at org.apache.spark", "org.apache.spark")


@pytest.fixture
def view(spark):
    spark.createDataFrame([(1, 2.0, "a")], "id bigint, x double, attrition string").createOrReplaceTempView("t")
    return "t"


def no_java_frames(capfd) -> None:
    captured = capfd.readouterr()
    for frame in JAVA_FRAMES:  # pyspark's JSON record of the analysis error carries the whole Java stack
        assert frame not in captured.err + captured.out


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("SELECT id, nope FROM t", r"^data.query failed: \[UNRESOLVED_COLUMN.*`nope`.*Fix: correct the SQL"),
        ("SELEC id FROM t", r"^data.query failed: \[PARSE_SYNTAX_ERROR\].*Fix: correct the SQL"),
        ("SELECT id FROM missing_view", r"^data.query failed: \[TABLE_OR_VIEW_NOT_FOUND\].*\(views: \['t'\]\)"),
        (
            "SELECT *, upper(attrition) AS Attrition FROM t",
            r"^data.query returns duplicate column names \[\['attrition', 'Attrition'\]\].*Fix: alias one",
        ),
        ("SELECT *, upper(x) AS X FROM t", r"duplicate column names \[\['x', 'X'\]\]"),
        ("SELECT id, x, x FROM t", r"duplicate column names \[\['x', 'x'\]\]"),
    ],
)
def test_query_mistakes_are_one_line_without_java_frames(spark, view, capfd, query, expected):
    with pytest.raises(DataError, match=expected) as err:
        run_query(spark, query, [view])
    assert "\n" not in str(err.value)
    no_java_frames(capfd)


def test_duplicates_are_caught_where_the_query_runs(spark, view, capfd):
    """raw_table (what cleaning sees) fails at data.query, not later as a confusing cleaning-rule error."""
    data = DataConfig.model_validate(
        {
            "sources": [{"name": "t", "format": "csv", "path": "unused.csv", "schema": {"id": "bigint"}}],
            "query": "SELECT t.*, upper(attrition) AS ATTRITION FROM t",
        }
    )
    loaded = [LoadedSource("t", True, spark.table(view), None, None)]
    with pytest.raises(DataError, match=r"^data.query returns duplicate column names \[\['attrition', 'ATTRITION'\]\]"):
        raw_table(spark, data, loaded)
    no_java_frames(capfd)


def test_a_good_query_passes_and_other_errors_are_still_logged(spark, view):
    from pyspark.logger import PySparkLogger

    assert run_query(spark, "SELECT id, upper(attrition) AS attrition_flag FROM t", [view]).columns == [
        "id",
        "attrition_flag",
    ]
    with pytest.raises(DataError):
        run_query(spark, "SELECT nope FROM t", [view])
    for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):  # silenced only while analysing
        assert not PySparkLogger.getLogger(name).disabled


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ("nope > 1", r"^cleaning.rules\[1\].when: cleaning rule when='nope > 1' is invalid: \[UNRESOLVED_COLUMN"),
        ("x >> > 1", r"^cleaning.rules\[1\].when: cleaning rule when='x >> > 1' is invalid: \[PARSE_SYNTAX_ERROR\]"),
        ("x +", r"^cleaning.rules\[1\].when: .*is invalid: \[PARSE_SYNTAX_ERROR\].*Fix: correct the SQL"),
    ],
)
def test_invalid_cleaning_rule_names_the_rule(spark, view, capfd, when, expected):
    rules = CleaningConfig.model_validate(
        {"rules": [{"when": "x > 100", "reason": "too big"}, {"when": when, "reason": "bad rule"}]}
    )
    with pytest.raises(DataError, match=expected) as err:
        tag_invalid(spark.table(view), rules, None, with_label=False)
    assert "\n" not in str(err.value)
    no_java_frames(capfd)


def test_invalid_label_rule_names_the_label_rule(spark, view, capfd):
    rules = CleaningConfig.model_validate({"label_rules": [{"when": "attrition = nope", "reason": "bad label"}]})
    with pytest.raises(DataError, match=r"^cleaning.label_rules\[0\].when: cleaning rule when='attrition = nope'"):
        tag_invalid(spark.table(view), rules, None, with_label=True)
    no_java_frames(capfd)
    tag_invalid(spark.table(view), rules, None, with_label=False)  # scoring applies no label rules
