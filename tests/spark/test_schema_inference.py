"""`infer-schema`: a data.sources entry drafted by Spark's inference, which the config loader accepts."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from pipeline.config.load import load_config
from pipeline.data.schema_inference import infer_source, source_yaml
from pipeline.errors import ConfigError, DataError


def loads_as_config(tmp_path, source: dict, label: str) -> None:
    overlay = tmp_path / "draft.yaml"
    entries = yaml.safe_load(source_yaml(source))
    overlay.write_text(yaml.safe_dump({"data": {"sources": entries}, "features": {"label": {"column": label}}}))
    config = load_config([overlay], ["split.key=id"])
    assert config.data.sources[0].schema_ == source["schema"]


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
    loads_as_config(tmp_path, source, "label")


def test_json_lines_and_parquet(spark, tmp_path):
    frame = pd.DataFrame({"id": [1, 2], "score": [0.5, 1.5], "kind": ["a", "b"], "label": [0, 1]})
    (tmp_path / "rows.jsonl").write_text(frame.to_json(orient="records", lines=True))
    jsonl = infer_source(spark, str(tmp_path / "rows.jsonl"))
    assert jsonl["format"] == "json" and jsonl["schema"]["score"] == "double" and jsonl["schema"]["kind"] == "string"
    (tmp_path / "table").mkdir()
    frame.to_parquet(tmp_path / "table" / "part-0.parquet")
    parquet = infer_source(spark, str(tmp_path / "table"), fmt="parquet", name="t")
    assert list(parquet["schema"]) == ["id", "score", "kind", "label"] and parquet["schema"]["id"] == "bigint"
    loads_as_config(tmp_path, parquet, "label")


def test_missing_path_and_unknown_format_are_clear_errors(spark, tmp_path):
    with pytest.raises(DataError, match="matches no file. Fix: pass an existing file"):
        infer_source(spark, str(tmp_path / "nope.csv"))
    (tmp_path / "data.bin").write_text("x")
    with pytest.raises(ConfigError, match="cannot tell the format of .* Fix: pass --format"):
        infer_source(spark, str(tmp_path / "data.bin"))
