"""The fitted FeatureSpec and the features do not depend on how the train rows are partitioned or ordered.

On a standalone cluster Spark merges partial aggregates in task-completion order, so any floating-point sum or
sketch merged in that order changes its last bits from run to run; here the arrangement of the same rows is
varied instead (one partition, seven, shuffled order), which changes the order of the same merges.
"""

from __future__ import annotations

import io
import random

import numpy as np
import pytest
from PIL import Image

from pipeline.config.feature_sections import FeaturesConfig, ImageFeature
from pipeline.data.features import fit_spec, transform
from pipeline.data.image_features import fit_image_specs
from pipeline.data.split import SPLIT

ROWS = 12_000  # over 5,000 train values, so percentile_approx's sketch compresses (it is exact below that)
SCHEMA = f"id long, x double, z double, c string, t string, y double, {SPLIT} string"
FEATURES = {
    "numeric": [{"name": "x"}, {"name": "z", "log1p": True, "clip": [-50.0, 1e6]}],
    "categorical": [{"name": "c", "top_k": 3}],  # five values with equal counts: the cut falls inside a tie
    "texts": [{"name": "t", "top_k": 4, "max_len": 3}],
    "label": {"column": "y", "task": "regression", "transform": "log_standardize"},
}


def rows() -> list[tuple]:
    rng = np.random.default_rng(7)
    x = rng.normal(5e4, 3e3, ROWS) * rng.choice([1.0, 1.0, 1.0, 1e-3], ROWS)
    z = rng.lognormal(3.0, 2.0, ROWS) * rng.choice([-1.0, 1.0], ROWS)
    y = rng.lognormal(12.0, 0.5, ROWS)
    words = ["red", "green", "blue", "cyan", "pink", "grey"]
    out = []
    for i in range(ROWS):
        text = " ".join(words[(i * k) % 6] for k in range(1, 1 + i % 4)) or None
        split = "train" if i % 10 < 8 else ("val" if i % 10 == 8 else "test")
        xi = None if i % 17 == 0 else float(x[i])
        out.append((i, xi, float(z[i]), "abcde"[i % 5], text, float(y[i]), split))
    return out


def arrangements(spark, data: list[tuple]) -> dict:
    """The same rows: in order in 1 and 7 partitions, shuffled in 1 and 3."""
    shuffled = list(data)
    random.Random(3).shuffle(shuffled)
    ordered = spark.createDataFrame(data, SCHEMA)
    mixed = spark.createDataFrame(shuffled, SCHEMA)
    return {
        "ordered/1": ordered.repartition(1),
        "ordered/7": ordered.repartition(7),
        "shuffled/1": mixed.coalesce(1),
        "shuffled/3": mixed.repartition(3),
    }


def feature_bits(df, spec) -> dict:
    """Every feature column as exact bits, rows sorted by id."""
    table = transform(df, spec, keep=("id",)).orderBy("id").toPandas()
    out = {}
    for column in table.columns:
        values = table[column]
        if values.dtype.kind == "f":
            out[column] = values.to_numpy(np.float32).view(np.uint32).tolist()
        else:
            out[column] = [list(v) if isinstance(v, np.ndarray) else v for v in values]
    return out


def test_spec_and_features_do_not_depend_on_partitioning_or_order(spark):
    data = rows()
    features = FeaturesConfig.model_validate(FEATURES)
    fitted = {name: fit_spec(df, features, ["id"]) for name, df in arrangements(spark, data).items()}
    specs = {name: spec.to_json().encode() for name, (spec, _) in fitted.items()}
    reference = specs["ordered/1"]
    for name, text in specs.items():
        assert text == reference, f"{name}: the spec differs from ordered/1"
    for name, (_, report) in fitted.items():
        assert report == fitted["ordered/1"][1], name

    spec = fitted["ordered/1"][0]
    base = feature_bits(arrangements(spark, data)["ordered/1"], spec)
    for name, df in arrangements(spark, data).items():
        assert feature_bits(df, fitted[name][0]) == base, f"{name}: features differ from ordered/1"

    # the statistics are still the right ones: exact lower median, moments to float64 accuracy
    train = [r for r in data if r[-1] == "train"]
    present = sorted(r[1] for r in train if r[1] is not None)
    x = spec.numeric[0]
    assert x.median == present[(len(present) + 1) // 2 - 1]
    filled = np.array([x.median if r[1] is None else r[1] for r in train])
    assert x.mean == pytest.approx(filled.mean(), rel=1e-12) and x.std == pytest.approx(filled.std(), rel=1e-12)
    shaped = np.log1p(np.array([r[5] for r in train]))
    assert spec.label.mean == pytest.approx(shaped.mean(), rel=1e-12)
    assert spec.label.std == pytest.approx(shaped.std(), rel=1e-12)
    assert spec.categorical[0].vocab == ("a", "b", "c")  # equal counts: ties break by value


@pytest.mark.parametrize("accuracy, bracket", [(20, 3 / 20), (20, 0.0)])
def test_exact_median_whatever_the_sketch_says(spark, monkeypatch, caplog, accuracy, bracket):
    """A coarse sketch answers differently per arrangement; a zero-width bracket misses the median (fallback)."""
    from pipeline.data import exact_stats

    monkeypatch.setattr(exact_stats, "ACCURACY", accuracy)
    monkeypatch.setattr(exact_stats, "BRACKET", bracket)
    data = rows()
    features = FeaturesConfig.model_validate({"numeric": [{"name": "x"}]})
    specs = {name: fit_spec(df, features, [])[0] for name, df in arrangements(spark, data).items()}
    assert len({spec.to_json() for spec in specs.values()}) == 1
    present = sorted(r[1] for r in data if r[-1] == "train" and r[1] is not None)
    assert specs["ordered/1"].numeric[0].median == present[(len(present) + 1) // 2 - 1]
    if bracket == 0.0:
        assert "outside percentile_approx's bracket" in caplog.text


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, "PNG")
    return buffer.getvalue()


def test_image_statistics_do_not_depend_on_partitioning(spark):
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (5, 5), dtype=np.uint8) for _ in range(60)]
    df = spark.createDataFrame([(i, png(p)) for i, p in enumerate(images)], "id long, img binary")
    feature = ImageFeature(name="img", mode="L", size=(5, 5))
    fitted = {n: fit_image_specs(df.repartition(n), [feature]) for n in (1, 4, 7)}
    assert fitted[4] == fitted[1] and fitted[7] == fitted[1]
    values = np.stack(images) / 255.0
    assert fitted[1][0].mean[0] == pytest.approx(values.mean(), abs=1e-6)
    assert fitted[1][0].std[0] == pytest.approx(values.std(), abs=1e-6)
