"""A dataset as arrays a framework takes: ``(X, y)`` from a stored table and its schema.

Images (a column of kind ``image``) decode from their PNG or JPEG bytes to one array of shape
``(N, H, W, C)``: uint8 as stored, or float32 scaled to [0, 1]; grey images get a channel axis
of 1 when ``channels`` is asked for. Tables give the numeric and boolean columns other than the
target, in schema order, as one float array. ``y`` is the target column as stored (integers stay
integers, labels stay strings), or None when there is no target.
"""

from __future__ import annotations

from collections.abc import Sequence
from io import BytesIO
from typing import TYPE_CHECKING, Literal

import numpy as np

from lepton.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

    from lepton.schemas import Column

__all__ = ["to_arrays"]

Channels = Literal["last", "first", "none"]


def to_arrays(
    frame: pd.DataFrame,
    schema: Sequence[Column],
    target: str | None,
    *,
    scale: bool = True,
    channels: Channels = "last",
) -> tuple[np.ndarray, np.ndarray | None]:
    """``(X, y)`` of ``frame``.

    Args:
        scale: images as float32 in [0, 1] (else uint8 as stored); tables as float32 (else
            float64).
        channels: where images keep their channel axis: ``last`` (N, H, W, C) as Keras and
            TensorFlow take them, ``first`` (N, C, H, W) as PyTorch does, ``none`` as decoded
            (no axis for grey images).

    Raises:
        DataError: images of different sizes, which no single array holds, or no column that
            makes an array (a text dataset).
    """
    y = frame[target].to_numpy() if target and target in frame else None
    image = next((c.name for c in schema if c.kind == "image" and c.name in frame), None)
    if image is not None:
        return _images(frame[image], scale, channels), y
    kinds = {c.name: c.kind for c in schema}
    features = [c for c in frame.columns if c != target and kinds.get(c) in ("numeric", "boolean")]
    if not features and len(frame.columns) > (target in frame):
        others = ", ".join(f"{c.name} ({c.kind})" for c in schema if c.name != target)
        raise DataError(
            f"the dataset has no numeric, boolean or image column to make an array of: {others}",
            fix="read it as a DataFrame with load_dataset() (text, for instance, stays text)",
        )
    return frame[features].to_numpy(dtype=np.float32 if scale else np.float64), y


def _images(column: pd.Series, scale: bool, channels: Channels) -> np.ndarray:
    from PIL import Image

    decoded = [np.asarray(Image.open(BytesIO(data))) for data in column]
    shapes = {a.shape for a in decoded}
    if len(shapes) > 1:
        raise DataError(
            f"the images have {len(shapes)} different shapes ({', '.join(map(str, sorted(shapes)[:3]))}"
            f"{', ...' if len(shapes) > 3 else ''}), which one array cannot hold",
            fix="resize them to one size first: lepton dataset transform NAME --resize WxH, or "
            "decode them yourself from load_dataset()",
        )
    images = np.stack(decoded) if decoded else np.zeros((0, 0, 0), dtype=np.uint8)
    if channels != "none" and images.ndim == 3:
        images = images[..., None]
    if channels == "first" and images.ndim == 4:
        images = np.moveaxis(images, -1, 1)
    return images.astype(np.float32) / 255.0 if scale else images
