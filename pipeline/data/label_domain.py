"""The label's classes, resolved on the driver before cleaning tags rows, so no label value is mapped silently.

Prepare only (scoring has no label). A binary label is either 0/1 (`label.positive` null) or two values of
which `label.positive` is one; a multiclass label has the classes the user declared in `label.classes`, or the
values of the input (sorted, so indices do not depend on row order). A value outside the classes goes to
quarantine with the reason `label 'maybe' not in ['no', 'yes']`, where `data.max_quarantine_fraction` counts it.
Undeclared binary classes are the positive value and the most frequent other value: one small aggregate over the
table (label values and their counts, at most MAX_CLASSES + 1 of them reach the driver).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pipeline.config.feature_sections import LabelConfig
from pipeline.errors import DataError

log = logging.getLogger(__name__)

MAX_CLASSES = 1000
BINARY_NUMERIC = ("0", "1")


@dataclass(frozen=True)
class LabelDomain:
    column: str
    classes: tuple[str, ...]  # the label's values as text, sorted; binary 0/1 labels: ("0", "1")
    numeric: bool  # compare the label as a number (0/1 labels), else as text

    def outside(self):
        """Column expression: the quarantine reason for a non-null label outside the classes, else null."""
        from pyspark.sql import functions as F

        value = F.col(self.column)
        if self.numeric:
            inside = value.cast("double").isin(*[float(c) for c in self.classes])
        else:
            inside = value.cast("string").isin(*self.classes)
        shown = F.substring(value.cast("string"), 1, 100)
        reason = F.concat(F.lit("label '"), shown, F.lit(f"' not in {list(self.classes)}"))
        return F.when(value.isNotNull() & ~F.coalesce(inside, F.lit(False)), reason)


def resolve_label_domain(table, label: LabelConfig | None) -> LabelDomain | None:
    """Driver: the classes a label may take (None for regression or no label); may run one small aggregate."""
    if label is None or label.task == "regression":
        return None
    if label.classes:
        return _declared(label)
    if label.task == "binary" and label.positive is None:
        return LabelDomain(label.column, BINARY_NUMERIC, numeric=True)
    counts = _value_counts(table, label.column)
    if label.task == "multiclass":
        return LabelDomain(label.column, tuple(sorted(counts)), numeric=False)
    return _binary_from_counts(label, counts)


def _declared(label: LabelConfig) -> LabelDomain:
    classes = tuple(sorted(label.classes))
    if label.task == "binary" and (len(classes) != 2 or (label.positive is not None and label.positive not in classes)):
        raise DataError(
            f"features.label.classes={list(label.classes)} for a binary label must be two values, one of them "
            f"features.label.positive={label.positive!r}. Fix: list the negative and the positive value"
        )
    numeric = label.task == "binary" and label.positive is None
    if numeric and classes != BINARY_NUMERIC:
        raise DataError(
            f"features.label.classes={list(label.classes)} without features.label.positive: a binary label is then "
            "0/1. Fix: set features.label.positive to the value that means 1"
        )
    return LabelDomain(label.column, classes, numeric=numeric)


def _value_counts(table, column: str) -> dict[str, int]:
    from pyspark.sql import functions as F

    text = F.col(column).cast("string").alias("value")
    rows = (
        table.where(F.col(column).isNotNull())
        .groupBy(text)
        .count()
        .orderBy(F.col("count").desc(), "value")
        .limit(MAX_CLASSES + 1)
        .collect()
    )
    if len(rows) > MAX_CLASSES:
        raise DataError(
            f"label column {column!r} has more than {MAX_CLASSES} distinct values: that is no class label. "
            "Fix: use features.label.task: regression, or declare features.label.classes"
        )
    return {r["value"]: r["count"] for r in rows}


def _binary_from_counts(label: LabelConfig, counts: dict[str, int]) -> LabelDomain:
    """The positive value and the most frequent other one (counts are ordered by frequency, then value)."""
    if label.positive not in counts:
        found = ", ".join(f"{value!r} ({n} rows)" for value, n in list(counts.items())[:10]) or "only nulls"
        raise DataError(
            f"features.label.positive={label.positive!r} never appears in label column {label.column!r} "
            f"(values: {found}). Fix: set features.label.positive to one of these values (exact case)"
        )
    others = [value for value in counts if value != label.positive]
    classes = tuple(sorted([label.positive, *others[:1]]))
    if len(others) > 1:
        stray = ", ".join(f"{value!r} ({counts[value]} rows)" for value in others[1:6])
        log.warning(
            "binary label %r: classes %s; other values go to quarantine: %s. Declare features.label.classes to "
            "choose the classes yourself",
            label.column,
            list(classes),
            stray,
        )
    return LabelDomain(label.column, classes, numeric=False)
