"""Labels as the network sees them: text binary labels against `positive`, standardized regression targets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.config.feature_sections import FeaturesConfig
from pipeline.data.features import fit_spec, transform
from pipeline.data.split import SPLIT
from pipeline.errors import DataError


def frame(spark, labels, label_type: str):
    rows = [(float(i), label, "train" if i % 4 else "test") for i, label in enumerate(labels)]
    return spark.createDataFrame(rows, f"x double, y {label_type}, {SPLIT} string")


def features(**label) -> FeaturesConfig:
    return FeaturesConfig.model_validate({"numeric": [{"name": "x"}], "label": {"column": "y", **label}})


def test_text_binary_label_is_one_for_the_positive_value(spark):
    labels = ["Yes", "No", "yes", None, "Yes", "No", "Yes", "No"]
    df = frame(spark, labels, "string")
    spec, report = fit_spec(df, features(task="binary", positive="Yes"), [])
    encoded = [r["label"] for r in transform(df, spec).collect()]
    assert encoded == [1.0, 0.0, 0.0, None, 1.0, 0.0, 1.0, 0.0]  # exact match: "yes" is not "Yes"
    train = [encoded[i] for i in range(len(labels)) if i % 4 and encoded[i] is not None]
    assert report["train_label_mean"] == pytest.approx(np.mean(train))
    assert list(spec.label.binary_targets(pd.Series(labels))[:3]) == [1.0, 0.0, 0.0]


@pytest.mark.parametrize("transform_name", ["standardize", "log_standardize"])
def test_regression_target_is_standardized_on_train_and_inverts(spark, transform_name):
    prices = [120_000.0, 250_000.0, 310_000.0, 95_000.0, 180_000.0, 205_000.0, 400_000.0, 150_000.0]
    df = frame(spark, prices, "double")
    spec, _ = fit_spec(df, features(task="regression", transform=transform_name), [])
    train = np.array([p for i, p in enumerate(prices) if i % 4])
    shaped = np.log1p(train) if transform_name == "log_standardize" else train
    assert spec.label.mean == pytest.approx(shaped.mean()) and spec.label.std == pytest.approx(shaped.std())
    scaled = np.array([r["label"] for r in transform(df, spec).collect()], dtype=np.float64)
    assert abs(scaled[[i for i in range(8) if i % 4]].mean()) < 1e-5  # unit scale on train
    np.testing.assert_allclose(spec.label.to_original(scaled), prices, rtol=1e-5)  # float32 target
    np.testing.assert_allclose(spec.label.to_original(torch.tensor(scaled)).numpy(), prices, rtol=1e-5)


def test_log_transform_refuses_labels_at_or_below_minus_one(spark):
    df = frame(spark, [-5.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, -2.0], "double")
    with pytest.raises(DataError, match="transform=log_standardize needs a label above -1"):
        fit_spec(df, features(task="regression", transform="log_standardize"), [])


def domain_reasons(spark, labels, label_type: str, **label):
    """Cleaning's reasons per label value, with the classes resolved as prepare resolves them."""
    from pipeline.config.schema import CleaningConfig
    from pipeline.data.cleaning import tag_invalid
    from pipeline.data.label_domain import resolve_label_domain

    df = spark.createDataFrame([(i, v) for i, v in enumerate(labels)], f"id int, y {label_type}")
    config = features(**label).label
    domain = resolve_label_domain(df, config)
    tagged = tag_invalid(df, CleaningConfig(), config, True, label_domain=domain).orderBy("id").collect()
    return domain.classes, [r["_reason"] for r in tagged]


def test_stray_label_values_are_quarantined_with_the_classes(spark, caplog):
    labels = ["yes", "no", "maybe", "no", "yes", "no", None]
    with caplog.at_level("WARNING", logger="pipeline.data.label_domain"):
        classes, reasons = domain_reasons(spark, labels, "string", task="binary", positive="yes")
    assert classes == ("no", "yes")
    assert reasons == [None, None, "label 'maybe' not in ['no', 'yes']", None, None, None, "label y is null"]
    assert "'maybe' (1 rows)" in caplog.text

    _, reasons = domain_reasons(spark, [0, 1, 2, 1], "int", task="binary")
    assert reasons == [None, None, "label '2' not in ['0', '1']", None]

    declared = {"task": "multiclass", "classes": ["cat", "dog"]}
    assert domain_reasons(spark, ["dog", "cow", "cat"], "string", **declared)[1] == [
        None,
        "label 'cow' not in ['cat', 'dog']",
        None,
    ]
    classes, reasons = domain_reasons(spark, ["b", "a", "c", "a"], "string", task="multiclass")
    assert classes == ("a", "b", "c") and reasons == [None] * 4


def test_a_positive_value_that_never_appears_is_a_clear_error(spark):
    with pytest.raises(DataError, match=r"positive='Yes' never appears in label column 'y' \(values: 'yes' \(2 rows\)"):
        domain_reasons(spark, ["yes", "yes", "no"], "string", task="binary", positive="Yes")
