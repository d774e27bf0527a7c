"""Image files and text through prepare: every unusable file quarantined with its reason, and the features
Parquet holding exactly what the registered model's pandas path computes (parity)."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipeline.config.load import load_config
from pipeline.config.schema import SourceConfig
from pipeline.data.sources import load_source
from pipeline.errors import ConfigError, DataError
from pipeline.layout import Layout
from tests.helpers import run_prepare


def png(pixels: np.ndarray, mode: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode=mode).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """Two classes of good 6x6 grayscale PNGs (one of them 10x12, resized by prepare) and one file per failure."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for label in ("cat", "dog"):
        (root / label).mkdir()
        for i in range(12):
            size = (10, 12) if i == 0 else (6, 6)
            (root / label / f"{label}{i:02d}.png").write_bytes(png(rng.integers(0, 256, size, dtype=np.uint8), "L"))
    good = png(rng.integers(0, 256, (6, 6), dtype=np.uint8), "L")
    (root / "cat" / "empty.png").write_bytes(b"")
    (root / "cat" / "notes.png").write_bytes(b"these are not pixels")
    (root / "dog" / "cut.png").write_bytes(good[: len(good) // 2])
    (root / "dog" / "colour.png").write_bytes(png(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8), "RGB"))
    (root / "dog" / "readme.txt").write_bytes(b"skipped by the glob filter")
    return root


EXPECTED_REASONS = {
    "empty.png": "image: empty file (0 bytes)",
    "notes.png": "image: not an image file (format not recognised)",
    "cut.png": "image: truncated image file",
    "colour.png": "image: image mode RGB is not one of the source's accept_modes ['L']",
}


def image_source(path, **extra) -> SourceConfig:
    return SourceConfig(
        name="pics",
        format="image",
        path=str(path),
        options={"pathGlobFilter": "*.png"},
        image={"accept_modes": ["L"]},
        primary=True,
        **extra,
    )


def test_every_unusable_file_is_quarantined_with_its_reason(spark, image_folder):
    loaded = load_source(spark, image_source(image_folder), max_string_length=100)
    bad = {r["_record"].rsplit("/", 1)[-1]: r["_reason"] for r in loaded.bad.collect()}
    assert bad == EXPECTED_REASONS
    valid = loaded.valid.toPandas()
    assert len(valid) == 24 and loaded.tagged.count() == 24 + 4  # each .png file lands once; readme.txt is filtered
    assert set(valid["folder"]) == {"cat", "dog"} and set(valid["mode"]) == {"L"}
    big = valid[valid["file"] == "cat00.png"].iloc[0]
    assert (big["height"], big["width"]) == (10, 12)
    assert list(valid.columns) == ["path", "file", "folder", "content", "width", "height", "mode"]


def test_a_path_without_files_is_a_clear_error(spark, tmp_path):
    with pytest.raises(DataError, match="matches no file"):
        load_source(spark, image_source(tmp_path / "nothing-here"), max_string_length=100)


def test_image_sources_take_no_schema_and_tabular_ones_need_one():
    with pytest.raises(ValueError, match="columns are fixed"):
        image_source("x", schema={"a": "int"})
    with pytest.raises(ValueError, match="needs a schema"):
        SourceConfig(name="t", format="csv", path="x.csv")


def image_config(tmp_path, folder, *more: str):
    return load_config(
        [],
        [
            f"work_dir={tmp_path}",
            "data.sources=[{name: pics, primary: true, format: image, path: "
            f"'{folder}', options: {{pathGlobFilter: '*.png'}}, image: {{accept_modes: [L]}}}}]",
            "data.key_columns=[path]",
            "features.images=[{name: content, mode: L, size: [6, 6]}]",
            "features.label={column: folder, task: multiclass}",
            "split={method: hash, key: file, val_fraction: 0.2, test_fraction: 0.2}",
            "prepare.output_files=2",
            "data.max_quarantine_fraction=1",  # the folder plants 3 unreadable files among 28
            *more,
        ],
    )


def read_split(layout: Layout, split: str) -> pd.DataFrame:
    return pq.read_table(layout.prepared.features(split)).to_pandas()


def test_prepare_writes_the_pixels_the_model_computes(spark, tmp_path, image_folder):
    config = image_config(tmp_path, image_folder)
    result = run_prepare(spark, config)
    counts = result.report.counts
    assert (counts.input_rows, counts.clean_rows, counts.quarantined_rows) == (28, 24, 4) and counts.reconciled
    reasons = {r["reason"] for r in result.report.quarantine_reasons}
    assert reasons == set(EXPECTED_REASONS.values())

    spec, layout = result.spec, Layout.from_config(config)
    (image,) = spec.images
    assert (image.mode, image.shape, spec.input_schema["content"]) == ("L", (1, 6, 6), "binary")
    clean = spark.read.parquet(layout.prepared.clean_dir).toPandas()
    expected = spec.transform_images(clean)["img__content"]  # the registered model's decoding of the same files
    by_hash = {bytes(row.tobytes()): label for row, label in zip(expected, clean["folder"], strict=True)}
    written = pd.concat([read_split(layout, s) for s in ("train", "val", "test")])
    assert len(written) == 24
    for pixels, label in zip(written["img__content"], written["label"], strict=True):
        assert spec.label.classes[label] == by_hash[pixels]  # identical bytes, and the label that file has

    train = read_split(layout, "train")
    values = np.stack([np.frombuffer(b, dtype=np.uint8) for b in train["img__content"]]) / 255.0
    assert image.mean[0] == pytest.approx(values.mean(), abs=1e-6)
    assert image.std[0] == pytest.approx(values.std(), abs=1e-6)


def test_text_features_in_parquet_equal_the_models_ids(spark, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    texts = ["Great film, truly great!", "boring", None, "Ünïcode café ﬁlm", "great GREAT great plot twist"] * 8
    rows = pd.DataFrame({"id": [f"r{i}" for i in range(len(texts))], "text": texts, "label": ["a", "b"] * 20})
    rows.to_json(raw / "t.jsonl", orient="records", lines=True)
    config = load_config(
        [],
        [
            f"work_dir={tmp_path / 'work'}",
            f"data.sources=[{{name: t, primary: true, format: json, path: '{raw}', "
            "schema: {id: string, text: string, label: string}}]",
            "data.key_columns=[id]",
            "features.texts=[{name: text, top_k: 5, max_len: 4}]",
            "features.label={column: label, task: binary, positive: a}",
            "split={method: hash, key: id, val_fraction: 0.2, test_fraction: 0.2}",
            "prepare.output_files=1",
        ],
    )
    result = run_prepare(spark, config)
    (vocab,) = result.spec.texts
    assert vocab.vocab[0] == "great" and len(vocab.vocab) == 5
    layout = Layout.from_config(config)
    clean = spark.read.parquet(layout.prepared.clean_dir).toPandas().sort_values("id")
    expected = dict(zip(clean["id"], result.spec.transform_texts(clean)["tok__text"].tolist(), strict=True))
    written = pd.concat([read_split(layout, s) for s in ("train", "val", "test")])
    assert len(written) == len(clean) == 40
    observed = sorted(tuple(ids) for ids in written["tok__text"])
    assert observed == sorted(tuple(ids) for ids in expected.values())
    assert (0, 0, 0, 0) in observed  # the null text: padding only


def test_reserved_and_repeated_tensor_names_are_rejected(tmp_path, image_folder):
    with pytest.raises(ConfigError, match="names a tensor of tabular features"):
        image_config(tmp_path, image_folder, "features.images=[{name: numeric}]")
    with pytest.raises(ConfigError, match="appear more than once"):
        image_config(tmp_path, image_folder, "features.texts=[{name: content}]")


def test_array_columns_pass_through_and_bad_lengths_are_quarantined(spark, tmp_path):
    rng = np.random.default_rng(1)
    vectors = [rng.normal(size=4).astype(np.float32).tolist() for _ in range(40)]
    vectors[3] = [1.0, 2.0]  # too short
    vectors[5] = [1.0, None, 2.0, 3.0]  # a null inside
    vectors[7] = [1.0, float("nan"), 2.0, 3.0]
    vectors[9] = None
    table = pa.table(
        {
            "id": [f"r{i}" for i in range(40)],
            "emb": pa.array(vectors, type=pa.list_(pa.float64())),
            "y": [i % 2 for i in range(40)],
        }
    )
    (tmp_path / "raw").mkdir()
    pq.write_table(table, tmp_path / "raw" / "part.parquet")
    config = load_config(
        [],
        [
            f"work_dir={tmp_path / 'work'}",
            f"data.sources=[{{name: v, primary: true, format: parquet, path: '{tmp_path / 'raw'}', "
            "schema: {id: string, emb: 'array<float>', y: int}}]",
            "data.key_columns=[id]",
            "features.arrays=[{name: emb, length: 4}]",
            "features.label={column: y, task: binary}",
            "split={method: hash, key: id, val_fraction: 0.2, test_fraction: 0.2}",
            "prepare.output_files=1",
        ],
    )
    result = run_prepare(spark, config)
    reasons = {r["reason"] for r in result.report.quarantine_reasons}
    assert reasons == {"emb: array length 2, expected 4", "emb: null, NaN or infinite value", "emb is null"}
    assert (result.report.counts.clean_rows, result.report.counts.quarantined_rows) == (36, 4)
    assert result.spec.input_schema["emb"] == "array<float>"
    layout = Layout.from_config(config)
    written = pd.concat([read_split(layout, s) for s in ("train", "val", "test")])
    clean = spark.read.parquet(layout.prepared.clean_dir).toPandas()
    expected = result.spec.transform_arrays(clean)["arr__emb"]
    assert sorted(map(tuple, np.stack(written["arr__emb"]).tolist())) == sorted(map(tuple, expected.tolist()))


def test_moving_the_image_folder_changes_no_feature_file(spark, tmp_path, image_folder):
    copies = []
    for name in ("here", "elsewhere/deeper"):
        folder = tmp_path / "data" / name
        shutil.copytree(image_folder, folder)
        result = run_prepare(spark, image_config(tmp_path / "work" / name.replace("/", "-"), folder))
        layout = Layout.from_config(image_config(tmp_path / "work" / name.replace("/", "-"), folder))
        copies.append([read_split(layout, "train")["img__content"].tolist(), result.spec.images])
    assert copies[0] == copies[1]  # same rows in the same order, same fitted statistics
