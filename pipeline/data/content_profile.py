"""What a profile measures of images and texts, as bucket numbers computed on the executors (pandas UDFs).

An image's width, height, channels (its mode: 1 L, 3 RGB, 4 RGBA ...) and brightness (mean grey level / 255); a
text's length in tokens and its out-of-vocabulary share (tokens outside the model's vocabulary, by the model's own
tokenizer, pipeline/model/text.py). Each becomes a derived numeric feature of the profile (`<column>.width`,
`<column>.tokens`, ...) with fixed bucket edges, so the reference (prepare) and every score batch bucket alike and
pipeline/monitoring/drift.py compares them as it compares numeric features. A null, or an image Pillow cannot
decode, is the missing bucket. Images are decoded once per profiled row (the profile's sample), never kept.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from pipeline.model.spec import FeatureSpec
from pipeline.model.text import TextVocab, tokenize

MISSING = -1  # numeric bucket of a null / NaN / infinite value (categorical nulls are index 0, the model's own)
SIZE_EDGES = (8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)  # pixels
BRIGHTNESS_EDGES = tuple(round(0.1 * i, 1) for i in range(1, 10))
TOKEN_EDGES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
OOV_EDGES = (0.001, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8)
IMAGE_MEASURES = ("width", "height", "channels", "brightness")
TEXT_MEASURES = ("tokens", "oov_share")


def bucket(values: np.ndarray, edges: tuple[float, ...]) -> np.ndarray:
    """How many edges each value reaches (0 .. len(edges)); MISSING for NaN."""
    values = np.asarray(values, dtype="float64")
    counted = (values[:, None] >= np.asarray(edges)[None, :]).sum(axis=1)
    return np.where(np.isnan(values), MISSING, counted).astype("int32")


def image_buckets(contents: pd.Series) -> pd.DataFrame:
    """Encoded image bytes -> the bucket of each measure (executors, Pillow)."""
    from PIL import Image

    measured = np.full((len(contents), len(IMAGE_MEASURES)), np.nan)
    for row, content in enumerate(contents):
        if content is None:
            continue
        try:
            with Image.open(io.BytesIO(bytes(content))) as image:
                grey = np.asarray(image.convert("L"), dtype="float64")
                measured[row] = (image.width, image.height, len(image.getbands()), grey.mean() / 255)
        except Exception:  # noqa: BLE001 - an undecodable file is the missing bucket (scoring quarantines it)
            continue
    edges = (SIZE_EDGES, SIZE_EDGES, (1, 2, 3, 4), BRIGHTNESS_EDGES)
    return pd.DataFrame({m: bucket(measured[:, i], edges[i]) for i, m in enumerate(IMAGE_MEASURES)})


def text_buckets(texts: pd.Series, vocab: TextVocab) -> pd.DataFrame:
    """Texts -> buckets of the token count and of the out-of-vocabulary share (executors)."""
    index = vocab.index
    counts = np.full(len(texts), np.nan)
    oov = np.full(len(texts), np.nan)
    present = texts.notna().to_numpy()
    for row, tokens in enumerate(tokenize(texts, vocab.level, vocab.lowercase)):
        if not present[row]:
            continue
        counts[row] = len(tokens)
        if tokens:
            oov[row] = sum(token not in index for token in tokens) / len(tokens)
    return pd.DataFrame({"tokens": bucket(counts, TOKEN_EDGES), "oov_share": bucket(oov, OOV_EDGES)})


def derived_buckets(spec: FeatureSpec) -> list[tuple[str, object]]:
    """(feature name, Spark int column of its bucket) for every image and text measure of the spec."""
    from pyspark.sql import functions as F
    from pyspark.sql.functions import pandas_udf

    derived = []
    for image in spec.images:
        schema = ", ".join(f"{m} int" for m in IMAGE_MEASURES)
        measures = pandas_udf(image_buckets, schema)(F.col(image.name))
        derived += [(f"{image.name}.{m}", measures[m]) for m in IMAGE_MEASURES]
    for text in spec.texts:
        schema = ", ".join(f"{m} int" for m in TEXT_MEASURES)
        measures = pandas_udf(_text_measure(text), schema)(F.col(text.name))
        derived += [(f"{text.name}.{m}", measures[m]) for m in TEXT_MEASURES]
    return derived


def _text_measure(vocab: TextVocab):
    """A one-argument function of the texts (what pandas_udf wraps), bound to one text feature's vocabulary."""

    def measure(texts: pd.Series) -> pd.DataFrame:
        return text_buckets(texts, vocab)

    return measure
