"""Rows lost to problems nobody declared: a WARNING below data.max_quarantine_fraction, a failed prepare above it,
with the rows kept and the reader options to check named."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from pipeline.config.load import load_config
from pipeline.errors import DataError
from tests.helpers import run_prepare


def config_for(tmp_path: Path, lines: list[str], **options):
    csv = tmp_path / "t.csv"
    csv.write_text("id,x,label\n" + "\n".join(lines) + "\n")
    overlay = tmp_path / "t.yaml"
    source = {"name": "t", "format": "csv", "path": str(csv), "schema": {"id": "int", "x": "double", "label": "int"}}
    overlay.write_text(
        json.dumps(
            {
                "work_dir": str(tmp_path / "work"),
                "data": {"sources": [{**source, "options": options}], "key_columns": ["id"]},
                "cleaning": {"ranges": {"x": {"max": 1000}}},
                "features": {"numeric": [{"name": "x"}], "label": {"column": "label", "task": "binary"}},
                "split": {"method": "hash", "key": "id", "val_fraction": 0.2, "test_fraction": 0.2},
                "spark": {"shuffle_partitions": 2},
            }
        )
    )
    return load_config([overlay], [])


def good(n: int) -> list[str]:
    return [f"{i},{i * 0.5},{i % 2}" for i in range(n)]


def test_declared_rules_are_not_limited_and_a_few_bad_lines_warn(spark, tmp_path, caplog):
    lines = good(300) + [f"{1000 + i},{5000 + i},1" for i in range(30)]  # 30 above cleaning.ranges: declared
    lines += ["2000,not-a-number,1", "2001,3.0,2"]  # 2 of 332 rows: 0.6%, under the default 1%
    with caplog.at_level(logging.WARNING, logger="pipeline.data.quarantine_rate"):
        result = run_prepare(spark, config_for(tmp_path, lines))
    assert result.report.counts.quarantined_rows == 32
    warning = " ".join(record.getMessage() for record in caplog.records)
    assert "2 of 332 rows (0.60%) quarantined for problems no cleaning setting declared" in warning
    assert "\"x: cannot cast '…' to double\": 1" in warning and "\"label '2' not in ['0', '1']\": 1" in warning


def test_above_the_limit_prepare_fails_and_keeps_the_rows(spark, tmp_path):
    texts = ['"two\nlines"'] * 10  # a multi-line export read with the user's multiLine=false
    lines = good(100) + [f"{500 + i},{t},1" for i, t in enumerate(texts)]
    config = config_for(tmp_path, lines, multiLine="false")
    with pytest.raises(DataError) as failure:
        run_prepare(spark, config)
    message = str(failure.value)
    assert "'malformed line (wrong number of fields)': 20" in message
    assert "check data.sources[].options sep, quote, escape and multiLine" in message
    assert "above data.max_quarantine_fraction=0.01" in message
    kept = message.split("the rows and their reasons are in ")[1].split(". Fix")[0]
    assert len(spark.read.parquet(kept).where("_stage = 'read'").collect()) == 20
    assert not (tmp_path / "work" / "prepared").exists()  # nothing published
