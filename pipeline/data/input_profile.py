"""Bucket counts of the model's inputs in one Spark pass: the reference profile (train rows, at prepare) and the
profile of a score batch (at score) are the same function of the same feature spec, so they compare bucket for
bucket (pipeline/monitoring/drift.py compares them). Also the clean table's columns, for schema changes.

Numeric features are bucketed by the value the model sees (median-imputed, shaped, standardized) at fixed
z-score edges, plus a bucket for missing values: the edges come from the spec's exact mean and std, so the profile
is as order-independent as the spec (quantile edges from percentile_approx would not be). Categorical features
are bucketed by the model's own index (null, out of vocabulary, each vocabulary value). Images and texts are
profiled by what pipeline/data/content_profile.py measures of them (size, mode, brightness; tokens, OOV share),
as numeric features with fixed edges. Arrays and timestamps are not profiled yet.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field

from pipeline.data.content_profile import MISSING, derived_buckets
from pipeline.model.spec import FeatureSpec

PROFILE_VERSION = 1
Z_EDGES = (-2.0, -1.5, -1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0, 1.5, 2.0)
FEATURES_PER_BRANCH = 6
SAMPLE_SEED = 7


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
    rows: int  # rows of the profiled frame (the counts may come from a sample of them: profile_rows)
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


def profile_rows(df, spec: FeatureSpec, max_rows: int | None = None) -> Profile:
    """Count every profiled feature's buckets over `df`'s rows (clean rows with the spec's input columns).

    Above `max_rows` rows a seeded Bernoulli sample of about that many is profiled (PSI over a dozen buckets
    needs far fewer rows than a large batch has; the profile costs a pass of its own). One job: each row becomes
    (feature, bucket, value) entries counted on the executors; categorical values are mapped to the model's
    indices on the driver (a Spark map of a 1,000-value vocabulary is a linear search per row).
    """
    columns = tuple(c for c in df.columns if not c.startswith("_"))
    return profile_groups(df, spec, None, max_rows).get(None, Profile(0, columns=columns))


def profile_groups(df, spec: FeatureSpec, by: str | None, max_rows: int | None = None) -> dict:
    """profile_rows for each value of the column `by` (a backfill's dates) in the same two jobs as one profile:
    {value: Profile}; `by=None` profiles the whole frame (key None). `max_rows` bounds the largest group's sample."""
    from pyspark.sql import functions as F

    from pipeline.data.features import standardized_column

    columns = tuple(c for c in df.columns if not c.startswith("_"))
    group = (F.col(by) if by else F.lit(None)).alias("_g")
    totals = {row["_g"]: row["count"] for row in df.groupBy(group).count().collect()}
    largest = max(totals.values(), default=0)
    if max_rows is not None and largest > max_rows:
        df = df.sample(fraction=max_rows / largest, seed=SAMPLE_SEED)
    derived = derived_buckets(spec)
    if not spec.numeric and not spec.categorical and not derived:
        return {key: Profile(total, columns=columns) for key, total in totals.items()}
    # The model's view of each numeric value first, as its own column (null: missing): the bucket compares it with
    # every edge, and a column reference is cheap to repeat where the whole expression is not (inlined 11 times per
    # feature, the profile took 14x the scoring pass on 1M rows).
    views = [standardized_column(stats) for stats in spec.numeric]
    values = df.select(
        group,
        *[F.when(raw.isNotNull(), z).alias(f"_z{i}") for i, (raw, z) in enumerate(views)],
        *[F.col(cat.name).cast("string").alias(f"_c{i}") for i, cat in enumerate(spec.categorical)],
        *[column.alias(f"_d{i}") for i, (_, column) in enumerate(derived)],
    )
    entries = [_entry(stats.name, _bucket(F.col(f"_z{i}")), F.lit(None)) for i, stats in enumerate(spec.numeric)]
    entries += [_entry(cat.name, F.lit(None), F.col(f"_c{i}")) for i, cat in enumerate(spec.categorical)]
    entries += [_entry(name, F.col(f"_d{i}"), F.lit(None)) for i, (name, _) in enumerate(derived)]
    # A few features per branch, the branches one job: one array of 26 structs generates a Java method over the
    # JVM's 64 KB limit (Spark logs the compile error with its stack and falls back to interpreted code).
    branches = [
        values.select("_g", F.explode(F.array(*entries[i : i + FEATURES_PER_BRANCH])).alias("e"))
        for i in range(0, len(entries), FEATURES_PER_BRANCH)
    ]
    exploded = functools.reduce(lambda a, b: a.unionByName(b), branches).select("_g", "e.*")
    by_group: dict = {key: [] for key in totals}
    for row in exploded.groupBy("_g", "feature", "bucket", "value").count().collect():
        by_group[row["_g"]].append(row)
    names = [name for name, _ in derived]
    return {key: _counted(by_group[key], spec, total, columns, names) for key, total in totals.items()}


def _bucket(z):
    """The z-score bucket: how many edges the value reaches (0 .. len(Z_EDGES)); MISSING for null."""
    from pyspark.sql import functions as F

    return F.when(z.isNull(), F.lit(MISSING)).otherwise(sum((z >= F.lit(edge)).cast("int") for edge in Z_EDGES))


def _entry(name: str, bucket, value):
    from pyspark.sql import functions as F

    return F.struct(
        F.lit(name).alias("feature"), bucket.cast("int").alias("bucket"), value.cast("string").alias("value")
    )


def _counted(grouped: list, spec: FeatureSpec, total: int, columns: tuple[str, ...], derived: list[str]) -> Profile:
    """Driver: numeric bucket counts as they are; categorical values take the model's index (0 null, 1 OOV, 2..);
    derived image/text measures count like numeric ones (their buckets come from the executors)."""
    index = {c.name: {v: i + 2 for i, v in enumerate(c.vocab)} for c in spec.categorical}
    kinds = {s.name: "numeric" for s in spec.numeric} | {c.name: "categorical" for c in spec.categorical}
    kinds |= dict.fromkeys(derived, "numeric")
    counts: dict[str, dict[int, int]] = {name: {} for name in kinds}
    for row in grouped:
        name = row["feature"]
        if kinds[name] == "numeric":
            bucket = int(row["bucket"])
        else:
            bucket = 0 if row["value"] is None else index[name].get(row["value"], 1)
        counts[name][bucket] = counts[name].get(bucket, 0) + int(row["count"])
    return Profile(total, {name: FeatureCounts(name, kinds[name], counts[name]) for name in kinds}, columns)
