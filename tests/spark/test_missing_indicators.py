"""Missing-value indicators only for numeric columns that had something to impute in train; a null at scoring time
in a column that had none is imputed with the train median, without an indicator."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.config.feature_sections import FeaturesConfig
from pipeline.data.features import fit_spec, transform
from pipeline.data.split import SPLIT


def test_indicator_only_where_train_had_nulls(spark):
    rows = [(float(i), None if i % 3 == 0 else float(i), float(i % 2), "train" if i % 5 else "test") for i in range(40)]
    rows.append((1.0, 2.0, None, "test"))  # a null only outside train
    df = spark.createDataFrame(rows, f"full double, gappy double, y double, {SPLIT} string")
    features = FeaturesConfig.model_validate(
        {"numeric": [{"name": "full"}, {"name": "gappy"}], "label": {"column": "y", "task": "regression"}}
    )
    spec, _ = fit_spec(df.where("y IS NOT NULL"), features, [])
    assert spec.numeric_columns == ["num__full", "num__gappy", "miss__gappy"]
    written = transform(df.where("y IS NOT NULL"), spec).columns
    assert "miss__gappy" in written and "miss__full" not in written

    numeric, _ = spec.transform_pandas(pd.DataFrame({"full": [None, 3.0], "gappy": [None, 3.0]}))
    full = spec.numeric[0]
    assert np.isclose(numeric[0, 0], (full.median - full.mean) / full.std)  # imputed with the train median
    assert numeric.shape == (2, 3) and numeric[0, 2] == 1.0 and numeric[1, 2] == 0.0


def test_clipped_feature_statistics_count_neither_nulls_nor_other_splits(spark):
    """Spark's greatest/least skip nulls: clip(null) is the lower bound. The fit once counted every null and every
    val/test row of a clipped feature as that bound (flights: origin_delay_1h's mean 0.24 instead of 10.7)."""
    rng = np.random.default_rng(3)
    values = rng.normal(10, 20, 60)
    rows = [(None if i % 4 == 0 else float(v), 1.0, "train" if i % 3 else "test") for i, v in enumerate(values)]
    df = spark.createDataFrame(rows, f"d double, y double, {SPLIT} string")
    features = FeaturesConfig.model_validate(
        {"numeric": [{"name": "d", "clip": [-5, 30]}], "label": {"column": "y", "task": "regression"}}
    )
    stats = fit_spec(df, features, [])[0].numeric[0]
    train = pd.Series([r[0] for r in rows if r[2] == "train"], dtype="float64")
    filled = train.fillna(stats.median).clip(-5, 30)  # the model's transform: impute, then clip
    assert np.isclose(stats.mean, filled.mean()) and np.isclose(stats.std, filled.std(ddof=0))
