"""Draft a `data.sources` entry from files with Spark's own schema inference (runs on the driver; Spark reads).

CSV (with header) and JSON lines are inferred from the first `sample_rows` text lines, collected to the driver,
so the work is bounded however large the input is. Parquet's schema comes from the file footers: no rows are
read. With a `multiLine` or non-UTF-8 `encoding` reader option, text lines are no sample of the records, so
Spark infers from the whole input (add `--option samplingRatio=0.1` to make that cheaper).

The result is a draft to review, not a contract: ids and codes that look numeric come out as int or bigint
(declare them string to keep leading zeros), a sample can miss the rare value that makes a column a string, and
nested JSON values (struct, array) cannot be cast from text by prepare (flatten them first). Prepare then reads
with the declared schema and quarantines the rows that do not fit.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path

import yaml

from pipeline.data.csv_dialect import SNIFF_BYTES, SNIFF_FILES, csv_reader_options, find_option
from pipeline.errors import ConfigError, DataError
from pipeline.storage.folders import Storage

log = logging.getLogger(__name__)

FORMATS = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
DEFAULT_SAMPLE_ROWS = 10_000
_COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".lz4", ".snappy", ".deflate")
_VIEW_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")  # the pattern data.sources[].name accepts


def _last_name(path: str) -> Path:
    """The path's last element without a compression suffix: `a/houses.csv.gz` -> houses.csv."""
    last = Path(path.rstrip("/*"))
    return last.with_suffix("") if last.suffix.lower() in _COMPRESSED else last


def guess_format(path: str, files: Sequence[str] = ()) -> str:
    """The format from the path's extension, else from the first file's (a folder of part files)."""
    for name in (path, *files[:1]):
        suffix = _last_name(name).suffix.lower()
        if suffix in FORMATS:
            return FORMATS[suffix]
    raise ConfigError(f"cannot tell the format of {path!r} from its name. Fix: pass --format csv, json or parquet")


def infer_source(
    spark,
    path: str,
    fmt: str | None = None,
    name: str | None = None,
    options: dict[str, str] | None = None,
    sample_rows: int = DEFAULT_SAMPLE_ROWS,
) -> dict:
    """A source entry {name, format, path, schema[, options]} with Spark SQL type names, columns in file order."""
    if fmt not in (None, "csv", "json", "parquet"):
        raise ConfigError(f"--format {fmt!r} is not supported. Fix: use csv, json or parquet")
    if sample_rows < 1:
        raise ConfigError(f"--sample-rows {sample_rows} is too small. Fix: pass at least 1 (default 10000)")
    name = name or _view_name(path)
    if not _VIEW_NAME.match(name):
        raise ConfigError(
            f"--name {name!r} is not a valid view name for data.sources[].name. "
            "Fix: use letters, digits and underscores, not starting with a digit"
        )
    options = dict(options or {})
    files = [f.path for f in Storage().glob_files(path)]
    if not files:
        raise DataError(
            f"{path!r} matches no file. Fix: pass an existing file, folder or glob (relative paths start "
            "where the command runs)"
        )
    fmt = fmt or guess_format(path, files)
    if fmt == "csv":
        options = _csv_entry_options(Storage(), files, options)
    if fmt == "parquet":
        fields = list(spark.read.options(**options).parquet(path).schema.fields)
    else:
        fields = _infer_text(spark, path, fmt, options, sample_rows)
    schema = {field.name: field.dataType.simpleString() for field in fields}
    if not schema:
        raise DataError(
            f"Spark found no columns in {path!r} as {fmt}. Fix: check --format and reader options such as "
            "--option sep=';'"
        )
    source = {"name": name, "format": fmt, "path": path, "schema": schema}
    if options:
        source["options"] = options
    return source


def _csv_entry_options(storage: Storage, files: list[str], options: dict[str, str]) -> dict[str, str]:
    """The user's options, plus `multiLine: 'true'` when quoted fields span lines (written into the entry, so the
    choice is visible); prepare adds RFC 4180 quoting itself (pipeline/data/csv_dialect.py)."""
    chosen = csv_reader_options(options, (storage.head_bytes(f, SNIFF_BYTES) for f in files[:SNIFF_FILES]))
    if chosen.get("multiLine") == "true" and find_option(options, "multiLine") is None:
        log.info("quoted fields span lines: the entry reads with multiLine=true")
        return {**options, "multiLine": "true"}
    return options


