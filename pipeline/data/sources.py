"""Read declared sources with their schema, quarantine unreadable rows, register views, run the SQL step.

Image files are read by pipeline/data/image_source.py into the same tagged layout (rows plus a reason).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pipeline.config.schema import DataConfig, SourceConfig
from pipeline.data.csv_dialect import SNIFF_BYTES, SNIFF_FILES, csv_reader_options, delimiter, find_option, header_names
from pipeline.data.image_source import read_images
from pipeline.data.user_sql import run_query
from pipeline.errors import ConfigError, DataError
from pipeline.storage.folders import Storage

log = logging.getLogger(__name__)

CORRUPT = "_corrupt_record"
REASON = "_reason"
RECORD = "_record"


@dataclass
class LoadedSource:
    """A source split into valid typed rows (`valid`) and rows it could not read (`bad`, quarantine layout)."""

    name: str
    primary: bool
    valid: object  # pyspark DataFrame (typed columns only)
    bad: object  # pyspark DataFrame in the quarantine layout: _source, _stage, _reason, _record
    tagged: object  # the persisted frame both come from (unpersist when done)


def parse_types(source: SourceConfig):
    """Declared `column: type` -> Spark DataType per column; a bad type names source, column and fix."""
    from pyspark.sql.types import _parse_datatype_string

    types = {}
    for column, type_name in source.schema_.items():
        try:
            types[column] = _parse_datatype_string(type_name)
        except Exception:
            raise ConfigError(
                f"data.sources[{source.name}].schema.{column}: unknown type {type_name!r}. "
                "Fix: use a Spark SQL type such as string, int, bigint, double, boolean, date, timestamp"
            ) from None
    return types


def _check_files(storage: Storage, source: SourceConfig) -> list[str]:
    files = storage.glob_files(source.path)
    if not files:
        raise DataError(
            f"source {source.name!r}: path {source.path!r} matches no file. "
            "Fix: check data.sources[].path (globs are allowed), or run 'python -m pipeline demo-data'"
        )
    if all(f.size == 0 for f in files):
        raise DataError(
            f"source {source.name!r}: all {len(files)} file(s) under {source.path!r} are empty. "
            "Fix: point the source at files that hold data"
        )
    return [f.path for f in files if f.size > 0]


def _check_csv_header(storage: Storage, source: SourceConfig, files: list[str], options: dict[str, str]) -> None:
    """Spark would silently map columns by position (or fail inside a task); compare headers here."""
    expected = list(source.schema_)
    sep, quote = delimiter(options), find_option(options, "quote") or '"'
    for path in files[:200]:  # a sample bounds the driver's work on huge file sets
        names = header_names(storage.first_line(path) or "", sep, quote)
        if names != expected:
            missing = [c for c in expected if c not in names]
            extra = [c for c in names if c not in expected]
            raise DataError(
                f"source {source.name!r}: header of {path} does not match the declared schema "
                f"(missing: {missing or 'none'}, unexpected: {extra or 'none'}, order: {names}). "
                "Fix: update data.sources[].schema to the file's columns, in the file's order"
            )


def csv_options(storage: Storage, source: SourceConfig, files: list[str]) -> dict[str, str]:
    """The source's CSV reader options over RFC 4180 defaults, multiLine sniffed from the first files' heads."""
    heads = (storage.head_bytes(path, SNIFF_BYTES) for path in files[:SNIFF_FILES])
    options = csv_reader_options(source.options, heads)
    if options.get("multiLine") == "true" and find_option(source.options, "multiLine") is None:
        log.info(
            "source %r: quoted fields span lines, so it is read with multiLine=true (each file is one task; set "
            "options.multiLine in data.sources[] to choose yourself)",
            source.name,
        )
    return options


def _read_as_strings(spark, source: SourceConfig, files: list[str], reader_options: dict[str, str]):
    """Read text formats with every column as string so a failed cast can be reported, not nulled."""
    from pyspark.sql import types as T

    schema = T.StructType(
        [T.StructField(c, T.StringType()) for c in source.schema_] + [T.StructField(CORRUPT, T.StringType())]
    )
    options = {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT}
    if source.format == "csv":
        options.update({"header": "true", "enforceSchema": "true"})
        options.update(reader_options)
        return spark.read.options(**options).schema(schema).csv(files)
    options.update(reader_options)
    return spark.read.options(**options).schema(schema).json(files)


def _read_parquet(spark, source: SourceConfig, files: list[str]):
    from pyspark.sql import functions as F

    df = spark.read.options(**source.options).parquet(*files)
    missing = [c for c in source.schema_ if c not in df.columns]
    if missing:
        raise DataError(
            f"source {source.name!r}: column(s) {missing} declared in the schema are missing from "
            f"{source.path} (it has {df.columns}). Fix: update data.sources[].schema or the data"
        )
    # Strings again, so the same cast-and-report path handles Parquet type drift (arrays keep their type).
    types = parse_types(source)
    return df.select(
        *[F.col(c).cast("string" if not _is_array(types[c]) else types[c]).alias(c) for c in source.schema_],
        F.lit(None).cast("string").alias(CORRUPT),
    )


def _is_array(dtype) -> bool:
    return dtype.typeName() == "array"


def tag_rows(raw, source: SourceConfig, max_string_length: int):
    """Typed columns plus `_reason` (null when the row is fine) and `_record` (the original text)."""
    from pyspark.sql import functions as F

    types = parse_types(source)
    problems = [F.when(F.col(CORRUPT).isNotNull(), F.lit("malformed line (wrong number of fields)"))]
    typed = []
    for column, dtype in types.items():
        original = F.col(column)
        if _is_array(dtype):
            if source.format == "json":  # read as the JSON text of the array: parse it, report what does not parse
                value = F.from_json(original, dtype)
                problems.append(_unconverted(column, value, "read", f"as {dtype.simpleString()}"))
            else:
                value = original
            typed.append(value.alias(column))
            continue
        if dtype.simpleString() == "string":
            value = original
            problems.append(F.when(F.instr(original, "\ufffd") > 0, F.lit(f"{column}: invalid UTF-8 bytes")))
            problems.append(
                F.when(
                    F.length(original) > max_string_length,
                    F.lit(f"{column}: string longer than cleaning.max_string_length={max_string_length}"),
                )
            )
        else:
            value = F.expr(f"try_cast(`{column}` AS {dtype.simpleString()})")
            problems.append(_unconverted(column, value, "cast", f"to {dtype.simpleString()}"))
        typed.append(value.alias(column))
    reason = F.concat_ws("; ", *problems)
    failed = reason != ""
    # The original text is only kept for rows that go to quarantine (serialising every row is costly).
    original_values = F.struct(*[F.col(c) for c in source.schema_])
    record = F.when(failed, F.coalesce(F.col(CORRUPT), F.to_json(original_values)))
    return raw.select(
        *typed,
        F.when(failed, reason).alias(REASON),
        record.alias(RECORD),
    )


def _unconverted(column: str, value, verb: str, target: str):
    """The reason a text value did not become its declared type (built on the driver, evaluated by the executors).

    Shared by JSON arrays (`cannot read '...' as array<...>`) and scalar casts (`cannot cast '...' to int`) so
    both quote the original text the same way. Null when the value converted, was null in the file, or the whole
    line is malformed (that row already has its own reason).
    """
    from pyspark.sql import functions as F

    original = F.col(column)
    return F.when(
        original.isNotNull() & value.isNull() & F.col(CORRUPT).isNull(),
        F.concat(F.lit(f"{column}: cannot {verb} '"), F.substring(original, 1, 100), F.lit(f"' {target}")),
    )


def check_source_files(storage: Storage, source: SourceConfig) -> int:
    """Driver, no Spark job: the source's files exist and hold data, a CSV's headers match its schema; the count."""
    if source.format == "image":
        return len(storage.glob_files(source.path))
    files = _check_files(storage, source)
    if source.format == "csv":
        _check_csv_header(storage, source, files, csv_options(storage, source, files))
    return len(files)


def load_source(spark, source: SourceConfig, max_string_length: int) -> LoadedSource:
    """Read one source once (persisted), split into valid rows and quarantined rows with reasons."""
    from pyspark import StorageLevel

    storage = Storage()
    if source.format == "image":
        files = storage.glob_files(source.path)
        if not files:
            raise DataError(
                f"source {source.name!r}: path {source.path!r} matches no file. Fix: check data.sources[].path "
                "(a folder of images, searched recursively, or a glob)"
            )
        tagged = read_images(spark, source, files, REASON, RECORD).persist(StorageLevel.MEMORY_AND_DISK)
        return _split_tagged(source, tagged)
    files = _check_files(storage, source)
    if source.format == "csv":
        options = csv_options(storage, source, files)
        _check_csv_header(storage, source, files, options)
        raw = _read_as_strings(spark, source, files, options)
    elif source.format == "json":
        raw = _read_as_strings(spark, source, files, source.options)
    else:
        raw = _read_parquet(spark, source, files)
    tagged = tag_rows(raw, source, max_string_length).persist(StorageLevel.MEMORY_AND_DISK)
    return _split_tagged(source, tagged)


def _split_tagged(source: SourceConfig, tagged) -> LoadedSource:
    from pyspark.sql import functions as F

    valid = tagged.where(F.col(REASON).isNull()).drop(REASON, RECORD)
    bad = tagged.where(F.col(REASON).isNotNull()).select(
        F.lit(source.name).alias("_source"), F.lit("read").alias("_stage"), REASON, RECORD
    )
    return LoadedSource(source.name, source.primary, valid, bad, tagged)


def load_sources(spark, data: DataConfig, max_string_length: int) -> list[LoadedSource]:
    """Load every declared source and register its valid rows as a temp view named after it."""
    if not data.sources:
        raise ConfigError("data.sources is empty. Fix: declare at least one source (see conf/flights.yaml)")
    loaded = []
    for source in data.sources:
        item = load_source(spark, source, max_string_length)
        item.valid.createOrReplaceTempView(source.name)
        loaded.append(item)
    return loaded


def raw_table(spark, data: DataConfig, loaded: list[LoadedSource]):
    """The table cleaning sees: the SQL query's output, or the single source when there is no query."""
    if not data.query:
        return loaded[0].valid
    return run_query(spark, data.query, [s.name for s in loaded])


def primary_source(loaded: list[LoadedSource]) -> LoadedSource:
    return next((s for s in loaded if s.primary), loaded[0])
