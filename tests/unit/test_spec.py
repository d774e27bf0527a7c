"""FeatureSpec JSON round trip and the pandas transform's arithmetic on hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pipeline.model.spec import CategoricalVocab, FeatureSpec, LabelSpec, NumericStats, TimestampParts


def make_spec() -> FeatureSpec:
    return FeatureSpec(
        input_schema={"x": "double", "c": "string", "t": "timestamp", "y": "int"},
        numeric=(NumericStats("x", median=2.0, mean=1.0, std=2.0, clip=(0.0, 10.0)),),
        categorical=(CategoricalVocab("c", ("a", "b")),),
        timestamps=(TimestampParts("t", ("hour", "dow")),),
        label=LabelSpec("y", "binary"),
    ).with_hash()


def test_json_round_trip_keeps_everything():
    spec = make_spec()
    again = FeatureSpec.from_json(spec.to_json())
    assert again == spec
    assert len(spec.schema_hash) == 16


def test_unsupported_version_is_rejected():
    text = make_spec().to_json().replace('"version": 1', '"version": 99')
    with pytest.raises(ValueError, match="version 99 is not supported"):
        FeatureSpec.from_json(text)


def test_pandas_transform_values():
    spec = make_spec()
    df = pd.DataFrame(
        {
            "x": [3.0, None, 50.0, float("inf")],
            "c": ["a", "b", "zzz", None],
            # 2013-01-07 is a Monday
            "t": pd.to_datetime(["2013-01-07 06:00", "2013-01-08 12:30", "2013-01-13 00:00", "2013-01-07 18:00"]),
        }
    )
    numeric, categorical = spec.transform_pandas(df)
    assert spec.numeric_columns == [
        "num__x",
        "miss__x",
        "ts__t__hour_sin",
        "ts__t__hour_cos",
        "ts__t__dow_sin",
        "ts__t__dow_cos",
    ]
    # (clip(x) - 1) / 2 with nulls/inf imputed by the median 2.0
    np.testing.assert_allclose(numeric[:, 0], [1.0, 0.5, 4.5, 0.5])
    np.testing.assert_array_equal(numeric[:, 1], [0, 1, 0, 1])
    np.testing.assert_allclose(numeric[0, 2:4], [1.0, 0.0], atol=1e-7)  # 06:00 -> quarter turn
    np.testing.assert_allclose(numeric[1, 2], math.sin(2 * math.pi * 12.5 / 24), atol=1e-7)
    np.testing.assert_allclose(numeric[0, 4:6], [0.0, 1.0], atol=1e-7)  # Monday = 0
    np.testing.assert_allclose(numeric[2, 4], math.sin(2 * math.pi * 6 / 7), atol=1e-7)  # Sunday = 6
    assert categorical[:, 0].tolist() == [2, 3, 1, 0]  # vocab, vocab, OOV, null
    assert numeric.dtype == np.float32


def test_missing_input_column_is_named():
    with pytest.raises(KeyError, match=r"\['c', 't'\]"):
        make_spec().transform_pandas(pd.DataFrame({"x": [1.0]}))


def test_integer_categories_match_spark_text():
    spec = FeatureSpec(input_schema={"k": "int"}, categorical=(CategoricalVocab("k", ("5", "7")),))
    _, categorical = spec.transform_pandas(pd.DataFrame({"k": pd.Series([5, 7, 9, None], dtype="Int64")}))
    assert categorical[:, 0].tolist() == [2, 3, 1, 0]
