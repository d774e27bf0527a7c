"""Every column a setting names exists in prepare's table with a usable type, checked before any Spark job.

Runs on the driver, at the start of prepare and in `python -m pipeline check`. The table's columns come from the
declared source schemas alone: each source becomes an empty DataFrame with its schema (image sources have fixed
columns) registered under its view name, and `data.query` is only analysed over them, so no file is read and no
job runs. A name that is missing is reported with the nearest real column (`distnace` -> `distance`), every
problem in one error.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator

from pipeline.config.schema import DataConfig, PipelineConfig
from pipeline.data.image_source import IMAGE_COLUMNS
from pipeline.data.sources import parse_types
from pipeline.data.user_sql import run_query
from pipeline.errors import ConfigError, ScoringError
from pipeline.model.spec import FeatureSpec

NUMERIC_TYPES = ("tinyint", "smallint", "int", "bigint", "float", "double", "decimal", "boolean")
TIME_TYPES = ("date", "timestamp")
DATE_LIKE = (*TIME_TYPES, "string")  # split and score cast an ISO date string


def table_columns(spark, data: DataConfig) -> dict[str, str]:
    """Column -> Spark SQL type of the table prepare cleans (the query's output, or the primary source)."""
    from pyspark.sql import types as T

    frames = {}
    for source in data.sources:
        if source.format == "image":
            fields = [T.StructField(name, T._parse_datatype_string(kind)) for name, kind in IMAGE_COLUMNS.items()]
        else:
            fields = [T.StructField(name, dtype) for name, dtype in parse_types(source).items()]
        frames[source.name] = spark.createDataFrame([], T.StructType(fields))
    if data.query:
        for name, frame in frames.items():
            frame.createOrReplaceTempView(name)
        table = run_query(spark, data.query, list(frames))
    else:
        primary = next((s for s in data.sources if s.primary), data.sources[0])
        table = frames[primary.name]
    return dict(table.dtypes)


def check_columns(columns: dict[str, str], config: PipelineConfig) -> None:
    """Raise one ConfigError listing every setting whose column is missing or has a type it cannot use."""
    problems = []
    for setting, column, allowed in _named_columns(config):
        if column not in columns:
            near = difflib.get_close_matches(column, list(columns), n=1, cutoff=0.6)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            problems.append(f"{setting}: column {column!r} is not in the table{hint}")
        elif allowed and not columns[column].startswith(allowed):
            problems.append(f"{setting}: column {column!r} is {columns[column]}, expected {' or '.join(allowed)}")
    if problems:
        raise ConfigError(
            "; ".join(problems) + f". The table has {sorted(columns)}. Fix: correct the names, or declare the "
            "columns in data.sources[].schema / select them in data.query"
        )


def _named_columns(config: PipelineConfig) -> Iterator[tuple[str, str, tuple[str, ...]]]:
    """(setting, column, allowed type prefixes or () for any) for every column the config names."""
    features, cleaning, split = config.features, config.cleaning, config.split
    for i, f in enumerate(features.numeric):
        yield f"features.numeric[{i}].name", f.name, NUMERIC_TYPES
    for i, f in enumerate(features.categorical):
        yield f"features.categorical[{i}].name", f.name, ()
    for i, f in enumerate(features.timestamps):
        yield f"features.timestamps[{i}].name", f.name, TIME_TYPES
    for i, f in enumerate(features.images):
        yield f"features.images[{i}].name", f.name, ("binary", "string")
    for i, f in enumerate(features.texts):
        yield f"features.texts[{i}].name", f.name, ("string",)
    for i, f in enumerate(features.arrays):
        yield f"features.arrays[{i}].name", f.name, ("array",)
    if features.label:
        numeric_label = features.label.task == "regression"
        yield "features.label.column", features.label.column, NUMERIC_TYPES if numeric_label else ()
    yield from ((f"data.key_columns[{i}]", c, ()) for i, c in enumerate(config.data.key_columns))
    if config.data.date_column:
        yield "data.date_column", config.data.date_column, DATE_LIKE
    if split.method == "hash" and split.key:
        yield "split.key", split.key, ()
    if split.method == "time" and split.column:
        yield "split.column", split.column, DATE_LIKE
    for setting, names in (
        ("cleaning.required", cleaning.required),
        ("cleaning.quarantine_nulls", cleaning.quarantine_nulls),
        ("cleaning.ranges", list(cleaning.ranges)),
        ("cleaning.allowed", list(cleaning.allowed)),
        ("cleaning.dedup_on", cleaning.dedup_on),
    ):
        yield from ((setting, name, ()) for name in names)


def check_schema(table, spec: FeatureSpec) -> None:
    """Stop before any write when an input column the model needs is missing or has another type."""
    found = dict(table.dtypes)
    for column, expected in spec.input_schema.items():
        if spec.label and column == spec.label.column:
            continue
        if column not in found:
            raise ScoringError(
                f"input column {column!r} required by the model is missing from the scoring data "
                f"(it has {sorted(found)}). Fix: restore it in the source / data.query, or retrain"
            )
        if found[column] != expected:
            raise ScoringError(
                f"input column {column!r} has type {found[column]} but the model was trained on {expected}. "
                f"Fix: cast it to {expected} in data.query or the source schema"
            )
