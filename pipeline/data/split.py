"""Assign each clean row to train/val/test (or holdout) by a stable hash or by date ranges (Spark)."""

from __future__ import annotations

from pipeline.config.schema import SplitConfig
from pipeline.errors import DataError

SPLIT = "_split"  # column: train, val, test or holdout
ROW_HASH = "_row_hash"  # column: stable row order of the feature files
HOLDOUT = "holdout"


def assign_split(df, split: SplitConfig, location_columns: tuple[str, ...] = ()):
    """Add `_split` (train/val/test/holdout) and `_row_hash` (stable row order for output files).

    Args:
        location_columns: columns that say where a row was read from (an image source's `path`); left out of the
            row hash, so the features files, and the model trained on them, do not change when the data moves.
    """
    from pyspark.sql import functions as F

    if split.method == "hash":
        if split.key not in df.columns:
            raise DataError(f"split.key={split.key!r} is not a column of the clean table ({df.columns}). Fix: pick one")
        # xxhash64 is Spark's own, seeded, stable across runs and versions; 10,000 buckets.
        bucket = F.pmod(F.xxhash64(F.col(split.key).cast("string"), F.lit(split.seed)), F.lit(10_000)) / 10_000.0
        label = (
            F.when(bucket < split.test_fraction, "test")
            .when(bucket < split.test_fraction + split.val_fraction, "val")
            .otherwise("train")
        )
    else:
        if split.column not in df.columns:
            raise DataError(
                f"split.column={split.column!r} is not a column of the clean table ({df.columns}). Fix: pick one"
            )
        day = F.to_date(F.col(split.column))

        def within(bounds: tuple[str, str]):
            return (day >= F.to_date(F.lit(bounds[0]))) & (day < F.to_date(F.lit(bounds[1])))

        label = (
            F.when(within(split.train), "train")
            .when(within(split.val), "val")
            .when(within(split.test), "test")
            .otherwise(HOLDOUT)
        )
    hashed = [F.col(c) for c in df.columns if c not in location_columns]
    return df.withColumn(SPLIT, label).withColumn(ROW_HASH, F.xxhash64(*hashed))
