"""Draft a whole dataset config (source, key, features, label, split) from a sample: `infer-schema --features`.

Runs on the driver: Spark reads at most `sample_rows` rows with the inferred schema; the rules below look at
them with pandas. A draft to review, that runs as is:
- numeric types -> `features.numeric`; strings with few distinct values -> `features.categorical` (top_k from
  the distinct count); long strings (mean over 30 or max over 200 characters) -> `features.texts`;
- identifiers (a name like `id` / `*_id`, or a value unique in every sampled row) are no features: the first
  becomes `data.key_columns` and `split.key`; without one, data.query adds `row_key`, a hash of the whole row
  (identical rows share a split, so none leaks from train to test);
- dates and timestamps, arrays and maps are left out with a YAML comment saying why and how to add them;
- the label's task: as given, else regression for a number with more than 20 values, binary when two values hold
  99% of the rows (`positive` is the less frequent of them unless they are 0/1; other values go to quarantine),
  multiclass otherwise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pandas as pd
import yaml

from pipeline.errors import ConfigError

NUMERIC = ("tinyint", "smallint", "int", "bigint", "float", "double", "decimal", "boolean")
ID_NAME = re.compile(r"(^|_)(id|uuid|guid|key)$", re.IGNORECASE)
TEXT_MEAN_CHARS, TEXT_MAX_CHARS = 30, 200
MAX_CATEGORIES = 1000
REGRESSION_MIN_VALUES = 20


@dataclass
class Draft:
    features: dict = field(default_factory=dict)
    key: str | None = None
    left_out: dict[str, str] = field(default_factory=dict)  # column -> why


def draft_config(source: dict, sample: pd.DataFrame, label: str, task: str | None = None) -> str:
    """The YAML of a dataset config around `source` (an infer-schema entry), with comments for left-out columns."""
    schema = source["schema"]
    if label not in schema:
        raise ConfigError(f"--features {label!r} is not a column of {source['path']!r} (columns: {list(schema)})")
    draft = Draft()
    for column, kind in schema.items():
        if column != label:
            _place(draft, column, kind, sample[column])
    draft.features["label"] = _label(label, schema[label], sample[label], task)
    data: dict = {"sources": [source]}
    if draft.key:
        split = {"method": "hash", "key": draft.key}
        data["key_columns"] = [draft.key]
    else:
        data["query"] = f"SELECT *, xxhash64(*) AS row_key FROM {source['name']}"
        data["key_columns"] = ["row_key"]
        split = {"method": "hash", "key": "row_key"}
    config = {"data": data, "features": draft.features, "split": split}
    comments = "".join(f"# {column}: {why}\n" for column, why in draft.left_out.items())
    header = "# drafted by infer-schema --features from a sample: review the types and the feature lists\n"
    return header + (comments and "# left out:\n" + comments) + yaml.safe_dump(config, sort_keys=False, width=100)


def _place(draft: Draft, column: str, kind: str, values: pd.Series) -> None:
    present = values.dropna()
    unique_everywhere = len(present) > 1 and present.nunique() == len(values)
    if ID_NAME.search(column) or (unique_everywhere and not kind.startswith(("float", "double", "decimal"))):
        if draft.key is None and kind in ("int", "bigint", "string"):
            draft.key = column
            draft.left_out[column] = "an identifier (unique per row): the key of split and predictions, no feature"
        else:
            draft.left_out[column] = "an identifier (unique per row), no feature"
    elif kind.startswith(("date", "timestamp")):
        draft.left_out[column] = (
            f"a date/time: add {{name: {column}, parts: [hour, dow, month]}} under features.timestamps if it is "
            "known at prediction time"
        )
    elif kind.startswith(NUMERIC):
        draft.features.setdefault("numeric", []).append({"name": column})
    elif kind == "string":
        _place_string(draft, column, present)
    else:
        draft.left_out[column] = f"type {kind}: no automatic feature (fixed-length numbers: features.arrays)"


def _place_string(draft: Draft, column: str, present: pd.Series) -> None:
    lengths = present.str.len()
    if len(lengths) and (lengths.mean() > TEXT_MEAN_CHARS or lengths.max() > TEXT_MAX_CHARS):
        draft.features.setdefault("texts", []).append({"name": column})
    elif present.nunique() <= MAX_CATEGORIES:
        top_k = int(min(max(present.nunique(), 1), 100))
        draft.features.setdefault("categorical", []).append({"name": column, "top_k": top_k})
    else:
        draft.left_out[column] = f"over {MAX_CATEGORIES} distinct short strings in the sample: an identifier?"


def _label(column: str, kind: str, values: pd.Series, task: str | None) -> dict:
    present = values.dropna()
    text = present.astype(str).str.lower() if kind == "boolean" else present.astype(str)  # as Spark casts it
    counts = text.value_counts()
    two = counts.iloc[:2]
    if task is None:
        numeric = kind.startswith(NUMERIC) and kind != "boolean"
        if numeric and len(counts) > REGRESSION_MIN_VALUES:
            task = "regression"
        else:  # a stray value or two (`maybe` in a yes/no column) does not make a label multiclass
            task = "binary" if len(two) == 2 and two.sum() >= 0.99 * counts.sum() else "multiclass"
    label = {"column": column, "task": task}
    if task == "binary" and set(two.index) != {"0", "1"} and len(two):
        label["positive"] = str(two.index[-1])  # the rarer of the two: usually the event to predict
    return label
