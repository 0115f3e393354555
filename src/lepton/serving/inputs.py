"""Model inputs from request bodies, checked against the model's signature.

The fast path is numpy only: an all-numeric table arrives as nested lists, becomes one float
array in a single ``np.asarray`` call, and its shape and dtype are checked in a few
comparisons; no pydantic, no per-value Python loop. Only when that fails is the input walked
value by value, to say exactly which row and column were wrong (422).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np

from lepton.errors import InvalidRequest

__all__ = ["Chunk", "InputSpec", "count_rows", "decode_image", "decode_json"]

_FIX = "send {'rows': [{column: value}]}, {'columns': {column: [values]}} or {'inputs': [[...]]}"


@dataclass(frozen=True)
class InputSpec:
    """What a model takes, from its signature: named columns, a tensor shape, or anything."""

    columns: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    """Per column: ``number``, ``bool``, ``string`` or ``datetime``."""
    shape: tuple[int, ...] | None = None
    dtype: str = "float32"
    pixel_range: tuple[float, float] | None = None
    """What black and white are in the model's input (``(0, 1)`` for images scaled as
    ``lepton.load_arrays`` gives them); None: the stored 0 to 255."""
    channels: str = "last"
    """``first`` for an image model that takes ``(C, H, W)``."""

    @property
    def numeric(self) -> bool:
        return bool(self.columns) and all(k == "number" for k in self.kinds)

    @classmethod
    def from_signature(cls, signature: dict[str, Any]) -> InputSpec:
        inputs = signature.get("inputs")
        if isinstance(inputs, list) and all(isinstance(c, dict) and "name" in c for c in inputs):
            return cls(
                columns=tuple(str(c["name"]) for c in inputs),
                kinds=tuple(_kind(str(c.get("dtype", "float64"))) for c in inputs),
            )
        if isinstance(inputs, dict) and isinstance(inputs.get("shape"), list):
            span = inputs.get("pixel_range")
            return cls(
                shape=tuple(int(d) for d in inputs["shape"]),
                dtype=str(inputs.get("dtype", "float32")),
                pixel_range=(float(span[0]), float(span[1]))
                if isinstance(span, list) and len(span) == 2
                else None,
                channels="first" if inputs.get("channels") == "first" else "last",
            )
        return cls()

    def describe(self) -> str:
        if self.columns:
            return ", ".join(self.columns)
        return f"shape [N, {', '.join(map(str, self.shape or ()))}]" if self.shape else "any"


def _kind(dtype: str) -> str:
    if dtype.startswith(("float", "int", "uint", "Float", "Int", "UInt", "timedelta")):
        return "number"
    if dtype in ("bool", "boolean"):
        return "bool"
    if dtype.startswith("datetime"):
        return "datetime"
    return "string"


@dataclass(frozen=True)
class Chunk:
    """One request's rows: a float matrix (numeric tables), a dict of column lists (mixed
    tables) or an array (tensors), and how many rows it holds."""

    rows: Any
    n: int


def count_rows(spec: InputSpec, doc: Any) -> int:
    """How many rows a parsed table body holds, read off its outer list before any value is
    looked at; 0 when that takes decoding (a tensor) or the form is wrong (`decode_json` then
    says how)."""
    if not isinstance(doc, dict) or spec.shape is not None:
        return 0
    if spec.columns and "rows" not in doc and isinstance(doc.get("columns"), dict):
        first = next(iter(doc["columns"].values()), None)
        return len(first) if isinstance(first, list) else 0
    rows = doc.get("rows", doc.get("inputs"))
    if not isinstance(rows, list):
        return 0
    return 1 if spec.columns and rows and not isinstance(rows[0], (list, dict)) else len(rows)


def decode_json(spec: InputSpec, doc: Any, *, bools: bool = True) -> Chunk:
    """The rows of a ``/predict`` JSON body (already parsed).

    ``bools``: whether the body may hold ``true``/``false`` (the caller looks at its bytes).
    numpy reads them as 1/0, so the fast paths are taken only when it cannot, and a bool in a
    numeric column is refused by the value-by-value check.
    """
    if not isinstance(doc, dict) or not doc.keys() & {"rows", "columns", "inputs"}:
        raise InvalidRequest(
            "the body must be a JSON object with rows, columns or inputs", fix=_FIX
        )
    if spec.shape is not None:
        return _tensor(spec, doc.get("inputs"), "inputs")
    if not spec.columns:
        raw = doc.get("inputs", doc.get("rows"))
        return Chunk(raw, len(raw) if isinstance(raw, list) else 1)
    fast = spec.numeric and not bools
    if "rows" in doc:
        return _rows(spec, doc["rows"], fast)
    if "columns" in doc:
        return _columns(spec, doc["columns"], fast)
    return _matrix(spec, doc["inputs"], fast)


def _array(values: Any) -> np.ndarray | None:
    """``values`` as one numpy array, or None when they are ragged (a list where a number
    belongs) or hold what numpy cannot take."""
    try:
        return np.asarray(values)
    except (ValueError, TypeError, OverflowError):
        return None


def _matrix(spec: InputSpec, rows: Any, fast: bool) -> Chunk:
    d = len(spec.columns)
    if fast:
        array = _array(rows) if isinstance(rows, list) else None
        if array is not None and array.ndim == 1 and len(array) == d and array.dtype.kind in "iuf":
            array = array[None]
        if (
            array is not None
            and array.ndim == 2
            and array.shape[1] == d
            and array.dtype.kind in "iuf"
        ):
            return Chunk(array.astype(np.float64, copy=False), len(array))
    if not isinstance(rows, list) or not rows:
        raise InvalidRequest("'inputs' must be a non-empty list of rows", fix=_FIX)
    if not isinstance(rows[0], list):
        rows = [rows]
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != d:
            got = len(row) if isinstance(row, list) else type(row).__name__
            raise InvalidRequest(
                f"inputs row {i} has {got} values; the model takes {d}: {spec.describe()}",
                fix="send one value per column, in that order, or send named rows",
            )
    return _checked(
        spec, {c: [row[j] for row in rows] for j, c in enumerate(spec.columns)}, len(rows)
    )


def _rows(spec: InputSpec, rows: Any, fast: bool) -> Chunk:
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        raise InvalidRequest("'rows' must be a non-empty list of objects", fix=_FIX)
    d = len(spec.columns)
    if fast and all(len(r) == d for r in rows):
        try:
            array = _array([[r[c] for c in spec.columns] for r in rows])
        except KeyError:
            array = None
        if array is not None and array.ndim == 2 and array.dtype.kind in "iuf":
            return Chunk(array.astype(np.float64, copy=False), len(rows))
    known = set(spec.columns)
    for i, row in enumerate(rows):
        missing = [c for c in spec.columns if c not in row]
        if missing:
            raise InvalidRequest(
                f"rows[{i}] lacks column {missing[0]!r}; the model takes: {spec.describe()}",
                fix="send every input column named in the model's signature",
            )
        extra = [c for c in row if c not in known]
        if extra:
            raise InvalidRequest(
                f"rows[{i}] has column {extra[0]!r}, which the model does not take; it takes: "
                f"{spec.describe()}",
                fix="send only the signature's columns",
            )
    return _checked(spec, {c: [r[c] for r in rows] for c in spec.columns}, len(rows))


def _columns(spec: InputSpec, columns: Any, fast: bool) -> Chunk:
    if not isinstance(columns, dict):
        raise InvalidRequest("'columns' must be an object of column: [values]", fix=_FIX)
    missing = [c for c in spec.columns if c not in columns]
    if missing:
        raise InvalidRequest(
            f"columns lack {missing[0]!r}; the model takes: {spec.describe()}",
            fix="send every input column named in the model's signature",
        )
    extra = [c for c in columns if c not in spec.columns]
    if extra:
        raise InvalidRequest(
            f"column {extra[0]!r} is not an input of the model; it takes: {spec.describe()}",
            fix="send only the signature's columns",
        )
    lengths = {c: len(v) if isinstance(v, list) else -1 for c, v in columns.items()}
    n = lengths[spec.columns[0]]
    for c in spec.columns:
        if lengths[c] < 1 or lengths[c] != n:
            raise InvalidRequest(
                f"column {c!r} has {lengths[c] if lengths[c] >= 0 else 'no list of'} values; "
                f"every column needs the same number (got {n} for {spec.columns[0]!r})",
                fix="send equally long lists of values",
            )
    if fast:
        array = _array([columns[c] for c in spec.columns])
        if array is not None and array.ndim == 2 and array.dtype.kind in "iuf":
            return Chunk(array.T.astype(np.float64), n)
    return _checked(spec, {c: list(columns[c]) for c in spec.columns}, n)


def _checked(spec: InputSpec, columns: dict[str, list[Any]], n: int) -> Chunk:
    """Value-by-value check; the error names the column and row."""
    for column, kind in zip(spec.columns, spec.kinds, strict=True):
        values = columns[column]
        for i, value in enumerate(values):
            if value is None:
                continue
            if kind == "number":  # not true/false: a flag sent where a number belongs
                ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            elif kind == "bool":
                ok = isinstance(value, bool)
            elif kind == "datetime":
                ok = isinstance(value, (str, int, float)) and not isinstance(value, bool)
            else:
                ok = isinstance(value, (str, int, float, bool))
                if ok and not isinstance(value, str):
                    values[i] = str(value)  # as pandas' astype(str): 3 -> "3", True -> "True"
            if not ok:
                wanted = {"number": "a number", "bool": "true or false"}.get(kind, "a string")
                raise InvalidRequest(
                    f"column {column!r} row {i}: expected {wanted}, got {_short(value)}",
                    fix=f"send {wanted} (or null) for {column!r}",
                )
    if spec.numeric:
        return Chunk(
            np.array([columns[c] for c in spec.columns], dtype=np.float64).T.reshape(n, -1), n
        )
    return Chunk(columns, n)


def _tensor(spec: InputSpec, data: Any, name: str) -> Chunk:
    if data is None:
        raise InvalidRequest(f"the body has no {name!r}", fix="send {'inputs': [example, ...]}")
    shape = spec.shape or ()
    try:
        array = np.asarray(data, dtype=np.dtype(spec.dtype))
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidRequest(
            f"{name!r} is not an array of {spec.dtype} ({str(exc)[:80]})",
            fix=f"send numbers that fit {spec.dtype}, nested as [N, {', '.join(map(str, shape))}]",
        ) from None
    if array.shape == shape:
        array = array[None]
    if array.shape[1:] != shape:
        raise InvalidRequest(
            f"{name!r} has shape {list(array.shape)}; the model takes [N, "
            f"{', '.join(map(str, shape))}]",
            fix="send a batch of examples of the signature's shape",
        )
    return Chunk(array, len(array))


def decode_image(spec: InputSpec, content: bytes, field: str) -> np.ndarray:
    """An uploaded image as one example of the model's shape (converted and resized)."""
    from PIL import Image, UnidentifiedImageError

    shape = spec.shape
    if shape is None or len(shape) not in (2, 3):
        raise InvalidRequest(
            f"file {field!r}: this model does not take images", fix="send JSON rows instead"
        )
    try:
        opened = Image.open(io.BytesIO(content))
        opened.load()
    except (UnidentifiedImageError, OSError):
        raise InvalidRequest(
            f"file {field!r} is not an image Pillow can read", fix="send a PNG or JPEG"
        ) from None
    first = spec.channels == "first" and len(shape) == 3
    height, width = shape[1:] if first else shape[:2]
    channels = 1 if len(shape) == 2 else shape[0] if first else shape[2]
    image = opened.convert("L" if channels == 1 else "RGB")
    if image.size != (width, height):
        image = image.resize((width, height))
    array = np.asarray(image)
    if spec.pixel_range is not None:
        low, high = spec.pixel_range
        array = low + array.astype(np.float64) * ((high - low) / 255.0)
    if first:
        array = array.reshape(height, width, channels).transpose(2, 0, 1)
    return array.astype(np.dtype(spec.dtype)).reshape(shape)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