def _infer_text(spark, path: str, fmt: str, options: dict[str, str], sample_rows: int) -> list:
    """Schema fields of a CSV or JSON input, from a bounded sample of lines where lines are records."""
    reader = spark.read.options(**(csv_reader_options(options, ()) if fmt == "csv" else options))
    if fmt == "csv":
        reader = reader.option("header", "true").option("inferSchema", "true")
    read = reader.csv if fmt == "csv" else reader.json
    lowered = {key.lower(): value for key, value in options.items()}
    encoding = lowered.get("encoding", lowered.get("charset", "UTF-8")).upper().replace("-", "")
    if lowered.get("multiline", "false").lower() == "true" or encoding != "UTF8":
        log.info("inferring from the whole of %s (multiLine or encoding set: lines are no sample)", path)
        return _drop_corrupt(read(path).schema.fields, path, lowered)

    line_sep = {"lineSep": lowered["linesep"]} if "linesep" in lowered else {}
    # collect() of a limit scans only as many partitions as it needs; +1 line for a CSV header.
    rows = spark.read.options(**line_sep).text(path).limit(sample_rows + (1 if fmt == "csv" else 0)).collect()
    lines = [row.value for row in rows]
    if not lines:
        raise DataError(f"the files under {path!r} hold no lines. Fix: point PATH at files that hold data")
    log.info("inferring %s types from the first %d line(s) of %s", fmt, len(lines), path)
    frame = read(spark.createDataFrame([(line,) for line in lines], "value string"))
    fields = _drop_corrupt(frame.schema.fields, path, lowered)
    if fmt == "json":
        # Spark sorts inferred JSON fields by name; the file's own key order is what the user recognises.
        order: dict[str, int] = {}
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                for key in record:
                    order.setdefault(key, len(order))
        fields.sort(key=lambda field: order.get(field.name, len(order)))
    return fields


def _drop_corrupt(fields, path: str, lowered: dict[str, str]) -> list:
    """JSON inference adds a corrupt-record column for lines that are not objects; it is no data column."""
    corrupt = lowered.get("columnnameofcorruptrecord", "_corrupt_record")
    kept = [field for field in fields if field.name != corrupt]
    if len(kept) < len(fields):
        if not kept:
            raise DataError(
                f"no record of {path!r} could be parsed. Fix: a JSON array or pretty-printed JSON needs "
                "--option multiLine=true; otherwise check --format"
            )
        log.warning("some records of %s could not be parsed; prepare will quarantine such rows", path)
    return kept


def read_sample(spark, source: dict, sample_rows: int):
    """Up to `sample_rows` rows of a drafted source, typed by its schema, as pandas (for infer-schema --features)."""
    from pyspark.sql import types as T

    schema = T.StructType([T.StructField(c, T._parse_datatype_string(t)) for c, t in source["schema"].items()])
    options = dict(source.get("options", {}))
    if source["format"] == "parquet":
        frame = spark.read.options(**options).parquet(source["path"])
    elif source["format"] == "csv":
        reader = spark.read.options(**csv_reader_options(options, ())).option("header", "true").schema(schema)
        frame = reader.csv(source["path"])
    else:
        frame = spark.read.options(**options).schema(schema).json(source["path"])
    return frame.limit(sample_rows).toPandas()


def source_yaml(source: dict) -> str:
    """The entry as YAML to paste under data.sources (a one-item list, one column per line)."""
    return yaml.safe_dump([source], sort_keys=False, default_flow_style=False, width=100)


def _view_name(path: str) -> str:
    last = _last_name(path)
    stem = last.parent.name if any(c in last.name for c in "*?[{") else last.stem  # data/flights/*.csv -> flights
    cleaned = "".join(c if c.isascii() and c.isalnum() else "_" for c in stem).strip("_") or "source"
    return cleaned if not cleaned[0].isdigit() else f"t_{cleaned}"
