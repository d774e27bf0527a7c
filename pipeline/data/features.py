"""Fit a FeatureSpec on the train split in one aggregation pass and apply it in Spark (driver + executors).

The pandas twin of `transform` is pipeline/model/spec.py (what the registered model runs); a test pins them.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace

from pipeline.config.feature_sections import FeaturesConfig
from pipeline.data.image_features import fit_image_specs, pixels_column
from pipeline.data.split import HOLDOUT, ROW_HASH, SPLIT
from pipeline.data.text_fitting import encode_column, fit_text_vocab
from pipeline.errors import DataError
from pipeline.model.spec import (
    NULL_INDEX,
    OOV_INDEX,
    PERIODS,
    CategoricalVocab,
    FeatureSpec,
    LabelSpec,
    NumericStats,
    TimestampParts,
)
from pipeline.model.tensor_specs import ArraySpec

log = logging.getLogger(__name__)


def _signed_log1p(x):
    from pyspark.sql import functions as F

    return F.signum(x) * F.log1p(F.abs(x))


def _shaped(x, feature):
    """clip then signed log1p: the monotone part of the numeric transform (see model/spec.py standardize)."""
    from pyspark.sql import functions as F

    if feature.clip is not None:
        x = F.least(F.greatest(x, F.lit(float(feature.clip[0]))), F.lit(float(feature.clip[1])))
    if feature.log1p:
        x = _signed_log1p(x)
    return x


def _finite(column):
    from pyspark.sql import functions as F

    x = F.col(column).cast("double")
    return F.when(~F.isnan(x) & ~x.isin(float("inf"), float("-inf")), x)


def fit_spec(df, features: FeaturesConfig, key_columns: list[str]) -> tuple[FeatureSpec, dict]:
    """Fit medians, moments and vocabularies on rows with `_split == 'train'`.

    One aggregation job computes every numeric statistic (plus split counts and the null rate of every
    column for the quality report); a second groups all categorical columns at once (top-K needs counts).

    Returns:
        (spec, report) where report holds split counts and per-column null rates over all clean rows.
    """
    from pyspark.sql import functions as F

    needed = [n.name for n in features.numeric] + [c.name for c in features.categorical]
    needed += [t.name for t in features.timestamps] + [i.name for i in features.images]
    needed += [t.name for t in features.texts] + [a.name for a in features.arrays]
    needed += [features.label.column] if features.label else []
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise DataError(
            f"features name column(s) {missing} that the clean table lacks ({df.columns}). "
            "Fix: select them in data.query or remove them from features"
        )
    is_train = F.col(SPLIT) == "train"
    aggs = [F.count(F.when(F.col(SPLIT) == s, 1)).alias(f"rows__{s}") for s in ("train", "val", "test", HOLDOUT)]
    data_columns = [c for c in df.columns if c not in (SPLIT, ROW_HASH)]
    aggs += [F.avg(F.col(c).isNull().cast("double")).alias(f"null__{c}") for c in data_columns]
    for feature in features.numeric:
        x = F.when(is_train, _finite(feature.name))
        shaped = _shaped(x, feature)
        aggs += [
            F.percentile_approx(x, 0.5, 10_000).alias(f"median__{feature.name}"),
            F.count(x).alias(f"n__{feature.name}"),
            F.avg(shaped).alias(f"mean__{feature.name}"),
            F.var_pop(shaped).alias(f"var__{feature.name}"),
        ]
    if features.label and features.label.task != "multiclass":
        y = F.when(is_train, label_value(features.label.column, features.label.positive))
        aggs.append(F.avg(y).alias("label_mean"))
        if features.label.task == "regression":
            shaped = F.log1p(y) if features.label.transform == "log_standardize" else y
            aggs += [F.min(y).alias("label_min"), F.avg(shaped).alias("label_shaped_mean")]
            aggs.append(F.var_pop(shaped).alias("label_shaped_var"))
    row = df.agg(*aggs).first().asDict()
    n_train = row["rows__train"]
    if n_train == 0:
        raise DataError("the train split is empty. Fix: check split.train dates / split fractions against the data")

    numeric = []
    for feature in features.numeric:
        numeric.append(_numeric_stats(feature, row, n_train))
    categorical = _fit_vocabularies(df.where(is_train), features)
    label = None
    if features.label:
        classes: tuple[str, ...] = ()
        if features.label.task == "multiclass":
            classes = _fit_classes(df.where(is_train), features.label.column)
        label = LabelSpec(features.label.column, features.label.task, classes, features.label.positive)
        if features.label.task == "regression":
            label = _regression_scaling(label, features.label.transform, row)
    input_schema = {c: t for c, t in df.dtypes if c in set(needed)}
    spec = FeatureSpec(
        input_schema=input_schema,
        numeric=tuple(numeric),
        categorical=tuple(categorical),
        timestamps=tuple(TimestampParts(t.name, tuple(t.parts)) for t in features.timestamps),
        label=label,
        key_columns=tuple(key_columns),
        images=tuple(fit_image_specs(df.where(is_train), features.images)),
        texts=tuple(
            fit_text_vocab(df.where(is_train), t.name, t.level, t.lowercase, t.top_k, t.max_len) for t in features.texts
        ),
        arrays=tuple(ArraySpec(a.name, a.length) for a in features.arrays),
    ).with_hash()
    report = {
        "split_rows": {s: row[f"rows__{s}"] for s in ("train", "val", "test", HOLDOUT)},
        "null_rate": {c: round(row[f"null__{c}"] or 0.0, 6) for c in data_columns},
        "train_label_mean": row.get("label_mean"),
    }
    return spec, report


def label_value(column: str, positive: str | None):
    """The label as a double: 1.0 / 0.0 against `positive` for a text binary label, else the cast value."""
    from pyspark.sql import functions as F

    if positive is None:
        return F.col(column).cast("double")
    return F.when(F.col(column).isNotNull(), (F.col(column).cast("string") == F.lit(positive)).cast("double"))


def _regression_scaling(label: LabelSpec, transform: str, row: dict) -> LabelSpec:
    """mean/std of the (optionally log1p-shaped) train target, so the network learns a unit-scale target."""
    if transform == "none":
        return label
    if transform == "log_standardize" and row["label_min"] is not None and row["label_min"] <= -1:
        raise DataError(
            f"features.label.transform=log_standardize needs a label above -1, but {label.column!r} has "
            f"{row['label_min']} in the train split. Fix: use transform: standardize"
        )
    std = math.sqrt(row["label_shaped_var"] or 0.0)
    return replace(
        label,
        mean=float(row["label_shaped_mean"] or 0.0),
        std=float(std) if std > 1e-12 else 1.0,
        log1p=transform == "log_standardize",
    )


def _numeric_stats(feature, row: dict, n_train: int) -> NumericStats:
    """Combine moments of the non-missing values with the imputed median, without a second pass."""
    name = feature.name
    median, n_present = row[f"median__{name}"], row[f"n__{name}"]
    if n_present == 0 or median is None:
        raise DataError(
            f"numeric feature {name!r} is null in every training row. "
            "Fix: remove it from features.numeric or fix the source data"
        )
    mean_present, var_present = row[f"mean__{name}"], row[f"var__{name}"] or 0.0
    shaped_median = _shaped_scalar(float(median), feature)
    n_missing = n_train - n_present
    mean = (n_present * mean_present + n_missing * shaped_median) / n_train
    var = (n_present * (var_present + (mean_present - mean) ** 2) + n_missing * (shaped_median - mean) ** 2) / n_train
    std = math.sqrt(var) if var > 1e-12 else 1.0  # a constant column stays 0 rather than dividing by 0
    return NumericStats(
        name=name,
        median=float(median),
        mean=float(mean),
        std=float(std),
        log1p=feature.log1p,
        clip=tuple(feature.clip) if feature.clip else None,
        missing_indicator=feature.missing_indicator,
    )


def _shaped_scalar(value: float, feature) -> float:
    if feature.clip is not None:
        value = min(max(value, feature.clip[0]), feature.clip[1])
    if feature.log1p:
        value = math.copysign(math.log1p(abs(value)), value)
    return value


def _fit_vocabularies(train, features: FeaturesConfig) -> list[CategoricalVocab]:
    """Top-K per column by count (ties by value) from one groupBy over all categorical columns."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if not features.categorical:
        return []
    pairs = F.explode(
        F.array(
            *[
                F.struct(F.lit(c.name).alias("column"), F.col(c.name).cast("string").alias("value"))
                for c in features.categorical
            ]
        )
    )
    counts = train.select(pairs.alias("p")).select("p.column", "p.value").where(F.col("value").isNotNull())
    counts = counts.groupBy("column", "value").count()
    rank = F.row_number().over(Window.partitionBy("column").orderBy(F.desc("count"), F.asc("value")))
    top_k = {c.name: c.top_k for c in features.categorical}
    limit = F.create_map(*[x for name, k in top_k.items() for x in (F.lit(name), F.lit(k))])
    ranked = counts.withColumn("rank", rank).where(F.col("rank") <= limit[F.col("column")]).collect()
    vocab: dict[str, list[tuple[int, str]]] = {name: [] for name in top_k}
    for r in ranked:
        vocab[r["column"]].append((r["rank"], r["value"]))
    return [CategoricalVocab(name, tuple(v for _, v in sorted(vocab[name]))) for name in top_k]


