"""Order-independent train statistics: exact medians, exactly summed moments, vocabularies (driver + executors).

Why: Spark merges partial aggregates in the order tasks finish, and sums rows in the order they sit in their
partition. A double `avg` / `var_pop`, and percentile_approx's sketch (its merges compress differently), therefore
change in their last bits between two runs on the same input on a cluster. Here:

* moments are sums of DECIMAL values. Each value is rounded to a decimal once, on its own (same value, same
  decimal), and Spark adds decimals exactly, so the totals do not depend on the order of the additions;
* the median is the exact k-th smallest value; the sketch only brackets it, so its order-dependent answer never
  reaches the spec;
* vocabularies count (integers: exact) and break ties in counts by value.

Values are centred on the middle of their (exact) min..max range and multiplied by a power of two (exact) that
brings half the range under 1, so every summed u lies in [-1, 1] (u^2 in [0, 1]) whatever the feature's scale.
Rounding u to 20 decimals then costs at most 5e-21 of the range per value: a relative error of the variance under
about 1e-20 * n (the range is at most 2 std sqrt(n)), 1e-11 at a billion rows; today's doubles give ~1e-16.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass, replace
from fractions import Fraction

from pipeline.config.feature_sections import CategoricalFeature
from pipeline.errors import DataError
from pipeline.model.spec import CategoricalVocab

log = logging.getLogger(__name__)

ACCURACY = 10_000  # percentile_approx: the returned value's rank is within n / ACCURACY of the asked rank
BRACKET = 3 / ACCURACY  # quantiles 0.5 -/+ BRACKET enclose the median's rank, with 2 n / ACCURACY to spare
# 18 integer digits: sums of up to 10^17 values of |u| <= 2 fit. Past that Spark fails the job (ANSI mode, the
# default) or returns null (ANSI off), which `_moments_of` reports; it never returns a wrong total.
EXACT = "decimal(38,20)"
TARGETS_PER_BRANCH = 6  # struct entries per exploded array in the exact pass (see _exact_pass)


@dataclass(frozen=True)
class Target:
    """A column whose train moments (and, if `median`, exact median) are fitted.

    `raw` is the value (null where missing or not used: non-train rows, NaN, +-inf); `shaped` is what is averaged.
    """

    key: str
    raw: object
    shaped: object
    median: bool = False


@dataclass(frozen=True)
class Moments:
    """Exact sums around `center`: dev = sum(v - center), sq = sum((v - center)^2) over `count` values."""

    count: int
    center: Fraction
    dev: Fraction
    sq: Fraction
    median: float | None = None

    def plus(self, value: float, times: int) -> Moments:
        """The same moments with `times` more copies of `value` (imputed missing values), still exact."""
        d = Fraction(value) - self.center
        return replace(self, count=self.count + times, dev=self.dev + times * d, sq=self.sq + times * d * d)

    @property
    def mean(self) -> float:
        return float(self.center + self.dev / self.count)

    @property
    def var(self) -> float:
        """Population variance, rounded to a double once (from exact sums of per-value-rounded squares)."""
        offset = self.dev / self.count
        return float(max(self.sq / self.count - offset * offset, Fraction(0)))


@dataclass(frozen=True)
class _Frame:
    center: float
    inverse_scale: float  # a power of two: multiplying by it is exact
    low: float | None = None  # bracket of the median, None: every value is a candidate
    high: float | None = None


def first_pass_aggs(targets: list[Target]) -> list:
    """Aggregations for the first (all-rows) job: count, min and max of each target, the median's bracket.

    count, min and max are exact whatever the order; the bracket is not, but only narrows the exact pass.
    """
    from pyspark.sql import functions as F

    aggs = []
    for t in targets:
        aggs += [F.count(t.raw).alias(f"n__{t.key}"), F.min(t.shaped).alias(f"min__{t.key}")]
        aggs.append(F.max(t.shaped).alias(f"max__{t.key}"))
        if t.median:
            quantiles = F.array(F.lit(0.5 - BRACKET), F.lit(0.5 + BRACKET))
            aggs.append(F.percentile_approx(t.raw, quantiles, ACCURACY).alias(f"bracket__{t.key}"))
    return aggs


def fit_moments(train, targets: list[Target], first: dict) -> dict[str, Moments]:
    """Driver: one exact job over the train rows for every target with values (keyed by Target.key).

    A median outside its bracket (the sketch broke its error bound) is found again over all values of that column.
    """
    frames = {t.key: _frame(t, first) for t in targets if first[f"n__{t.key}"]}
    present = [t for t in targets if t.key in frames]
    if not present:
        return {}
    found = _exact_pass(train, present, frames)
    missed = [t for t in present if t.median and found[t.key].median is None]
    if missed:
        log.warning(
            "median outside percentile_approx's bracket for %s: exact pass over all values", [t.key for t in missed]
        )
        found.update(_exact_pass(train, missed, {t.key: replace(frames[t.key], low=None, high=None) for t in missed}))
    return found


def _frame(target: Target, first: dict) -> _Frame:
    low, high = first[f"min__{target.key}"], first[f"max__{target.key}"]
    center, half = low / 2 + high / 2, high / 2 - low / 2  # halves first: no overflow near the double range
    exponent = math.frexp(half)[1] if half > 0 else 0  # 2**exponent > half
    inverse_scale = math.ldexp(1.0, -min(max(exponent, -1000), 1023))
    bracket = first.get(f"bracket__{target.key}") or (None, None)
    return _Frame(center, inverse_scale, *bracket)


def _exact_pass(train, targets: list[Target], frames: dict[str, _Frame]) -> dict[str, Moments]:
    """Executors sum per (target, side of the bracket, value inside it); a window per target finds the group
    holding rank k = ceil(n / 2) (percentile_approx's definition of the median) and the totals."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    # A few targets per branch: one array of 30 decimal structs generates a Java method over the JVM's 64 KB limit
    # (Spark then logs a compile error and falls back to slower interpreted code). The branches are one job.
    branches = [
        train.select(F.explode(F.array(*[_entry(t, frames[t.key]) for t in chunk])).alias("e"))
        for chunk in (targets[i : i + TARGETS_PER_BRANCH] for i in range(0, len(targets), TARGETS_PER_BRANCH))
    ]
    exploded = functools.reduce(lambda a, b: a.unionByName(b), branches)
    values = exploded.where(F.col("e").isNotNull()).select("e.*")
    groups = values.groupBy("key", "side", "value").agg(
        F.count(F.lit(1)).alias("n"), F.sum("u").alias("u"), F.sum("u2").alias("u2")
    )
    whole = Window.partitionBy("key")
    upto = whole.orderBy("side", "value").rowsBetween(Window.unboundedPreceding, Window.currentRow)
    ranked = groups.select(
        "key",
        "side",
        "value",
        "n",
        F.sum("n").over(upto).alias("upto"),
        F.sum("n").over(whole).alias("total"),
        F.sum("u").over(whole).alias("s1"),
        F.sum("u2").over(whole).alias("s2"),
    ).withColumn("k", F.expr("(total + 1) div 2"))
    picked = ranked.where((F.col("upto") - F.col("n") < F.col("k")) & (F.col("k") <= F.col("upto"))).collect()
    by_key = {t.key: t for t in targets}
    return {r["key"]: _moments_of(r, by_key[r["key"]], frames[r["key"]]) for r in picked}


def _entry(target: Target, frame: _Frame):
    """One struct per present value: which side of the bracket, the value if inside, and u, u^2 as decimals."""
    from pyspark.sql import functions as F

    u = (target.shaped - F.lit(frame.center)) * F.lit(frame.inverse_scale)
    if not target.median:
        side, value = F.lit(0), F.lit(None).cast("double")
    elif frame.low is None:
        side, value = F.lit(0), target.raw
    else:
        side = F.when(target.raw < F.lit(frame.low), -1).when(target.raw > F.lit(frame.high), 1).otherwise(0)
        value = F.when(side == 0, target.raw)
    fields = [F.lit(target.key).alias("key"), side.alias("side"), value.cast("double").alias("value")]
    fields += [u.cast(EXACT).alias("u"), (u * u).cast(EXACT).alias("u2")]
    return F.when(target.raw.isNotNull(), F.struct(*fields))


def _moments_of(row, target: Target, frame: _Frame) -> Moments:
    if row["s1"] is None or row["s2"] is None:
        raise DataError(
            f"the exact sums of {target.key!r} overflowed decimal(38,20) (over 10^17 train rows). "
            "Fix: sample the training data"
        )
    scale = 1 / Fraction(frame.inverse_scale)
    median = row["value"] if target.median and row["side"] == 0 else None
    return Moments(
        count=row["total"],
        center=Fraction(frame.center),
        dev=Fraction(row["s1"]) * scale,
        sq=Fraction(row["s2"]) * scale * scale,
        median=median,
    )


def fit_vocabularies(train, categorical: list[CategoricalFeature]) -> list[CategoricalVocab]:
    """Top-K per column by count, ties by value (so the cut never depends on order), from one groupBy."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if not categorical:
        return []
    pairs = F.explode(
        F.array(
            *[F.struct(F.lit(c.name).alias("column"), F.col(c.name).cast("string").alias("value")) for c in categorical]
        )
    )
    counts = train.select(pairs.alias("p")).select("p.column", "p.value").where(F.col("value").isNotNull())
    counts = counts.groupBy("column", "value").count()
    rank = F.row_number().over(Window.partitionBy("column").orderBy(F.desc("count"), F.asc("value")))
    top_k = {c.name: c.top_k for c in categorical}
    limit = F.create_map(*[x for name, k in top_k.items() for x in (F.lit(name), F.lit(k))])
    ranked = counts.withColumn("rank", rank).where(F.col("rank") <= limit[F.col("column")]).collect()
    vocab: dict[str, list[tuple[int, str]]] = {name: [] for name in top_k}
    for r in ranked:
        vocab[r["column"]].append((r["rank"], r["value"]))
    return [CategoricalVocab(name, tuple(v for _, v in sorted(vocab[name]))) for name in top_k]


def fit_classes(train, column: str) -> tuple[str, ...]:
    """The multiclass label's classes, sorted: their indices do not depend on the order rows arrive in."""
    from pyspark.sql import functions as F

    rows = train.select(F.col(column).cast("string").alias("c")).where("c IS NOT NULL").distinct().collect()
    return tuple(sorted(r["c"] for r in rows))
