"""Encoded image files (PNG, JPEG, ...) -> fixed-shape uint8 pixels, with Pillow; why a file cannot be used.

One function decodes everywhere: in prepare's Spark tasks (checking files at read, writing the features Parquet),
and in the registered model (spark_udf on executors, `mlflow models serve`), so training and scoring see the same
pixels by construction. Plain Pillow + numpy: no Spark, no torch.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

CHANNELS = {"L": 1, "RGB": 3}
WIDE_GREY_MODES = ("I;16", "I;16L", "I;16B", "I")
# Pillow refuses (or warns about) larger images as possible decompression bombs; a warning becomes a reason.
MAX_PIXELS = 89_478_485


class ImageDecodeError(ValueError):
    """A file that is not a usable image; the message is the quarantine reason."""


@dataclass(frozen=True)
class ImageFacts:
    """What reading a file found: its size and mode before any conversion."""

    width: int
    height: int
    mode: str


def open_image(data: bytes | None, accept_modes: tuple[str, ...] = ()) -> tuple[Image.Image, ImageFacts]:
    """Fully decode `data` (a truncated file fails here, not later); `accept_modes` empty accepts any mode.

    Raises:
        ImageDecodeError: empty, undecodable or truncated data, too many pixels, or a mode not accepted.
    """
    if data is None:
        raise ImageDecodeError("missing image (null)")
    if len(data) == 0:
        raise ImageDecodeError("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageDecodeError(f"image larger than {MAX_PIXELS} pixels (possible decompression bomb)") from None
    # The reasons are fixed texts (no byte counts or object addresses), so quarantine reasons group well.
    except UnidentifiedImageError:
        raise ImageDecodeError("not an image file (format not recognised)") from None
    except OSError as exc:  # "image file is truncated (n bytes not processed)", broken data
        if "truncated" in str(exc).lower():  # "image file is truncated ...", JPEG: "Truncated File Read"
            raise ImageDecodeError("truncated image file") from None
        raise ImageDecodeError(f"corrupt image data ({type(exc).__name__})") from None
    except (ValueError, SyntaxError) as exc:  # a few plugins raise these on corrupt headers
        raise ImageDecodeError(f"corrupt image data ({type(exc).__name__})") from None
    facts = ImageFacts(image.width, image.height, image.mode)
    if accept_modes and image.mode not in accept_modes:
        raise ImageDecodeError(f"image mode {image.mode} is not one of the source's accept_modes {list(accept_modes)}")
    return image, facts


def to_pixels(image: Image.Image, mode: str, height: int, width: int) -> np.ndarray:
    """Convert to `mode`, resize (bilinear) to height x width, return uint8 [channels, height, width] (CHW)."""
    if image.mode in WIDE_GREY_MODES:
        # Pillow's convert("L") clips 16/32-bit grey values at 255 instead of scaling them: keep the top 8 bits.
        wide = np.asarray(image, dtype=np.uint32)
        image = Image.fromarray((np.minimum(wide, 65535) >> 8).astype(np.uint8), "L")
    if image.mode != mode:
        # Transparent pixels over white, as a viewer shows them (plain convert would keep the hidden colour).
        if "A" in image.getbands() or (image.mode == "P" and "transparency" in image.info):
            rgba = image.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            image = Image.alpha_composite(background, rgba)
        image = image.convert(mode)
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.BILINEAR)
    pixels = np.asarray(image, dtype=np.uint8)
    if pixels.ndim == 2:
        return pixels[np.newaxis]
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))


def decode(data: bytes | None, mode: str, height: int, width: int) -> np.ndarray:
    """Encoded file bytes -> uint8 [C, H, W]. Raises ImageDecodeError with the reason."""
    image, _ = open_image(data)
    return to_pixels(image, mode, height, width)


def decode_many(values, mode: str, height: int, width: int) -> np.ndarray:
    """A sequence of encoded files (bytes, or paths as str) -> uint8 [n, C, H, W].

    Raises:
        ImageDecodeError: naming the row (0-based) and the reason, for the first file that cannot be used.
    """
    out = np.empty((len(values), CHANNELS[mode], height, width), dtype=np.uint8)
    for row, value in enumerate(values):
        try:
            out[row] = decode(read_if_path(value), mode, height, width)
        except ImageDecodeError as exc:
            raise ImageDecodeError(f"image in row {row}: {exc}") from None
    return out


def read_if_path(value) -> bytes | None:
    """A str is a file path (local, or file:/ URI as Spark's binaryFile writes it); bytes are the file itself."""
    if isinstance(value, str):
        path = value.removeprefix("file://").removeprefix("file:")
        try:
            with open(path, "rb") as handle:
                return handle.read()
        except OSError as exc:
            raise ImageDecodeError(f"cannot read image file {value!r} ({exc.strerror})") from None
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    return value
