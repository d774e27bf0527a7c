"""Cleaning rules tag every failing row with all its reasons; clean + quarantined == input."""

from __future__ import annotations

import pytest

from pipeline.config.feature_sections import LabelConfig
from pipeline.config.schema import CleaningConfig
from pipeline.data.cleaning import split_clean, tag_invalid
from pipeline.errors import DataError

ROWS = [
    ("a", 1.0, "x", 1),
    ("b", None, "x", 0),
    ("c", 500.0, "x", 1),
    ("d", float("nan"), "y", 0),
    ("e", float("inf"), "x", 0),
    ("f", 2.0, "zzz", 1),
    ("a", 3.0, "x", 0),
    ("g", 4.0, "x", None),
]
RULES = CleaningConfig(
    required=["id"],
    quarantine_nulls=["v"],
    ranges={"v": {"min": 0, "max": 100}},
    allowed={"c": ["x", "y"]},
    dedup_on=["id"],
    rules=[{"when": "c = 'y'", "reason": "y rows are test traffic"}],
)
LABEL = LabelConfig(column="label", task="binary")


def frame(spark):
    return spark.createDataFrame(ROWS, "id string, v double, c string, label int")


def test_reasons_and_reconciliation(spark):
    df = frame(spark)
    clean, quarantined = split_clean(tag_invalid(df, RULES, LABEL, with_label=True), "clean", "t")
    reasons = {r["_reason"] for r in quarantined.collect()}
    assert "v is null" in reasons
    assert "v above max 100.0" in reasons
    assert "v is NaN; y rows are test traffic" in reasons
    assert "v is infinite; v above max 100.0" in reasons
    assert "c not in cleaning.allowed" in reasons
    assert "duplicate key ['id']" in reasons
    assert "label label is null" in reasons
    assert clean.count() + quarantined.count() == df.count()
    assert sorted(r["id"] for r in clean.collect()) == ["a"]


def test_dedup_keeps_the_same_row_every_time(spark):
    df = frame(spark)
    kept = [split_clean(tag_invalid(df, RULES, LABEL, True), "clean", "t")[0].collect() for _ in range(2)]
    assert kept[0] == kept[1]


def test_label_rules_skipped_when_scoring(spark):
    df = frame(spark)
    rules = CleaningConfig(label_rules=[{"when": "label = 0", "reason": "no label"}])
    _, quarantined = split_clean(tag_invalid(df, rules, LABEL, with_label=False), "clean", "t")
    assert quarantined.count() == 2  # only NaN / inf rows: label rules and null labels are ignored


def test_unknown_column_in_rule_is_clear(spark):
    rules = CleaningConfig(rules=[{"when": "nope > 1", "reason": "r"}])
    with pytest.raises(DataError, match="cleaning rule when='nope > 1' is invalid"):
        tag_invalid(frame(spark), rules, None, with_label=False)


def test_missing_required_column(spark):
    with pytest.raises(DataError, match=r"cleaning.required names column\(s\) \['missing'\]"):
        tag_invalid(frame(spark), CleaningConfig(required=["missing"]), None, False)
