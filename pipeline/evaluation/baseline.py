"""The constant predictor a model must beat to become @champion, scored on the test split (Spark, driver side).

The constant is fitted on the train split like the model: the class prior (binary, multiclass) or the label
mean (regression). It reads the features Parquet, whose `label` column is already encoded the way the ranks
saw it, so the baseline and the model are measured on exactly the same rows and units.
"""

from __future__ import annotations

import math

from pipeline.layout import Layout
from pipeline.model.spec import LabelSpec


def constant_baseline(spark, layout: Layout, label: LabelSpec, metric: str) -> float | None:
    """The test `metric` (test_auc, test_loss, ...) of the best constant prediction; None when not defined."""
    from pyspark.sql import functions as F

    name = metric.removeprefix("test_")
    if label.task == "binary" and name == "auc":
        return 0.5  # every row gets the same score
    train = spark.read.parquet(layout.prepared.features("train")).select("label")
    test = spark.read.parquet(layout.prepared.features("test")).select("label")
    y = F.col("label")
    if label.task == "binary":
        prior = train.agg(F.avg(y)).first()[0]
        p = min(max(prior, 1e-7), 1 - 1e-7)
        if name == "accuracy":
            return test.agg(F.avg((y == F.lit(1.0 if prior >= 0.5 else 0.0)).cast("double"))).first()[0]
        if name == "loss":
            return test.agg(F.avg(-(y * math.log(p) + (1 - y) * math.log(1 - p)))).first()[0]
        return None
    if label.task == "multiclass":
        counts = {r["label"]: r["count"] for r in train.where(y >= 0).groupBy("label").count().collect()}
        total = sum(counts.values())
        known = test.where(y >= 0)  # test classes unseen in train count for neither model nor baseline
        if name == "accuracy":
            majority = max(counts, key=lambda k: (counts[k], -k))
            return known.agg(F.avg((y == F.lit(majority)).cast("double"))).first()[0]
        if name == "loss":
            log_prior = F.create_map(*[x for k, c in counts.items() for x in (F.lit(k), F.lit(math.log(c / total)))])
            return known.agg(F.avg(-F.coalesce(log_prior[y], F.lit(math.log(1e-7))))).first()[0]
        return None
    scaled_mean = train.agg(F.avg(y)).first()[0]  # the constant, on the network's (scaled) target
    if name == "loss":
        return test.agg(F.avg((y - F.lit(scaled_mean)) ** 2)).first()[0]
    original = _to_original(y, label)
    constant = _to_original(F.lit(scaled_mean), label)
    if name == "rmse":
        return math.sqrt(test.agg(F.avg((original - constant) ** 2)).first()[0])
    if name == "mae":
        return test.agg(F.avg(F.abs(original - constant))).first()[0]
    return None


def _to_original(column, label: LabelSpec):
    """Spark version of LabelSpec.to_original."""
    from pyspark.sql import functions as F

    x = column * F.lit(label.std) + F.lit(label.mean)
    return F.expm1(x) if label.log1p else x
