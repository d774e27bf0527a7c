"""features.images in Spark: fit per-channel pixel mean/std on the train split, write uint8 CHW pixels.

Decoding runs on the executors in pandas batches through pipeline/model/images.py, the function the registered
model calls at scoring time, so prepare and scoring produce the same pixels by construction.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from pipeline.config.feature_sections import ImageFeature
from pipeline.errors import DataError
from pipeline.model.images import CHANNELS
from pipeline.model.tensor_specs import ImageSpec


def fit_image_specs(train, images: list[ImageFeature]) -> list[ImageSpec]:
    """One pass over the train rows: per image feature and channel, the sum, sum of squares and count of pixels.

    The sums are of the uint8 pixel values as integers, so they are exact and the same whichever order Spark
    adds the partitions in; mean and std of pixel / 255 follow on the driver in exact rationals, rounded once.
    """
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    if not images:
        return []
    schema = T.StructType(
        [
            T.StructField("feature", T.StringType()),
            T.StructField("channel", T.IntegerType()),
            T.StructField("total", T.LongType()),
            T.StructField("squares", T.LongType()),
            T.StructField("pixels", T.LongType()),
        ]
    )
    settings = [(f.name, f.mode, f.size[0], f.size[1]) for f in images]
    # decimal(38,0) sums cannot overflow (a long would past 1.4e14 pixels per channel: 65025 per squared pixel)
    sums = (
        train.select(*[f.name for f in images])
        .mapInPandas(lambda batches: _moments(batches, settings), schema)
        .groupBy("feature", "channel")
        .agg(*[F.sum(F.col(c).cast("decimal(38,0)")).alias(c) for c in ("total", "squares", "pixels")])
        .collect()
    )
    moments = {(r["feature"], r["channel"]): (int(r["total"]), int(r["squares"]), int(r["pixels"])) for r in sums}
    specs = []
    for feature in images:
        means, stds = [], []
        for channel in range(CHANNELS[feature.mode]):
            total, squares, pixels = moments.get((feature.name, channel), (0, 0, 0))
            if not pixels:
                raise DataError(
                    f"features.images {feature.name!r}: no image in the train split. Fix: check the image source "
                    "and the split settings"
                )
            mean = Fraction(total, 255 * pixels)
            std = math.sqrt(max(Fraction(squares, 255 * 255 * pixels) - mean * mean, Fraction(0)))
            means.append(round(float(mean), 6))
            stds.append(round(std, 6) if std > 1e-6 else 1.0)
        specs.append(ImageSpec(feature.name, feature.mode, feature.size[0], feature.size[1], tuple(means), tuple(stds)))
    return specs


def _moments(batches, settings):
    """Executors: decode each batch once, accumulate per-channel integer sums of the uint8 pixels (exact)."""
    import pandas as pd

    from pipeline.model.images import decode_many

    totals: dict[tuple[str, int], list[int]] = {}
    for batch in batches:
        for name, mode, height, width in settings:
            pixels = decode_many(list(batch[name]), mode, height, width).astype(np.int64)
            for channel in range(pixels.shape[1]):
                values = pixels[:, channel]
                entry = totals.setdefault((name, channel), [0, 0, 0])
                entry[0] += int(values.sum())  # int64 per batch: overflows only past 1.4e14 pixels in one batch
                entry[1] += int(np.square(values).sum())
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
