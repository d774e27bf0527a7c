"""A source entry (data.sources[], monitor.outcomes.source): what to read, in which format, with which columns.
Part of the config schema (pipeline/config/schema.py assembles the sections)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from pipeline.config.frozen import Frozen


class ImageSourceConfig(Frozen):
    """How an image source checks its files (each file is fully decoded once at read; failures are quarantined)."""

    accept_modes: list[str] = Field(default_factory=list)
    """Pillow modes a file may have, e.g. [L] for grayscale scans; a file in another mode is quarantined. Empty:
    any mode (features.images converts it)."""


class SourceConfig(Frozen):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    """View name of the source in data.query."""
    format: Literal["csv", "json", "parquet", "image"]
    """csv (with header), json (JSON lines), parquet, or image: one row per image file (columns path, file, folder,
    content, width, height, mode), read with Spark's binaryFile; folders are searched recursively."""
    path: str
    """File, folder, glob or Hadoop URI; may contain {date} for date-partitioned input."""
    schema_: dict[str, str] = Field(default_factory=dict, alias="schema")
    """Column -> Spark SQL type; text input is read as strings and cast, failed casts are quarantined; array<float>
    columns (Parquet, JSON lines) are read as arrays. Not used by image sources (their columns are fixed)."""
    options: dict[str, str] = Field(default_factory=dict)
    """Spark reader options, e.g. {nullValue: NA, sep: ';'}; image: {pathGlobFilter: '*.png'}."""
    primary: bool = False
    """The source whose rows are the pipeline's input rows; the others are lookups for the join."""
    image: ImageSourceConfig = Field(default_factory=ImageSourceConfig)
    """format image: which files are usable."""

    @model_validator(mode="after")
    def _schema_for_tabular_formats(self) -> SourceConfig:
        if self.format != "image" and not self.schema_:
            raise ValueError(f"source {self.name!r} ({self.format}) needs a schema. Fix: add schema: {{column: type}}")
        if self.format == "image" and self.schema_:
            raise ValueError(
                f"source {self.name!r} is format image, whose columns are fixed (path, file, folder, content, width, "
                "height, mode). Fix: remove its schema"
            )
        return self
