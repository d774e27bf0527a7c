"""The user's SQL (data.query, cleaning rules): one-line errors naming the setting, no Java stack on stderr."""

from __future__ import annotations

import pytest

from pipeline.config.schema import CleaningConfig
from pipeline.data.cleaning import tag_invalid
from pipeline.data.user_sql import run_query
from pipeline.errors import DataError


@pytest.fixture
def view(spark):
    spark.createDataFrame([(1, 2.0, "a")], "id bigint, x double, attrition string").createOrReplaceTempView("t")
    return "t"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("SELECT id, nope FROM t", r"data.query failed: \[UNRESOLVED_COLUMN.*`nope`.*Fix: correct the SQL"),
        ("SELEC id FROM t", r"data.query failed: \[PARSE_SYNTAX_ERROR\].*Fix: correct the SQL"),
        (
            "SELECT *, upper(attrition) AS Attrition FROM t",
            r"duplicate column names \[\['attrition', 'Attrition'\]\].*Fix: alias one",
        ),
    ],
)
def test_query_mistakes_are_one_line_without_java_frames(spark, view, capfd, query, expected):
    with pytest.raises(DataError, match=expected) as err:
        run_query(spark, query, [view])
    assert "\n" not in str(err.value)
    captured = capfd.readouterr()
    assert "org.apache.spark" not in captured.err + captured.out  # pyspark's JSON stack record is not printed


def test_invalid_cleaning_rule_names_the_rule(spark, view, capfd):
    rules = CleaningConfig.model_validate({"rules": [{"when": "nope > 1", "reason": "too big"}]})
    with pytest.raises(DataError, match=r"cleaning rule when='nope > 1' is invalid: \[UNRESOLVED_COLUMN"):
        tag_invalid(spark.table(view), rules, None, with_label=False)
    captured = capfd.readouterr()
    assert "org.apache.spark" not in captured.err + captured.out
