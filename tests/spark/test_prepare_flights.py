"""The prepare stage on (a subsample of) the real demo data: reconciliation, fit-on-train, parity, reruns."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds
import pytest

from pipeline.data.features import transform
from pipeline.data.split import SPLIT
from pipeline.layout import Layout
from pipeline.model.spec import FeatureSpec
from tests.helpers import run_prepare

pytestmark = pytest.mark.integration


def test_outputs_and_counts_reconcile(prepared_flights, spark):
    config, result = prepared_flights
    out = Layout.from_config(config).prepared
    assert out.root == result.output_dir
    report = json.loads(Path(out.report_file).read_text())
    counts = report["counts"]
    clean = spark.read.parquet(out.clean_dir).count()
    quarantined = spark.read.parquet(out.quarantine_dir).count()
    assert counts["input_rows"] == clean + quarantined
    assert counts["clean_rows"] == clean and counts["quarantined_rows"] == quarantined
    assert counts["input_rows"] > 50_000
    reasons = {r["reason"] for r in report["quarantine_reasons"]}
    assert any(r.startswith("cancelled flight") for r in reasons)
    assert set(report["split_rows"]) == {"train", "val", "test", "holdout"}
    assert all(report["split_rows"][s] > 0 for s in report["split_rows"])
    for split in ("train", "val", "test"):
        rows = ds.dataset(out.features(split)).count_rows()
        assert rows == report["split_rows"][split]
    spec = FeatureSpec.load(out.spec_file)
    assert spec == result.spec
    # no leakage: actual times/delays never become features
    assert not {"dep_time", "arr_delay", "dep_delay", "air_time"} & set(spec.input_columns)


def test_statistics_are_fitted_on_train_only(prepared_flights):
    config, _ = prepared_flights
    out = Layout.from_config(config).prepared
    train = ds.dataset(out.features("train")).to_table(columns=["num__temp"]).column(0).to_numpy()
    test = ds.dataset(out.features("test")).to_table(columns=["num__temp"]).column(0).to_numpy()
    assert abs(train.mean()) < 1e-3 and abs(train.std() - 1) < 1e-3  # standardized with train moments
    assert test.mean() < -0.5  # Nov/Dec are colder than the Jan-Sep train months: not re-fitted


def test_spark_and_pandas_transforms_agree(prepared_flights, spark):
    config, result = prepared_flights
    spec = result.spec
    clean = spark.read.parquet(Layout.from_config(config).prepared.clean_dir).where(f"{SPLIT} != 'holdout'")
    keep = tuple(spec.input_columns)
    rows = transform(clean, spec, keep=keep).toPandas()
    numeric, categorical = spec.transform_pandas(rows[list(keep)])
    np.testing.assert_allclose(rows[spec.numeric_columns].to_numpy(np.float32), numeric, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(rows[spec.categorical_columns].to_numpy(np.int64), categorical)
    assert len(rows) > 40_000


def test_rerun_gives_identical_outputs_and_no_leftovers(prepared_flights, spark, flights_config_factory):
    config, result = prepared_flights
    before = _digest(Layout.from_config(config).prepared)
    run_prepare(spark, config)
    assert _digest(Layout.from_config(config).prepared) == before
    # Other stages share work_dir (checkpoints/, predictions/); prepare must leave only prepared/ itself.
    leftovers = [
        p.name for p in Path(config.work_dir).iterdir() if p.name.startswith("prepared") and p.name != "prepared"
    ]
    assert leftovers == []


def _digest(prepared) -> dict[str, str]:
    """Content hash per output dataset (file names carry a random job id, so hash the rows)."""
    digests = {}
    folders = [prepared.clean_dir, prepared.quarantine_dir] + [prepared.features(s) for s in ("train", "val", "test")]
    for folder in folders:
        table = ds.dataset(folder).to_table()
        rows = sorted(map(str, table.to_pylist()))
        digests[folder] = hashlib.sha256("\n".join(rows).encode()).hexdigest()
    digests["spec"] = hashlib.sha256(Path(prepared.spec_file).read_bytes()).hexdigest()
    return digests
