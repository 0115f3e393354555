"""Image bytes in and out: PNG encoding of pixel arrays, and proof that uploaded images decode."""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

from lepton.data.formats.limits import Limits
from lepton.errors import DataError

__all__ = ["IMAGE_EXTENSIONS", "check_image", "encode_png"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


def encode_png(pixels: npt.NDArray[np.uint8]) -> bytes:
    """PNG bytes of one ``H x W`` (grayscale) or ``H x W x C`` (C = 1, 3, 4) uint8 image.

    PNG because it is lossless: a model trained on the stored table sees the exact pixels.
    """
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(out, format="PNG")
    return out.getvalue()


def check_image(data: bytes, where: str, limits: Limits) -> None:
    """Decode ``data`` fully, or raise `DataError` naming ``where``.

    The size is checked from the header before the pixels are decoded, so an image that
    declares a billion pixels costs nothing.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > limits.max_image_pixels:
                raise DataError(
                    f"{where} is {width}x{height} = {width * height:,} pixels; at most "
                    f"{limits.max_image_pixels:,} are allowed",
                    fix="Resize the image, or raise the image-size limit.",
                )
            image.load()
    except DataError:
        raise
    # Decoders for a dozen formats raise a dozen exception types on damaged input (OSError,
    # SyntaxError, struct.error, Pillow's DecompressionBombError...); all mean the same here.
    except Exception as e:
        # Pillow's "cannot identify image file <_io.BytesIO object at 0x...>" names nothing.
        detail = "not a known image format" if isinstance(e, UnidentifiedImageError) else e
        raise DataError(
            f"{where} is not a readable image: {detail}",
            fix="Open the file in an image viewer; re-export or remove it if it is damaged.",
        ) from e
