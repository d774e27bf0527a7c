"""The hash split is a stable contract: the same key lands in the same split in every run and release."""

from __future__ import annotations

from pipeline.config.schema import SplitConfig
from pipeline.data.split import SPLIT, assign_split

# Pinned from Spark's seeded xxhash64 (seed 42, 10,000 buckets). If this changes, every model trained
# before the change would be evaluated on rows it was trained on: treat a failure here as a breaking change.
PINNED = {
    "k0": "train",
    "k1": "test",
    "k2": "train",
    "k3": "val",
    "k4": "train",
    "k5": "train",
    "k6": "train",
    "k7": "train",
    "k8": "val",
    "k9": "val",
    "k10": "train",
    "k11": "train",
}


def test_hash_split_is_pinned(spark):
    df = spark.createDataFrame([(k,) for k in PINNED], "key string")
    config = SplitConfig(method="hash", key="key", val_fraction=0.2, test_fraction=0.2)
    got = {r["key"]: r[SPLIT] for r in assign_split(df, config).collect()}
    assert got == PINNED


def test_time_split_ranges_are_half_open(spark):
    df = spark.createDataFrame([("2013-09-30",), ("2013-10-01",), ("2013-11-01",), ("2013-12-16",)], "d string")
    config = SplitConfig(
        method="time",
        column="d",
        train=("2013-01-01", "2013-10-01"),
        val=("2013-10-01", "2013-11-01"),
        test=("2013-11-01", "2013-12-16"),
    )
    got = [r[SPLIT] for r in assign_split(df, config).orderBy("d").collect()]
    assert got == ["train", "val", "test", "holdout"]
