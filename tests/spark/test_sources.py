"""Reading declared sources: bad rows are quarantined with reasons, bad setups are clear errors."""

from __future__ import annotations

import pytest

from pipeline.config.schema import SourceConfig
from pipeline.data.sources import load_source
from pipeline.errors import ConfigError, DataError

SCHEMA = {"id": "int", "name": "string", "score": "double"}


def csv_source(path, **extra):
    return SourceConfig(name="t", format="csv", path=str(path), schema=SCHEMA, **extra)


def reasons_by_record(loaded):
    return {r["_record"]: r["_reason"] for r in loaded.bad.collect()}


def test_csv_dirt_is_quarantined_with_reasons(spark, tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(
        b"id,name,score\n"
        b"1,ok,2.5\n"
        b"2,short\n"
        b"3,long,4,extra\n"
        b"x4,badint,1.0\n"
        b"5,caf\xff\xfe,1.0\n"
        b"6," + b"z" * 50 + b",3.0\n"
    )
    loaded = load_source(spark, csv_source(path), max_string_length=20)
    valid = loaded.valid.collect()
    assert [(r["id"], r["name"], r["score"]) for r in valid] == [(1, "ok", 2.5)]
    reasons = reasons_by_record(loaded)
    assert reasons["2,short"] == "malformed line (wrong number of fields)"
    assert reasons["3,long,4,extra"] == "malformed line (wrong number of fields)"
    assert any("id: cannot cast 'x4' to int" == r for r in reasons.values())
    assert any(r == "name: invalid UTF-8 bytes" for r in reasons.values())
    assert any("longer than cleaning.max_string_length=20" in r for r in reasons.values())
    assert loaded.tagged.count() == len(valid) + len(reasons)  # every row lands once


def test_json_lines_and_parquet(spark, tmp_path):
    (tmp_path / "j").mkdir()
    (tmp_path / "j" / "a.json").write_text(
        '{"id": 1, "name": "a", "score": 1.5}\n{"id": "no", "name": "b"}\nnot json\n'
    )
    loaded = load_source(spark, SourceConfig(name="j", format="json", path=str(tmp_path / "j"), schema=SCHEMA), 100)
    assert loaded.valid.count() == 1
    reasons = sorted(reasons_by_record(loaded).values())
    assert reasons == ["id: cannot cast 'no' to int", "malformed line (wrong number of fields)"]

    spark.createDataFrame([(1, "a", 1.0)], "id int, name string, score double").write.parquet(str(tmp_path / "p"))
    loaded = load_source(spark, SourceConfig(name="p", format="parquet", path=str(tmp_path / "p"), schema=SCHEMA), 100)
    assert loaded.valid.collect()[0]["score"] == 1.0


def test_glob_matching_nothing(spark, tmp_path):
    with pytest.raises(DataError, match=r"matches no file.*data.sources\[\].path"):
        load_source(spark, csv_source(tmp_path / "nothing-*.csv"), 100)


def test_empty_files_and_empty_directory(spark, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="matches no file"):
        load_source(spark, csv_source(tmp_path / "empty"), 100)
    (tmp_path / "empty" / "a.csv").write_text("")
    with pytest.raises(DataError, match="are empty"):
        load_source(spark, csv_source(tmp_path / "empty"), 100)


def test_header_mismatch_names_columns(spark, tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("id,score,extra\n1,2.0,x\n")
    with pytest.raises(DataError) as err:
        load_source(spark, csv_source(path), 100)
    message = str(err.value)
    assert "missing: ['name']" in message and "unexpected: ['extra']" in message and str(path) in message


def test_unknown_type_is_config_error(spark, tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("id\n1\n")
    source = SourceConfig(name="t", format="csv", path=str(path), schema={"id": "integr"})
    with pytest.raises(ConfigError, match=r"schema.id: unknown type 'integr'"):
        load_source(spark, source, 100)
