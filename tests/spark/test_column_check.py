"""`python -m pipeline check` and prepare's first step: every named column exists with a usable type, found from
the declared schemas and the analysed query alone (no job), a typo named with the nearest real column."""

from __future__ import annotations

import logging

import pytest
import yaml

from pipeline.config.load import load_config
from pipeline.data.column_check import check_columns, table_columns
from pipeline.errors import ConfigError
from tests.helpers import ROOT

FLIGHTS = ["--conf", str(ROOT / "conf/flights.yaml"), "--conf", str(ROOT / "conf/local.yaml")]


def test_query_columns_come_from_analysis_and_typos_name_the_nearest(spark, flights_raw, monkeypatch, tmp_path):
    monkeypatch.setenv("RAW_DIR", str(flights_raw))
    config = load_config([ROOT / "conf/flights.yaml", ROOT / "conf/local.yaml"], [f"work_dir={tmp_path}"])
    jobs_before = spark.sparkContext.statusTracker().getJobIdsForGroup(None)
    columns = table_columns(spark, config.data)
    assert spark.sparkContext.statusTracker().getJobIdsForGroup(None) == jobs_before  # analysed, not run
    assert columns["late"] == "int" and columns["distance"] == "double" and "precip_3h" in columns
    check_columns(columns, config)  # the demo's own config is fine

    def variant(*overrides):
        return load_config([ROOT / "conf/flights.yaml", ROOT / "conf/local.yaml"], [f"work_dir={tmp_path}", *overrides])

    with pytest.raises(ConfigError) as failure:
        check_columns(
            columns, variant("features.numeric=[{name: distance}, {name: distnace}]", "split.column=flightdate")
        )
    message = str(failure.value)
    assert "features.numeric[1].name: column 'distnace' is not in the table (did you mean 'distance'?)" in message
    assert "split.column: column 'flightdate' is not in the table (did you mean 'flight_date'?)" in message
    with pytest.raises(ConfigError, match=r"features.numeric\[0\].name: column 'carrier' is string, expected tinyint"):
        check_columns(columns, variant("features.numeric=[{name: carrier}]"))


def test_cli_check_reads_headers_and_names_the_typo(cli_session, flights_raw, monkeypatch, tmp_path, caplog, capsys):
    from pipeline.cli import main

    monkeypatch.setenv("RAW_DIR", str(flights_raw))
    with caplog.at_level(logging.INFO, logger="pipeline"):
        assert main(["check", *FLIGHTS]) == 0
    assert (
        "config, files and columns are valid (flights: 1 file(s), weather: 1 file(s), planes: 1 file(s)" in caplog.text
    )
    assert cli_session == ["local[1]"]

    typo = tmp_path / "typo.yaml"
    typo.write_text(yaml.safe_dump({"features": {"categorical": [{"name": "carier"}]}}))
    capsys.readouterr()
    assert main(["check", *FLIGHTS, "--conf", str(typo)]) == 2
    assert "column 'carier' is not in the table (did you mean 'carrier'?)" in capsys.readouterr().err

    header = tmp_path / "raw"
    (header / "flights").mkdir(parents=True)
    for table in ("weather", "planes"):
        (header / table).mkdir()
        (header / table / "t.csv").write_bytes((flights_raw / table / f"{table}.csv").read_bytes())
    (header / "flights" / "f.csv").write_text("year,month\n2013,1\n")
    monkeypatch.setenv("RAW_DIR", str(header))
    assert main(["check", *FLIGHTS]) == 2
    assert "header of" in capsys.readouterr().err
