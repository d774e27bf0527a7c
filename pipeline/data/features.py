"""Fit a FeatureSpec on the train split and apply it in Spark (driver + executors).

The pandas twin of `transform` is pipeline/model/spec.py (what the registered model runs); a test pins them.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace

from pipeline.config.feature_sections import FeaturesConfig
from pipeline.data.exact_stats import Moments, Target, first_pass_aggs, fit_classes, fit_moments, fit_vocabularies
from pipeline.data.image_features import fit_image_specs, pixels_column
from pipeline.data.split import HOLDOUT, ROW_HASH, SPLIT
from pipeline.data.text_fitting import encode_column, fit_text_vocab
from pipeline.errors import DataError
from pipeline.model.spec import (
    NULL_INDEX,
    OOV_INDEX,
    PERIODS,
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

    return _finite_value(F.col(column))


def _finite_value(value):
    """The value as a double, null where it is NaN or +-inf (the model imputes those like nulls)."""
    from pyspark.sql import functions as F

    x = value.cast("double")
    return F.when(~F.isnan(x) & ~x.isin(float("inf"), float("-inf")), x)


def fit_spec(
    df, features: FeaturesConfig, key_columns: list[str], label_classes: tuple[str, ...] = ()
) -> tuple[FeatureSpec, dict]:
    """Fit medians, moments and vocabularies on rows with `_split == 'train'` (driver; jobs on the executors).

    Every fitted number is order-independent (exact sums, exact medians, ties broken by value), so the same input
    gives a byte-identical spec however Spark partitions the rows and whichever task finishes first.
    Phases: one all-rows aggregation (split counts, null rates, counts/min/max and median brackets), one exact
    pass for medians and moments (pipeline/data/exact_stats.py), then vocabularies, label classes, images, texts.

    Args:
        label_classes: the label's classes resolved before cleaning (pipeline/data/label_domain.py); empty: a
            multiclass label's classes are fitted on train.

    Returns:
        (spec, report) where report holds split counts and per-column null rates over all clean rows.
    """
    from pyspark.sql import functions as F

    needed = _required_columns(df, features)
    is_train = F.col(SPLIT) == "train"
    targets = _targets(features, is_train)
    data_columns = [c for c in df.columns if c not in (SPLIT, ROW_HASH)]
    row = df.agg(*_first_pass_aggs(features, data_columns, targets, is_train)).first().asDict()
    n_train = row["rows__train"]
    if n_train == 0:
        raise DataError("the train split is empty. Fix: check split.train dates / split fractions against the data")
    _check_present(features, row)
    train = df.where(is_train)
    moments = fit_moments(train, targets, row)
    spec = FeatureSpec(
        input_schema={c: t for c, t in df.dtypes if c in set(needed)},
        numeric=tuple(_numeric_stats(f, moments[f.name], n_train) for f in features.numeric),
        categorical=tuple(fit_vocabularies(train, features.categorical)),
        timestamps=tuple(TimestampParts(t.name, tuple(t.parts)) for t in features.timestamps),
        label=_fit_label(train, features, moments, label_classes),
        key_columns=tuple(key_columns),
        images=tuple(fit_image_specs(train, features.images)),
        texts=tuple(fit_text_vocab(train, t.name, t.level, t.lowercase, t.top_k, t.max_len) for t in features.texts),
        arrays=tuple(ArraySpec(a.name, a.length) for a in features.arrays),
    ).with_hash()
    label_moments = moments.get(LABEL_KEY)
    report = {
        "split_rows": {s: row[f"rows__{s}"] for s in ("train", "val", "test", HOLDOUT)},
        "null_rate": {c: round(row[f"null__{c}"] or 0.0, 6) for c in data_columns},
        "train_label_mean": label_moments.mean if label_moments else None,
    }
    return spec, report


def _required_columns(df, features: FeaturesConfig) -> list[str]:
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
    return needed


LABEL_KEY, SHAPED_LABEL_KEY = " label", " label shaped"  # Target keys; a leading space: never a column name


def _targets(features: FeaturesConfig, is_train) -> list[Target]:
    """What the exact pass sums: each numeric feature (shaped, with its median), the label and its shaped form."""
    from pyspark.sql import functions as F

    targets = []
    for feature in features.numeric:
        x = F.when(is_train, _finite(feature.name))
        targets.append(Target(feature.name, x, _shaped(x, feature), median=True))
    label = features.label
    if label and label.task != "multiclass":
        y = F.when(is_train, _finite_value(label_value(label.column, label.positive)))
        targets.append(Target(LABEL_KEY, y, y))
        if label.task == "regression" and label.transform == "log_standardize":
            targets.append(Target(SHAPED_LABEL_KEY, y, F.log1p(y)))
    return targets


def _first_pass_aggs(features: FeaturesConfig, data_columns: list[str], targets: list[Target], is_train) -> list:
    """Split counts, null rates (averages of 0/1: exact), the exact pass's ranges and brackets, the label's min."""
    from pyspark.sql import functions as F

    aggs = [F.count(F.when(F.col(SPLIT) == s, 1)).alias(f"rows__{s}") for s in ("train", "val", "test", HOLDOUT)]
    aggs += [F.avg(F.col(c).isNull().cast("double")).alias(f"null__{c}") for c in data_columns]
    aggs += first_pass_aggs(targets)
    if features.label and features.label.task == "regression":
        y = F.when(is_train, label_value(features.label.column, features.label.positive))
        aggs.append(F.min(y).alias("label_min"))
    return aggs


def _check_present(features: FeaturesConfig, row: dict) -> None:
    """Settings the train rows cannot serve, found before the exact pass runs."""
    for feature in features.numeric:
        if not row[f"n__{feature.name}"]:
            raise DataError(
                f"numeric feature {feature.name!r} is null in every training row. "
                "Fix: remove it from features.numeric or fix the source data"
            )
    label = features.label
    if label and label.transform == "log_standardize" and row.get("label_min") is not None and row["label_min"] <= -1:
        raise DataError(
            f"features.label.transform=log_standardize needs a label above -1, but {label.column!r} has "
            f"{row['label_min']} in the train split. Fix: use transform: standardize"
        )


def label_value(column: str, positive: str | None):
    """The label as a double: 1.0 / 0.0 against `positive` for a text binary label, else the cast value."""
    from pyspark.sql import functions as F

    if positive is None:
        return F.col(column).cast("double")
    return F.when(F.col(column).isNotNull(), (F.col(column).cast("string") == F.lit(positive)).cast("double"))


def _fit_label(
    train, features: FeaturesConfig, moments: dict[str, Moments], label_classes: tuple[str, ...]
) -> LabelSpec | None:
    if not features.label:
        return None
    config = features.label
    classes = label_classes or (fit_classes(train, config.column) if config.task == "multiclass" else ())
    label = LabelSpec(config.column, config.task, classes, config.positive)
    if config.task != "regression" or config.transform == "none":
        return label
    shaped = moments.get(SHAPED_LABEL_KEY if config.transform == "log_standardize" else LABEL_KEY)
    std = math.sqrt(shaped.var) if shaped else 0.0
    return replace(
        label,
        mean=shaped.mean if shaped else 0.0,
        std=std if std > 1e-12 else 1.0,  # the network learns a unit-scale target
        log1p=config.transform == "log_standardize",
    )


def _numeric_stats(feature, moments: Moments, n_train: int) -> NumericStats:
    """Moments of the present values plus the imputed (shaped) median for each missing one, summed exactly."""
    median = moments.median
    filled = moments.plus(_shaped_scalar(median, feature), n_train - moments.count)
    var = filled.var
    std = math.sqrt(var) if var > 1e-12 else 1.0  # a constant column stays 0 rather than dividing by 0
    return NumericStats(
        name=feature.name,
        median=float(median),
        mean=filled.mean,
        std=float(std),
        log1p=feature.log1p,
        clip=tuple(feature.clip) if feature.clip else None,
        # An indicator only where train had a value to impute: a column that is always 0 teaches the model nothing.
        missing_indicator=feature.missing_indicator and moments.count < n_train,
    )


def _shaped_scalar(value: float, feature) -> float:
    if feature.clip is not None:
        value = min(max(value, feature.clip[0]), feature.clip[1])
    if feature.log1p:
        value = math.copysign(math.log1p(abs(value)), value)
    return value


def transform(df, spec: FeatureSpec, keep: tuple[str, ...] = ()):
    """Spark version of FeatureSpec.transform_pandas (same float64 arithmetic, then float32).

    Args:
        keep: columns of `df` passed through unchanged ahead of the features (e.g. the split).
    """
    from pyspark.sql import functions as F

    out = [F.col(c) for c in keep]
    for stats in spec.numeric:
        x, standardized = standardized_column(stats)
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
        out.append(category_index(F.col(cat.name).cast("string"), cat.vocab).alias(f"cat__{cat.name}"))
    out += [pixels_column(image) for image in spec.images]
    out += [encode_column(text.name, text).alias(text.column) for text in spec.texts]
    out += [F.col(array.name).cast("array<float>").alias(array.column) for array in spec.arrays]
    if spec.label is not None:
        out.append(_label_column(spec.label))
    return df.select(*out)


def standardized_column(stats: NumericStats):
    """(the raw value, null where missing or not finite; the value the model sees: median-imputed, shaped,
    standardized) as Spark columns. Shared by the transform and the drift profile (pipeline/monitoring/)."""
    from pyspark.sql import functions as F

    x = _finite(stats.name)
    return x, (_shaped(F.coalesce(x, F.lit(stats.median)), stats) - F.lit(stats.mean)) / F.lit(stats.std)


def category_index(text, vocab: tuple[str, ...]):
    """A categorical value's index as the model sees it (0 null, 1 out of vocabulary, 2.. the vocabulary)."""
    from pyspark.sql import functions as F

    mapping = F.create_map(*[x for i, v in enumerate(vocab) for x in (F.lit(v), F.lit(i + 2))])
    looked_up = mapping[text] if vocab else F.lit(None)
    return F.when(text.isNull(), F.lit(NULL_INDEX)).otherwise(F.coalesce(looked_up, F.lit(OOV_INDEX))).cast("int")


def _label_column(label: LabelSpec):
    from pyspark.sql import functions as F

    column = F.col(label.column)
    if label.task == "multiclass":
        return (category_index(column.cast("string"), label.classes) - 2).alias("label")
    value = label_value(label.column, label.positive)
    if label.task == "regression":
        shaped = F.log1p(value) if label.log1p else value
        value = (shaped - F.lit(label.mean)) / F.lit(label.std)
    return value.cast("float").alias("label")
