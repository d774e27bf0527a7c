"""Pure DataFrame rules: tag each row with every reason it fails, then split clean from quarantined."""

from __future__ import annotations

from pipeline.config.feature_sections import LabelConfig
from pipeline.config.schema import CleaningConfig
from pipeline.data.label_domain import LabelDomain
from pipeline.data.sources import REASON, RECORD
from pipeline.data.user_sql import analyse_rule
from pipeline.errors import DataError

_NUMERIC_FLOAT = ("double", "float")


def _require_columns(df, columns: list[str], setting: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(
            f"{setting} names column(s) {missing} that the raw table does not have "
            f"(it has {df.columns}). Fix: add them to data.query / the source schema, or remove them from {setting}"
        )


def tag_invalid(
    df,
    rules: CleaningConfig,
    label: LabelConfig | None,
    with_label: bool,
    array_lengths: dict[str, int] | None = None,
    label_domain: LabelDomain | None = None,
):
    """Add `_reason` (all failed rules joined by '; ', null when clean) and `_record` (original values).

    Args:
        with_label: apply label rules and require a label (prepare); False at scoring time.
        array_lengths: array feature column -> its length; another length, a null array or a null / NaN /
            infinite value in it is a reason (features.arrays, or the spec's at scoring time).
        label_domain: the label's classes (prepare): a value outside them is a reason.
    """
    from pyspark.sql import functions as F

    _require_rule_columns(df, rules, label, with_label)
    # The order of the checks is the order of the reasons in `_reason`: quarantined files stay comparable.
    problems = _value_problems(df, rules)
    problems += _rule_problems(df, rules, with_label)
    if with_label and label is not None:
        problems.append(F.when(F.col(label.column).isNull(), F.lit(f"label {label.column} is null")))
        if label_domain is not None:
            problems.append(label_domain.outside())
    _require_columns(df, list(array_lengths or {}), "features.arrays")
    for column, length in (array_lengths or {}).items():
        problems += _array_problems(column, length)

    reason = F.concat_ws("; ", *problems)
    tagged = df.withColumn(REASON, F.when(reason != "", reason))
    if rules.dedup_on:
        tagged = _tag_duplicates(tagged, df.columns, rules.dedup_on)
    record = F.when(F.col(REASON).isNotNull(), F.to_json(F.struct(*[F.col(c) for c in df.columns])))
    return tagged.withColumn(RECORD, record)  # only quarantined rows carry their original values


def _require_rule_columns(df, rules: CleaningConfig, label: LabelConfig | None, with_label: bool) -> None:
    """On the driver, before any Spark work: every column a cleaning setting names must exist in the raw table."""
    _require_columns(df, rules.required, "cleaning.required")
    _require_columns(df, rules.quarantine_nulls, "cleaning.quarantine_nulls")
    _require_columns(df, list(rules.ranges), "cleaning.ranges")
    _require_columns(df, list(rules.allowed), "cleaning.allowed")
    _require_columns(df, rules.dedup_on, "cleaning.dedup_on")
    if with_label and label is not None:
        _require_columns(df, [label.column], "features.label.column")


def _value_problems(df, rules: CleaningConfig) -> list:
    """Reasons from the declarative settings (nulls, NaN / infinite floats, ranges, allowed values).

    Built on the driver as column expressions; the executors evaluate them row by row.
    """
    from pyspark.sql import functions as F

    problems = []
    for column in dict.fromkeys(rules.required + rules.quarantine_nulls):
        problems.append(F.when(F.col(column).isNull(), F.lit(f"{column} is null")))
    dtypes = dict(df.dtypes)
    for column, dtype in dtypes.items():
        if dtype in _NUMERIC_FLOAT:
            value = F.col(column)
            problems.append(F.when(F.isnan(value), F.lit(f"{column} is NaN")))
            problems.append(F.when(value.isin(float("inf"), float("-inf")), F.lit(f"{column} is infinite")))
    for column, bounds in rules.ranges.items():
        value = F.col(column).cast("double")
        comparable = ~F.isnan(value)  # Spark orders NaN above every number; NaN has its own reason
        if bounds.min is not None:
            problems.append(F.when(comparable & (value < bounds.min), F.lit(f"{column} below min {bounds.min}")))
        if bounds.max is not None:
            problems.append(F.when(comparable & (value > bounds.max), F.lit(f"{column} above max {bounds.max}")))
    for column, values in rules.allowed.items():
        problems.append(
            F.when(
                F.col(column).isNotNull() & ~F.col(column).cast("string").isin(*values),
                F.lit(f"{column} not in cleaning.allowed"),
            )
        )
    return problems


def _rule_problems(df, rules: CleaningConfig, with_label: bool) -> list:
    """Reasons from the user's SQL conditions (cleaning.rules, plus label_rules when there is a label).

    Each condition is analysed on the driver against `df`, so a bad rule fails before any job starts.
    """
    from pyspark.sql import functions as F

    active_rules = [(f"cleaning.rules[{i}]", rule) for i, rule in enumerate(rules.rules)]
    if with_label:
        active_rules += [(f"cleaning.label_rules[{i}]", rule) for i, rule in enumerate(rules.label_rules)]
    problems = []
    for setting, rule in active_rules:
        try:
            condition = analyse_rule(df, rule.when)
        except DataError as exc:  # name which rule: several can share a column or a mistake
            raise DataError(f"{setting}.when: {exc}") from exc
        problems.append(F.when(F.coalesce(condition, F.lit(False)), F.lit(rule.reason)))
    return problems


def _tag_duplicates(tagged, columns: list[str], dedup_on: list[str]):
    """Append a duplicate-key reason to every row but one per cleaning.dedup_on key (a shuffle on the executors)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    # Keep one row per key, chosen by a hash of the whole row, so reruns keep the same one.
    order = F.xxhash64(*[F.col(c) for c in columns])
    window = Window.partitionBy(*dedup_on).orderBy(order, *[F.col(c) for c in dedup_on])
    rank = F.row_number().over(window)
    duplicate = F.when(rank > 1, F.lit(f"duplicate key {dedup_on}"))
    return tagged.withColumn(
        REASON, F.when(duplicate.isNull(), F.col(REASON)).otherwise(F.concat_ws("; ", F.col(REASON), duplicate))
    )


def _array_problems(column: str, length: int) -> list:
    from pyspark.sql import functions as F

    values = F.col(column)
    bad_value = F.exists(values, lambda v: v.isNull() | F.isnan(v) | v.isin(float("inf"), float("-inf")))
    return [
        F.when(values.isNull(), F.lit(f"{column} is null")),
        F.when(
            F.size(values) != length,
            F.concat(F.lit(f"{column}: array length "), F.size(values).cast("string"), F.lit(f", expected {length}")),
        ),
        F.when(F.size(values) == length, F.when(bad_value, F.lit(f"{column}: null, NaN or infinite value"))),
    ]


def split_clean(tagged, stage: str, source: str, keep: tuple[str, ...] = ()):
    """(clean rows with the raw table's columns, quarantined rows in the quarantine layout plus `keep` columns)."""
    from pyspark.sql import functions as F

    clean = tagged.where(F.col(REASON).isNull()).drop(REASON, RECORD)
    quarantined = tagged.where(F.col(REASON).isNotNull()).select(
        F.lit(source).alias("_source"), F.lit(stage).alias("_stage"), REASON, RECORD, *keep
    )
    return clean, quarantined