def _fit_classes(train, column: str) -> tuple[str, ...]:
    from pyspark.sql import functions as F

    rows = train.select(F.col(column).cast("string").alias("c")).where("c IS NOT NULL").distinct().collect()
    return tuple(sorted(r["c"] for r in rows))


def transform(df, spec: FeatureSpec, keep: tuple[str, ...] = ()):
    """Spark version of FeatureSpec.transform_pandas (same float64 arithmetic, then float32).

    Args:
        keep: columns of `df` passed through unchanged ahead of the features (e.g. the split).
    """
    from pyspark.sql import functions as F

    out = [F.col(c) for c in keep]
    for stats in spec.numeric:
        x = _finite(stats.name)
        filled = F.coalesce(x, F.lit(stats.median))
        standardized = (_shaped(filled, stats) - F.lit(stats.mean)) / F.lit(stats.std)
        out.append(standardized.cast("float").alias(f"num__{stats.name}"))
        if stats.missing_indicator:
            out.append(x.isNull().cast("float").alias(f"miss__{stats.name}"))
    for ts in spec.timestamps:
        column = F.col(ts.name).cast("timestamp")
        for part in ts.parts:
            value = {
                "hour": F.hour(column) + F.minute(column) / 60.0,
                "dow": F.pmod(F.dayofweek(column) + 5, F.lit(7)),  # Spark: 1=Sunday; spec: 0=Monday
                "month": F.month(column) - 1,
            }[part].cast("double")
            angle = value * (2 * math.pi / PERIODS[part])
            out.append(F.coalesce(F.sin(angle), F.lit(0.0)).cast("float").alias(f"ts__{ts.name}__{part}_sin"))
            out.append(F.coalesce(F.cos(angle), F.lit(0.0)).cast("float").alias(f"ts__{ts.name}__{part}_cos"))
    for cat in spec.categorical:
        out.append(_index_column(F.col(cat.name).cast("string"), cat.vocab).alias(f"cat__{cat.name}"))
    out += [pixels_column(image) for image in spec.images]
    out += [encode_column(text.name, text).alias(text.column) for text in spec.texts]
    out += [F.col(array.name).cast("array<float>").alias(array.column) for array in spec.arrays]
    if spec.label is not None:
        out.append(_label_column(spec.label))
    return df.select(*out)


def _index_column(text, vocab: tuple[str, ...]):
    from pyspark.sql import functions as F

    mapping = F.create_map(*[x for i, v in enumerate(vocab) for x in (F.lit(v), F.lit(i + 2))])
    looked_up = mapping[text] if vocab else F.lit(None)
    return F.when(text.isNull(), F.lit(NULL_INDEX)).otherwise(F.coalesce(looked_up, F.lit(OOV_INDEX))).cast("int")


def _label_column(label: LabelSpec):
    from pyspark.sql import functions as F

    column = F.col(label.column)
    if label.task == "multiclass":
        return (_index_column(column.cast("string"), label.classes) - 2).alias("label")
    value = label_value(label.column, label.positive)
    if label.task == "regression":
        shaped = F.log1p(value) if label.log1p else value
        value = (shaped - F.lit(label.mean)) / F.lit(label.std)
    return value.cast("float").alias("label")
