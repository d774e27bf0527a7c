"""Draft a `data.sources` entry from files with Spark's own schema inference (driver + executors).

The result is a starting point to review, not a contract: ids that look numeric come out as numbers. Spark reads
the files once to infer (pass `--option samplingRatio=0.1` for a sample of a large input). The pipeline then
reads with the declared schema and quarantines what does not fit.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from pipeline.data.storage import Storage
from pipeline.errors import ConfigError, DataError

FORMATS = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}


def guess_format(path: str) -> str:
    suffix = Path(path.rstrip("/*")).suffix.lower()
    if suffix in FORMATS:
        return FORMATS[suffix]
    raise ConfigError(f"cannot tell the format of {path!r} from its name. Fix: pass --format csv, json or parquet")


def infer_source(
    spark, path: str, fmt: str | None = None, name: str | None = None, options: dict[str, str] | None = None
) -> dict:
    """A source entry {name, format, path, schema[, options]} with Spark SQL type names, columns in file order."""
    fmt = fmt or guess_format(path)
    options = dict(options or {})
    if not Storage(spark).glob_files(path):
        raise DataError(f"{path!r} matches no file. Fix: pass an existing file, folder or glob")
    reader = spark.read.options(**options)
    if fmt == "csv":
        frame = reader.option("header", "true").option("inferSchema", "true").csv(path)
    elif fmt == "json":
        frame = reader.json(path)
    elif fmt == "parquet":
        frame = reader.parquet(path)
    else:
        raise ConfigError(f"--format {fmt!r} is not supported. Fix: use csv, json or parquet")
    schema = {field.name: field.dataType.simpleString() for field in frame.schema.fields}
    source = {"name": name or _view_name(path), "format": fmt, "path": path, "schema": schema}
    if options:
        source["options"] = options
    return source


def source_yaml(source: dict) -> str:
    """The entry as YAML to paste under data.sources (a one-item list)."""
    return yaml.safe_dump([source], sort_keys=False, default_flow_style=None, width=100)


def _view_name(path: str) -> str:
    stem = Path(path.rstrip("/*")).stem
    cleaned = "".join(c if c.isalnum() else "_" for c in stem).strip("_") or "source"
    return cleaned if not cleaned[0].isdigit() else f"t_{cleaned}"
