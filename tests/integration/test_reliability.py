"""Bad input and faults: nothing lost, nothing hangs, every failure says what and how to fix it."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline import faults
from pipeline.config.load import load_config
from pipeline.errors import ConfigError, DataError, TrackingError
from pipeline.layout import Layout
from pipeline.tracking import registry
from pipeline.worker.checkpoint import LAST, load_checkpoint
from tests.helpers import ROOT, flights_cli_args, free_port, run_prepare, run_train
from tests.helpers import run_score as run_score_job

pytestmark = pytest.mark.integration

HEADER = b"id,kind,amount,city,label\n"
DIRTY_ROWS = [
    b"1,a,10.5,paris,1",
    b"2,b,20.0,rome,0",
    b"3,a,abc,paris,1",  # wrong type
    b"4,a,12.0",  # too few fields
    b"5,b,1.0,rome,0,extra",  # too many fields
    b"6,b,NaN,rome,1",  # NaN
    b"7,a,Infinity,paris,0",  # +inf
    b"8,a,-Infinity,paris,0",  # -inf
    b"9,b,5.0,r\xffme,1",  # non-UTF8 bytes
    b"10,a,7.0," + b"x" * 300 + b",0",  # very long string
    b"2,b,21.0,rome,1",  # duplicate key
    b",a,3.0,paris,1",  # required column null
    b"13,a,3.0,paris,",  # no label
    b"14,c,4.0,oslo,0",  # kind not allowed
] + [f"{100 + i},{'ab'[i % 2]},{i * 1.5},{['paris', 'rome', 'oslo'][i % 3]},{i % 2}".encode() for i in range(60)]


def dirty_config(tmp_path: Path, csv: Path, *overrides: str):
    overlay = tmp_path / "dirty.yaml"
    overlay.write_text(
        json.dumps(
            {
                "work_dir": str(tmp_path / "work"),
                "data": {
                    "sources": [
                        {
                            "name": "t",
                            "format": "csv",
                            "path": str(csv),
                            "schema": {
                                "id": "bigint",
                                "kind": "string",
                                "amount": "double",
                                "city": "string",
                                "label": "int",
                            },
                        }
                    ],
                    "key_columns": ["id"],
                },
                "cleaning": {
                    "required": ["id"],
                    "allowed": {"kind": ["a", "b"]},
                    "dedup_on": ["id"],
                    "max_string_length": 100,
                },
                "features": {
                    "numeric": [{"name": "amount"}],
                    "categorical": [{"name": "city"}],
                    "label": {"column": "label", "task": "binary"},
                },
                "split": {"method": "hash", "key": "id", "val_fraction": 0.2, "test_fraction": 0.2},
                "spark": {"shuffle_partitions": 4},
            }
        )
    )
    return load_config([overlay], list(overrides))


def write_csv(tmp_path: Path, rows: list[bytes], name: str = "dirty.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(HEADER + b"\n".join(rows) + b"\n")
    return path


def test_every_dirty_row_is_accounted_for_with_a_reason(spark, tmp_path):
    # Every kind of dirt at once is far above the default limit on unexpected rows (tests/spark/test_quarantine_rate.py)
    config = dirty_config(tmp_path, write_csv(tmp_path, DIRTY_ROWS), "data.max_quarantine_fraction=1")
    result = run_prepare(spark, config)
    counts = result.report.counts
    assert counts.input_rows == len(DIRTY_ROWS) == counts.clean_rows + counts.quarantined_rows
    quarantine = spark.read.parquet(f"{result.output_dir}/quarantine").toPandas()
    reasons = " | ".join(quarantine["_reason"])
    for expected in [
        "amount: cannot cast 'abc' to double",
        "malformed line",
        "amount is NaN",
        "amount is infinite",
        "city: invalid UTF-8 bytes",
        "longer than cleaning.max_string_length=100",
        "duplicate key ['id']",
        "id is null",
        "label label is null",
        "kind not in cleaning.allowed",
    ]:
        assert expected in reasons, expected
    assert quarantine["_record"].notna().all()  # original values kept for every quarantined row
    assert "4,a,12.0" in set(quarantine["_record"])  # the raw malformed line itself
    assert counts.quarantined_rows == 12  # ids 3-10, the duplicate 2, null id, 13 (no label), 14 (kind c)


def test_all_null_feature_column_is_a_clear_error(spark, tmp_path):
    rows = [f"{i},a,,paris,{i % 2}".encode() for i in range(30)]
    with pytest.raises(DataError, match="numeric feature 'amount' is null in every training row"):
        run_prepare(spark, dirty_config(tmp_path, write_csv(tmp_path, rows)))


def test_header_only_file_is_empty_input(spark, tmp_path):
    with pytest.raises(DataError, match="source 't' has no readable rows"):
        run_prepare(spark, dirty_config(tmp_path, write_csv(tmp_path, [])))


def test_unknown_column_in_sql(spark, tmp_path):
    config = dirty_config(tmp_path, write_csv(tmp_path, DIRTY_ROWS), "data.query=SELECT id, nope FROM t")
    with pytest.raises(DataError, match=r"data.query failed: .*nope"):
        run_prepare(spark, config)


def test_missing_label_setting(spark, tmp_path):
    config = dirty_config(tmp_path, write_csv(tmp_path, DIRTY_ROWS), "features.label=null")
    with pytest.raises(ConfigError, match="features.label is not set"):
        run_prepare(spark, config)


def test_unwritable_work_dir_fails_before_reading(spark, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    config = dirty_config(tmp_path, tmp_path / "never-read.csv", f"work_dir={blocker}/work")
    started = time.monotonic()
    with pytest.raises(DataError, match=r"work_dir=.*a-file/work is not writable"):
        run_prepare(spark, config)
    assert time.monotonic() - started < 30


def test_unseen_categories_at_scoring_use_the_oov_bucket(trained_flights, spark):
    config, outcome = trained_flights
    from pipeline.tracking import runs

    runs.configure(config.tracking, config.spark.master)
    rows = (
        spark.read.parquet(Layout.from_config(config).prepared.clean_dir)
        .limit(20)
        .toPandas()[outcome.spec.input_columns]
    )
    unseen = rows.assign(carrier="ZZ", dest="NOWHERE", tailnum="N0NE", manufacturer="ACME")
    predictions = registry.load_pyfunc(outcome.model.uri).predict(unseen)
    assert predictions["probability"].between(0, 1).all() and len(predictions) == 20


def test_tracking_server_unreachable_fails_before_training(spark, train_config_factory):
    port = free_port()  # nothing listens there
    config = train_config_factory(f"tracking.uri=http://127.0.0.1:{port}")
    started = time.monotonic()
    with pytest.raises(TrackingError, match=f"MLflow tracking server http://127.0.0.1:{port} is unreachable"):
        run_train(spark, config)
    assert time.monotonic() - started < 30


@pytest.mark.slow  # a scoring process killed and rerun: make test-all (fault kinds live in the full tier)
def test_scoring_killed_before_publish_then_rerun_matches(trained_flights, spark, flights_raw):
    config, _ = trained_flights
    date = "2013-12-20"
    reference = run_score_job(spark, config, date)
    out_dir = Layout.from_config(config).predictions.root
    expected = pd.read_parquet(reference.output_path).drop(columns="scored_at").sort_values("flight_id")

    # Remove the partition, then kill a scoring process between its staged write and the swap.
    import shutil

    shutil.rmtree(reference.output_path)
    args = flights_cli_args(
        f"work_dir={config.work_dir}",
        f"tracking.uri={config.tracking.uri}",
        f"tracking.artifact_root={config.tracking.artifact_root}",
    )
    env = {**os.environ, faults.ENV: "score_before_swap", "RAW_DIR": str(flights_raw)}
    killed = subprocess.run(
        [sys.executable, "-m", "pipeline", "score", *args, "--date", date],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert killed.returncode == 19, killed.stderr[-2000:]
    assert not Path(reference.output_path).exists()  # nothing half-written is visible to readers
    visible = [p.name for p in Path(out_dir).iterdir() if not p.name.startswith((".", "_"))]
    assert f"date={date}" not in visible

    again = run_score_job(spark, config, date)
    got = pd.read_parquet(again.output_path).drop(columns="scored_at").sort_values("flight_id")
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected.reset_index(drop=True))
    assert not [p for p in Path(out_dir).iterdir() if p.name.startswith(".staging")]  # stale staging removed


def test_checkpoint_with_pickled_objects_is_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (os.getcwd, ())

    torch.save({"epoch": 1, "evil": Payload()}, tmp_path / LAST)
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(str(tmp_path))


def test_no_shell_interpolation_in_the_pipeline():
    import re

    risky = re.compile(r"shell=True|os\.system\(|os\.popen\(|(?<![.\w])eval\(|(?<![.\w])exec\(")
    for path in (ROOT / "pipeline").rglob("*.py"):
        found = risky.findall(path.read_text())
        assert not found, f"{found} in {path.name}"


def test_services_bind_loopback_and_configs_hold_no_secrets():
    makefile = (ROOT / "Makefile").read_text()
    assert "--host 127.0.0.1" in makefile
    for path in (ROOT / "conf").glob("*.yaml"):
        for line in path.read_text().splitlines():
            key = line.split(":", 1)[0].strip().lower()
            # Names of credentials end with these words (token_embedding_dim is a model setting, not a secret).
            if key.endswith(("password", "secret", "token", "access_key", "api_key")):
                assert "${" in line, f"{path.name}: {line.strip()} must come from the environment"


def test_numpy_nan_rows_at_scoring_time_are_imputed_not_dropped(trained_flights, spark):
    config, outcome = trained_flights
    rows = (
        spark.read.parquet(Layout.from_config(config).prepared.clean_dir)
        .limit(5)
        .toPandas()[outcome.spec.input_columns]
    )
    rows["temp"] = np.nan
    predictions = registry.load_pyfunc(outcome.model.uri).predict(rows)
    assert len(predictions) == 5 and predictions["probability"].notna().all()


def test_scoring_a_date_without_rows_writes_nothing(trained_flights, spark, tmp_path):
    from pipeline.errors import ScoringError

    config, _ = trained_flights
    config = config.model_copy(update={"score": config.score.model_copy(update={"output_dir": str(tmp_path / "p")})})
    with pytest.raises(ScoringError, match="no input rows for --date 2014-06-01"):
        run_score_job(spark, config, "2014-06-01")
    assert not (tmp_path / "p" / "date=2014-06-01").exists()
    with pytest.raises(ScoringError, match="--date '2013-13-01' is not a date"):
        run_score_job(spark, config, "2013-13-01")
