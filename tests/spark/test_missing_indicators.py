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
