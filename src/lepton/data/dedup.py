"""Keeping the first of identical rows while streaming: 128-bit row hashes, kept sorted."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["SeenRows", "row_keys"]

_HASH_KEYS = ("lepton-dedup-k1!", "lepton-dedup-k2!")  # siphash keys: exactly 16 bytes each
_FNV_PRIME = np.uint64(0x100000001B3)
_NULL_HASH = np.uint64(0x9E3779B97F4A7C15)  # any fixed value: a null equals only a null
_FIXED_WIDTH = (
    pa.types.is_integer,
    pa.types.is_boolean,
    pa.types.is_timestamp,
    pa.types.is_date,
    pa.types.is_time,
    pa.types.is_duration,
)


def row_keys(table: Any) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
    """A 128-bit hash per row: two 64-bit row hashes under independent keys.

    For n distinct rows the chance that any two share both halves is about n^2 / 2^129: 1e-21 for
    a billion rows, far below the odds of a disk error.
    """
    high, low = (np.zeros(table.num_rows, dtype=np.uint64) for _ in _HASH_KEYS)
    for column in table.columns:
        values = column.combine_chunks()
        high = (high ^ _column_hash(values, _HASH_KEYS[0])) * _FNV_PRIME  # order-sensitive mix
        low = (low ^ _column_hash(values, _HASH_KEYS[1])) * _FNV_PRIME
    return high, low


def _column_hash(values: Any, key: str) -> npt.NDArray[np.uint64]:
    """Keyed SipHash of each value; the same value hashes the same in every batch.

    Nulls are filled before converting, because an int column with a null comes out of
    ``to_numpy`` as float64, and 1 would then hash differently from the 1 of a batch without one.
    """
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    kind, valid = values.type, values.is_valid().to_numpy(zero_copy_only=False)
    if pa.types.is_floating(kind):
        data = values.to_numpy(zero_copy_only=False)
        valid &= ~np.isnan(data)  # NaN is missing, as in drop_nulls
        data = np.where(valid, data + 0.0, 0.0).astype(data.dtype)  # + 0.0 turns -0.0 into 0.0
    elif any(is_(kind) for is_ in _FIXED_WIDTH):
        zero = pa.scalar(False if pa.types.is_boolean(kind) else 0, type=kind)
        data = pc.fill_null(values, zero).to_numpy(zero_copy_only=False)
    elif (
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
    ):
        data = values.to_numpy(zero_copy_only=False)
    else:  # lists, structs, decimals: hash their printed form
        data = np.array([repr(v) for v in values.to_pylist()], dtype=object)
    hashed = pd.util.hash_array(data, hash_key=key)
    return np.where(valid, hashed, _NULL_HASH).astype(np.uint64)


class SeenRows:
    """Hashes of the rows kept so far: sorted runs of (high, low) uint64 pairs, 16 bytes a row.

    Runs merge like a binary counter, so a batch is checked against O(log n) sorted arrays by
    binary search on the high half (3x faster end to end than searching 16-byte strings, on 2M
    rows). A Python set of 128-bit ints would cost ~75 bytes a row.
    """

    def __init__(self) -> None:
        self._runs: list[tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]] = []

    def keep_first(
        self, keys: tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]
    ) -> npt.NDArray[np.bool_]:
        high, low = keys
        keep = np.zeros(len(high), dtype=bool)
        pairs = np.ascontiguousarray(np.column_stack([high, low])).view("S16").ravel()
        keep[np.unique(pairs, return_index=True)[1]] = True  # first occurrence within the batch
        order = np.argsort(high)  # sorted needles: numpy's binary search reuses the last bound
        for run_high, run_low in self._runs:
            start = np.empty(len(high), dtype=np.intp)
            start[order] = np.searchsorted(run_high, high[order])
            at = np.minimum(start, len(run_high) - 1)
            keep &= ~((run_high[at] == high) & (run_low[at] == low))
            # Two kept rows with equal high halves (odds ~n^2 / 2^65): compare all of them.
            nxt = np.minimum(start + 1, len(run_high) - 1)
            for i in np.flatnonzero((run_high[at] == high) & (run_high[nxt] == high) & keep):
                stop = np.searchsorted(run_high, high[i], side="right")
                keep[i] = not bool(np.any(run_low[start[i] : stop] == low[i]))
        if keep.any():
            self._runs.append(_sorted(high[keep], low[keep]))
        while len(self._runs) > 1 and len(self._runs[-2][0]) <= len(self._runs[-1][0]):
            (h2, l2), (h1, l1) = self._runs.pop(), self._runs.pop()
            self._runs.append(_sorted(np.concatenate([h1, h2]), np.concatenate([l1, l2])))
        return keep


def _sorted(
    high: npt.NDArray[np.uint64], low: npt.NDArray[np.uint64]
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
    order = np.lexsort((low, high))
    return high[order], low[order]
