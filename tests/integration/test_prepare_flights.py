"""The prepare stage on (a subsample of) the real demo data: reconciliation, fit-on-train, parity, reruns."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds
import pytest

from pipeline.features import SPLIT, transform
from pipeline.spec import FeatureSpec

pytestmark = pytest.mark.integration


def test_outputs_and_counts_reconcile(prepared_flights, spark):
    config, result = prepared_flights
    out = Path(result.output_dir)
    report = json.loads((out / "quality_report.json").read_text())
    counts = report["counts"]
    clean = spark.read.parquet(str(out / "clean")).count()
    quarantined = spark.read.parquet(str(out / "quarantine")).count()
    assert counts["input_rows"] == clean + quarantined
    assert counts["clean_rows"] == clean and counts["quarantined_rows"] == quarantined
    assert counts["input_rows"] > 50_000
    reasons = {r["reason"] for r in report["quarantine_reasons"]}
    assert any(r.startswith("cancelled flight") for r in reasons)
    assert set(report["split_rows"]) == {"train", "val", "test", "holdout"}
    assert all(report["split_rows"][s] > 0 for s in report["split_rows"])
    for split in ("train", "val", "test"):
        rows = ds.dataset(out / "features" / split).count_rows()
        assert rows == report["split_rows"][split]
    spec = FeatureSpec.load(out / "feature_spec.json")
    assert spec == result.spec
    # no leakage: actual times/delays never become features
    assert not {"dep_time", "arr_delay", "dep_delay", "air_time"} & set(spec.input_columns)


def test_statistics_are_fitted_on_train_only(prepared_flights):
    _, result = prepared_flights
    out = Path(result.output_dir) / "features"
    train = ds.dataset(out / "train").to_table(columns=["num__temp"]).column(0).to_numpy()
    test = ds.dataset(out / "test").to_table(columns=["num__temp"]).column(0).to_numpy()
    assert abs(train.mean()) < 1e-3 and abs(train.std() - 1) < 1e-3  # standardized with train moments
    assert test.mean() < -0.5  # Nov/Dec are colder than the Jan-Sep train months: not re-fitted


def test_spark_and_pandas_transforms_agree(prepared_flights, spark):
    _, result = prepared_flights
    spec = result.spec
    clean = spark.read.parquet(str(Path(result.output_dir) / "clean")).where(f"{SPLIT} != 'holdout'")
    keep = tuple(spec.input_columns)
    rows = transform(clean, spec, keep=keep).toPandas()
    numeric, categorical = spec.transform_pandas(rows[list(keep)])
    np.testing.assert_allclose(rows[spec.numeric_columns].to_numpy(np.float32), numeric, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(rows[spec.categorical_columns].to_numpy(np.int64), categorical)
    assert len(rows) > 40_000


def test_rerun_gives_identical_outputs_and_no_leftovers(prepared_flights, spark, flights_config_factory):
    from pipeline.prepare import run_prepare

    config, result = prepared_flights
    before = _digest(Path(result.output_dir))
    run_prepare(spark, config)
    assert _digest(Path(result.output_dir)) == before
    # Other stages share work_dir (checkpoints/, predictions/); prepare must leave only prepared/ itself.
    leftovers = [
        p.name for p in Path(config.work_dir).iterdir() if p.name.startswith("prepared") and p.name != "prepared"
    ]
    assert leftovers == []


def _digest(folder: Path) -> dict[str, str]:
    """Content hash per output dataset (file names carry a random job id, so hash the rows)."""
    digests = {}
    for name in ("clean", "quarantine", "features/train", "features/val", "features/test"):
        table = ds.dataset(folder / name).to_table()
        rows = sorted(map(str, table.to_pylist()))
        digests[name] = hashlib.sha256("\n".join(rows).encode()).hexdigest()
    digests["spec"] = hashlib.sha256((folder / "feature_spec.json").read_bytes()).hexdigest()
    return digests
