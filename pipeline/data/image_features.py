"""features.images in Spark: fit per-channel pixel mean/std on the train split, write uint8 CHW pixels.

Decoding runs on the executors in pandas batches through pipeline/model/images.py, the function the registered
model calls at scoring time, so prepare and scoring produce the same pixels by construction.
"""

from __future__ import annotations

import math

import numpy as np

from pipeline.config.feature_sections import ImageFeature
from pipeline.errors import DataError
from pipeline.model.images import CHANNELS
from pipeline.model.tensor_specs import ImageSpec


def fit_image_specs(train, images: list[ImageFeature]) -> list[ImageSpec]:
    """One pass over the train rows: per image feature and channel, the sum, sum of squares and count of pixels."""
    from pyspark.sql import types as T

    if not images:
        return []
    schema = T.StructType(
        [
            T.StructField("feature", T.StringType()),
            T.StructField("channel", T.IntegerType()),
            T.StructField("total", T.DoubleType()),
            T.StructField("squares", T.DoubleType()),
            T.StructField("pixels", T.LongType()),
        ]
    )
    settings = [(f.name, f.mode, f.size[0], f.size[1]) for f in images]
    sums = (
        train.select(*[f.name for f in images])
        .mapInPandas(lambda batches: _moments(batches, settings), schema)
        .groupBy("feature", "channel")
        .sum("total", "squares", "pixels")
        .collect()
    )
    moments = {(r["feature"], r["channel"]): (r["sum(total)"], r["sum(squares)"], r["sum(pixels)"]) for r in sums}
    specs = []
    for feature in images:
        means, stds = [], []
        for channel in range(CHANNELS[feature.mode]):
            total, squares, pixels = moments.get((feature.name, channel), (0.0, 0.0, 0))
            if not pixels:
                raise DataError(
                    f"features.images {feature.name!r}: no image in the train split. Fix: check the image source "
                    "and the split settings"
                )
            mean = total / pixels
            std = math.sqrt(max(squares / pixels - mean * mean, 0.0))
            means.append(round(mean, 6))
            stds.append(round(std, 6) if std > 1e-6 else 1.0)
        specs.append(ImageSpec(feature.name, feature.mode, feature.size[0], feature.size[1], tuple(means), tuple(stds)))
    return specs


def _moments(batches, settings):
    """Executors: decode each batch once, accumulate per-channel moments of pixel / 255 (float64)."""
    import pandas as pd

    from pipeline.model.images import decode_many

    totals: dict[tuple[str, int], list[float]] = {}
    for batch in batches:
        for name, mode, height, width in settings:
            pixels = decode_many(list(batch[name]), mode, height, width).astype(np.float64) / 255.0
            for channel in range(pixels.shape[1]):
                values = pixels[:, channel]
                entry = totals.setdefault((name, channel), [0.0, 0.0, 0])
                entry[0] += float(values.sum())
                entry[1] += float(np.square(values).sum())
                entry[2] += values.size
    yield pd.DataFrame(
        [(name, channel, t, s, n) for (name, channel), (t, s, n) in totals.items()],
        columns=["feature", "channel", "total", "squares", "pixels"],
    )


def pixels_column(image: ImageSpec):
    """Spark column: the encoded image -> uint8 pixels, CHW, channels x height x width bytes (ImageSpec.column)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    mode, height, width = image.mode, image.height, image.width

    @F.pandas_udf(T.BinaryType())
    def to_pixels(values):
        import pandas as pd

        from pipeline.model.images import decode_many

        pixels = decode_many(list(values), mode, height, width)
        return pd.Series([row.tobytes() for row in pixels], index=values.index)

    return to_pixels(F.col(image.name)).alias(image.column)
