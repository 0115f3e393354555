"""Casting a column to another type, with errors that name the first value that does not fit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from lepton.errors import InvalidRequest

__all__ = ["Rows", "cast_values"]

Rows = npt.NDArray[np.int64]
"""Source row numbers of a batch's rows (filters drop some, so positions and rows differ)."""


class _BadValue(Exception):
    def __init__(self, index: int | None) -> None:
        self.index = index  # None: no value of this type can be cast


def cast_values(values: Any, to: str, column: str, rows: Rows) -> Any:
    """``values`` as type ``to``; a value that does not convert is an error naming the column,
    the value and its source row (``rows`` maps batch positions to source rows)."""
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if pa.types.is_floating(values.type):  # NaN is pandas' "missing": a null, not "nan" or an error
        values = pc.if_else(pc.is_nan(values), pa.scalar(None, values.type), values)
    try:
        return _CASTS[to](values)
    except _BadValue as bad:
        if bad.index is None:
            message = f"column {column!r} holds {values.type} values, which cannot become {to}"
        else:
            shown = repr(values[bad.index].as_py())
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            message = (
                f"cannot cast column {column!r} to {to}: value {shown} at row {rows[bad.index]} "
                "(counting from 0)"
            )
        raise InvalidRequest(
            message,
            fix=f"Fix or drop the row first, or cast {column!r} to a type that fits "
            "(string always works).",
        ) from None


_CAST_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, ValueError)


def _checked(values: Any, convert: Callable[[Any], Any]) -> Any:
    """``convert(values)``; on failure, the first value that fails, found by bisection."""

    def fails(prefix: int) -> bool:
        try:
            convert(values.slice(0, prefix))
            return False
        except _CAST_ERRORS:
            return True

    try:
        return convert(values)
    except _CAST_ERRORS:
        if fails(0):  # even no values fail: the type itself cannot be converted
            raise _BadValue(None) from None
    lo, hi = 0, len(values) - 1  # the prefix ending at hi fails; find the shortest that does
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if fails(mid + 1) else (mid + 1, hi)
    raise _BadValue(lo)


def _is_text(values: Any) -> bool:
    return bool(pa.types.is_string(values.type) or pa.types.is_large_string(values.type))


def _trimmed(values: Any) -> Any:
    return pc.utf8_trim_whitespace(values) if _is_text(values) else values


def _to_int(values: Any) -> Any:
    def convert(v: Any) -> Any:
        try:
            return pc.cast(_trimmed(v), pa.int64())  # safe: 1.5 fails instead of truncating
        except pa.ArrowInvalid:
            if not _is_text(v):
                raise
            return pc.cast(pc.cast(_trimmed(v), pa.float64()), pa.int64())  # "3.0" is an int

    return _checked(values, convert)


def _to_bool(values: Any) -> Any:
    if pa.types.is_boolean(values.type):
        return values
    if _is_text(values):
        text = pc.utf8_lower(_trimmed(values))
        true = pc.is_in(text, pa.array(["true", "1", "yes"]))
        false = pc.is_in(text, pa.array(["false", "0", "no"]))
    elif pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
        true, false = pc.equal(values, 1), pc.equal(values, 0)  # 2 is an error, not "truthy"
    else:
        raise _BadValue(None)
    ok = pc.fill_null(pc.or_(true, false), False).to_numpy(zero_copy_only=False)
    bad = np.flatnonzero(values.is_valid().to_numpy(zero_copy_only=False) & ~ok)
    if len(bad):
        raise _BadValue(int(bad[0]))
    return pc.if_else(values.is_valid(), true, pa.scalar(None, pa.bool_()))


def _to_datetime(values: Any) -> Any:
    if pa.types.is_timestamp(values.type):
        return values
    if pa.types.is_date(values.type):
        return pc.cast(values, pa.timestamp("us"))
    if not _is_text(values):
        raise _BadValue(None)
    # pandas reads every ISO 8601 form (date only, "T" or space, offsets); arrow rejects offsets
    # into a naive type. Offsets become UTC, so one column has one naive time scale.
    text = pd.Series(values.to_pylist(), dtype=object)
    parsed = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
    bad = np.flatnonzero(text.notna().to_numpy() & parsed.isna().to_numpy())
    if len(bad):
        raise _BadValue(int(bad[0]))
    return pa.array(parsed.dt.tz_convert(None), type=pa.timestamp("us"), from_pandas=True)


_CASTS: dict[str, Callable[[Any], Any]] = {
    "int": _to_int,
    "float": lambda v: _checked(v, lambda x: pc.cast(_trimmed(x), pa.float64())),
    "string": lambda v: _checked(v, lambda x: pc.cast(x, pa.string())),
    "bool": _to_bool,
    "datetime": _to_datetime,
    "category": lambda v: pc.dictionary_encode(_checked(v, lambda x: pc.cast(x, pa.string()))),
}
