"""`infer-schema`: a data.sources entry drafted by Spark's inference, which the config loader accepts."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from pipeline.config.load import load_config
from pipeline.data.schema_inference import infer_source, source_yaml
from pipeline.errors import ConfigError, DataError


def loads_as_config(tmp_path, entries: list, label: str) -> None:
    """The pasted entry plus a minimal features/label section validates, and the schema survives as written."""
    overlay = tmp_path / "draft.yaml"
    overlay.write_text(yaml.safe_dump({"data": {"sources": entries}, "features": {"label": {"column": label}}}))
    config = load_config([overlay], ["split.key=id"])
    assert config.data.sources[0].schema_ == entries[0]["schema"]


def test_csv_types_in_file_order_with_reader_options(spark, tmp_path):
    csv = tmp_path / "sales 2024.csv"
    csv.write_text(
        "id,amount,qty,day,at,city,label\n"
        "1,10.5,3,2024-05-01,2024-05-01 10:00:00,paris,1\n"
        "2,NA,4,2024-05-02,2024-05-02 11:30:00,rome,0\n"
    )
    source = infer_source(spark, str(csv), options={"nullValue": "NA"})
    assert source["name"] == "sales_2024" and source["format"] == "csv" and source["options"] == {"nullValue": "NA"}
    assert list(source["schema"].items()) == [
        ("id", "int"),
        ("amount", "double"),
        ("qty", "int"),
        ("day", "date"),
        ("at", "timestamp"),
        ("city", "string"),
        ("label", "int"),
    ]
    entries = yaml.safe_load(source_yaml(source))
    assert entries == [source]
    loads_as_config(tmp_path, entries, "label")


def test_csv_is_inferred_from_a_bounded_sample(spark, tmp_path):
    rows = "".join(f"{i},{i * 10}\n" for i in range(1, 6))
    (tmp_path / "codes.csv").write_text("id,code\n" + rows + "6,A-7\n")
    sampled = infer_source(spark, str(tmp_path / "codes.csv"), sample_rows=5)
    assert sampled["schema"] == {"id": "int", "code": "int"}  # the odd last line is past the sample
    whole = infer_source(spark, str(tmp_path / "codes.csv"), sample_rows=100)
    assert whole["schema"] == {"id": "int", "code": "string"}


def test_json_lines_keep_the_file_key_order(spark, tmp_path):
    lines = '{"id": 1, "score": 0.5, "kind": "a", "label": 0}\n{"id": 2, "score": 1.5, "kind": "b", "label": 1}\n'
    (tmp_path / "rows.jsonl").write_text(lines)
    source = infer_source(spark, str(tmp_path / "rows.jsonl"))
    assert source["format"] == "json"
    assert list(source["schema"].items()) == [
        ("id", "bigint"),
        ("score", "double"),
        ("kind", "string"),
        ("label", "bigint"),
    ]
    loads_as_config(tmp_path, yaml.safe_load(source_yaml(source)), "label")


def test_json_array_needs_multiline(spark, tmp_path):
    records = [{"id": 1, "label": 0}, {"id": 2, "label": 1}]
    (tmp_path / "array.json").write_text(json.dumps(records, indent=2))  # pretty-printed: no line is a record
    with pytest.raises(DataError, match="could be parsed. Fix: .*--option multiLine=true"):
        infer_source(spark, str(tmp_path / "array.json"))
    source = infer_source(spark, str(tmp_path / "array.json"), options={"multiLine": "true"})
    assert source["schema"] == {"id": "bigint", "label": "bigint"}


def test_parquet_folder(spark, tmp_path):
    frame = pd.DataFrame({"id": [1, 2], "score": [0.5, 1.5], "kind": ["a", "b"], "label": [0, 1]})
    (tmp_path / "table").mkdir()
    frame.to_parquet(tmp_path / "table" / "part-0.parquet")
    parquet = infer_source(spark, str(tmp_path / "table"), name="t")  # format from the part file
    assert list(parquet["schema"].items()) == [
        ("id", "bigint"),
        ("score", "double"),
        ("kind", "string"),
        ("label", "bigint"),
    ]
    assert parquet["format"] == "parquet"
    loads_as_config(tmp_path, yaml.safe_load(source_yaml(parquet)), "label")


def test_user_mistakes_are_clear_errors(spark, tmp_path):
    with pytest.raises(DataError, match=r"nope.csv' matches no file. Fix: pass an existing file"):
        infer_source(spark, str(tmp_path / "nope.csv"))
    (tmp_path / "data.bin").write_text("x")
    with pytest.raises(ConfigError, match="cannot tell the format of .* Fix: pass --format"):
        infer_source(spark, str(tmp_path / "data.bin"))
    (tmp_path / "ok.csv").write_text("id\n1\n")
    with pytest.raises(ConfigError, match="--name 'my-source' is not a valid view name.* Fix:"):
        infer_source(spark, str(tmp_path / "ok.csv"), name="my-source")
    with pytest.raises(ConfigError, match="--sample-rows 0 is too small. Fix:"):
        infer_source(spark, str(tmp_path / "ok.csv"), sample_rows=0)


def test_cli_prints_yaml_to_paste(cli_session, tmp_path, capsys):
    from pipeline.cli import main

    (tmp_path / "houses.csv").write_text("id,area,district,price\n1,80.5,north,250000\n2,NA,south,180000\n")
    code = main(["infer-schema", str(tmp_path / "houses.csv"), "--option", "nullValue=NA", "--sample-rows", "50"])
    out = capsys.readouterr().out
    assert code == 0 and cli_session == ["local[1]"]
    assert out.startswith("# inferred by Spark: review the types")
    entries = yaml.safe_load(out)
    assert entries == [
        {
            "name": "houses",
            "format": "csv",
            "path": str(tmp_path / "houses.csv"),
            "schema": {"id": "int", "area": "double", "district": "string", "price": "int"},
            "options": {"nullValue": "NA"},
        }
    ]
    loads_as_config(tmp_path, entries, "price")


def test_cli_missing_path_is_one_line(cli_session, tmp_path, capsys):
    from pipeline.cli import main

    assert main(["infer-schema", str(tmp_path / "missing.csv")]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1 and "Fix:" in captured.err
