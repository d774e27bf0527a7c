"""Bucket counts of the model's inputs in one Spark pass: the reference profile (train rows, at prepare) and the
profile of a score batch (at score) are the same function of the same feature spec, so they compare bucket for
bucket (pipeline/monitoring/drift.py compares them). Also the clean table's columns, for schema changes.

Numeric features are bucketed by the value the model sees (median-imputed, shaped, standardized) at fixed
z-score edges, plus a bucket for missing values: the edges come from the spec's exact mean and std, so the profile
is as order-independent as the spec (quantile edges from percentile_approx would not be). Categorical features
are bucketed by the model's own index (null, out of vocabulary, each vocabulary value). Images, texts, arrays and
timestamps are not profiled yet.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field

from pipeline.model.spec import FeatureSpec

PROFILE_VERSION = 1
Z_EDGES = (-2.0, -1.5, -1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0, 1.5, 2.0)
FEATURES_PER_BRANCH = 6
MISSING = -1  # numeric bucket of a null / NaN / infinite value (categorical nulls are index 0, the model's own)


@dataclass(frozen=True)
class FeatureCounts:
    """Rows per bucket of one feature; `kind` is numeric (z buckets 0..len(Z_EDGES), MISSING) or categorical
    (0 null, 1 out of vocabulary, 2.. the vocabulary in the spec's order)."""

    name: str
    kind: str
    counts: dict[int, int]

    @property
    def rows(self) -> int:
        return sum(self.counts.values())

    def share(self, bucket: int) -> float:
        return self.counts.get(bucket, 0) / self.rows if self.rows else 0.0


@dataclass(frozen=True)
class Profile:
    rows: int
    features: dict[str, FeatureCounts] = field(default_factory=dict)
    columns: tuple[str, ...] = ()  # the profiled table's columns, internal ones (a leading '_') left out
    z_edges: tuple[float, ...] = Z_EDGES
    version: int = PROFILE_VERSION

    def to_json(self) -> str:
        features = {
            name: {"kind": f.kind, "counts": {str(k): v for k, v in sorted(f.counts.items())}}
            for name, f in self.features.items()
        }
        payload = {"version": self.version, "rows": self.rows, "columns": list(self.columns)}
        payload |= {"z_edges": list(self.z_edges), "features": features}
        return json.dumps(payload, indent=2)

    @staticmethod
    def from_json(text: str) -> Profile:
        raw = json.loads(text)
        features = {
            name: FeatureCounts(name, f["kind"], {int(k): int(v) for k, v in f["counts"].items()})
            for name, f in raw["features"].items()
        }
        return Profile(int(raw["rows"]), features, tuple(raw["columns"]), tuple(raw["z_edges"]), int(raw["version"]))


def profile_rows(df, spec: FeatureSpec) -> Profile:
    """Count every profiled feature's buckets over `df`'s rows (clean rows with the spec's input columns).

    One job: each row becomes (feature, bucket) pairs, grouped and counted on the executors; the driver collects
    one row per non-empty bucket.
    """
    from pyspark.sql import functions as F

    from pipeline.data.features import category_index, standardized_column

    pairs = []
    for stats in spec.numeric:
        raw, z = standardized_column(stats)
        bucket = sum((z >= F.lit(edge)).cast("int") for edge in Z_EDGES)
        pairs.append(_pair(stats.name, F.when(raw.isNull(), F.lit(MISSING)).otherwise(bucket)))
    for cat in spec.categorical:
        pairs.append(_pair(cat.name, category_index(F.col(cat.name).cast("string"), cat.vocab)))
    kinds = {s.name: "numeric" for s in spec.numeric} | {c.name: "categorical" for c in spec.categorical}
    columns = tuple(c for c in df.columns if not c.startswith("_"))
    if not pairs:
        return Profile(df.count(), columns=columns)
    # A few features per branch, the branches one job: one array of 26 structs generates a Java method over the
    # JVM's 64 KB limit (Spark logs the compile error with its stack and falls back to interpreted code).
    branches = [
        df.select(F.explode(F.array(*pairs[i : i + FEATURES_PER_BRANCH])).alias("p"))
        for i in range(0, len(pairs), FEATURES_PER_BRANCH)
    ]
    exploded = functools.reduce(lambda a, b: a.unionByName(b), branches).select("p.feature", "p.bucket")
    counts: dict[str, dict[int, int]] = {name: {} for name in kinds}
    for row in exploded.groupBy("feature", "bucket").count().collect():
        counts[row["feature"]][int(row["bucket"])] = int(row["count"])
    rows = max((sum(c.values()) for c in counts.values()), default=0)
    return Profile(rows, {name: FeatureCounts(name, kinds[name], counts[name]) for name in kinds}, columns)


def _pair(name: str, bucket):
    from pyspark.sql import functions as F

    return F.struct(F.lit(name).alias("feature"), bucket.cast("int").alias("bucket"))
