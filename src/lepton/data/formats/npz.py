"""NumPy ``.npz`` archives, read without ever unpickling.

Arrays share a first dimension N (one row per example) and become columns:

- 1-D ``(N,)``: a column named by the array's key (``y`` stays ``y``).
- 2-D ``(N, F)``: columns ``key_0 .. key_{F-1}``.
- 3-D/4-D uint8 ``(N, H, W[, C])``: PNG images, in a column ``image`` when there is one such
  array and in one named by its key when there are several.

An ``.npz`` is a zip of ``.npy`` files, so it gets the archive checks (`SafeZip`). Each array's
header is parsed on its own first: an object array is refused before NumPy sees its data, and a
header that declares more bytes than the entry holds cannot make NumPy allocate them. Rows are
then read straight off each entry's stream a batch at a time, so a 2 GB array never sits in
memory whole; only Fortran-ordered arrays, whose rows are not contiguous, are loaded whole with
``np.load(..., allow_pickle=False)``.
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]

from lepton.data.formats.archive import EntryReader, SafeZip
from lepton.data.formats.images import encode_png
from lepton.data.formats.limits import Limits
from lepton.errors import DataError

__all__ = ["read_npz"]

_MAX_BATCH_ROWS = 65_536
_SAVE_FIX = "Save plain numeric or string arrays with np.savez(path, x=..., y=...)."


@dataclass
class _Array:
    key: str
    info: zipfile.ZipInfo
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran: bool
    where: str
    offset: int  # where the data starts within the entry, after the header

    @property
    def row_bytes(self) -> int:
        return math.prod(self.shape[1:]) * self.dtype.itemsize

    @property
    def is_image(self) -> bool:
        return len(self.shape) in (3, 4)


def _header(archive: SafeZip, info: zipfile.ZipInfo) -> _Array:
    """The array's description, checked."""
    where = archive.where(info.filename)
    with archive.open(info) as entry:
        try:
            version = np.lib.format.read_magic(entry)
            read = np.lib.format.read_array_header_1_0
            if version != (1, 0):
                read = np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read(entry)
        except ValueError as e:
            raise DataError(f"{where} is not a NumPy .npy array: {e}", fix=_SAVE_FIX) from e
        offset = entry.tell()
    key = info.filename[: -len(".npy")]
    array = _Array(key, info, tuple(shape), dtype, fortran, where, offset)
    if dtype.hasobject:
        raise DataError(
            f"{where} holds Python objects (dtype {dtype}); uploads are never unpickled",
            fix="Convert it to a numeric or string array (e.g. x.astype(np.float32)) and save again.",
        )
    if dtype.kind in "cVO" or dtype.fields:
        raise DataError(f"{where} has dtype {dtype}, which has no table column type", fix=_SAVE_FIX)
    if not shape:
        raise DataError(
            f"{where} is a scalar; every array needs one row per example", fix=_SAVE_FIX
        )
    if len(shape) > 4:
        raise DataError(
            f"{where} has {len(shape)} dimensions; at most 4 are allowed", fix=_SAVE_FIX
        )
    if array.is_image and (dtype != np.uint8 or (len(shape) == 4 and shape[3] not in (1, 3, 4))):
        raise DataError(
            f"{where} has shape {shape} and dtype {dtype}; images must be uint8 with shape "
            "(N, H, W) or (N, H, W, C) where C is 1, 3 or 4",
            fix="Scale images to 0-255 and save them with .astype(np.uint8), or flatten "
            "features to 2-D (N, F).",
        )
    if offset + math.prod(shape) * dtype.itemsize != info.file_size:
        raise DataError(
            f"{where} declares shape {shape} of {dtype} but holds "
            f"{info.file_size - offset:,} bytes of data",
            fix="The array was cut short or altered; save it again.",
        )
    return array


def _names(arrays: list[_Array]) -> list[list[str]]:
    """Column names for each array."""
    images = sum(a.is_image for a in arrays)
    names: list[list[str]] = []
    for a in arrays:
        if a.is_image:
            names.append(["image" if images == 1 else a.key])
        elif len(a.shape) == 2:
            names.append([f"{a.key}_{i}" for i in range(a.shape[1])])
        else:
            names.append([a.key])
    return names


def _columns(array: _Array, rows: np.ndarray) -> list[pa.Array]:
    if not rows.dtype.isnative:
        rows = rows.astype(rows.dtype.newbyteorder("="))
    if rows.dtype == np.float16:
        rows = rows.astype(np.float32)  # Parquet readers widely lack half floats
    if array.is_image:
        return [pa.array([encode_png(image) for image in rows], pa.binary())]
    if rows.ndim == 2:
        return [pa.array(np.ascontiguousarray(rows[:, i])) for i in range(rows.shape[1])]
    return [pa.array(rows)]


class _Rows:
    """Consecutive rows of one array: off its entry's stream, or sliced from a loaded copy."""

    def __init__(self, array: _Array, path: Path, archive: SafeZip, stack: ExitStack) -> None:
        self.array = array
        self._stream: EntryReader | None = None
        self._loaded = np.empty(0)
        self._at = 0
        if array.fortran:
            with np.load(path, allow_pickle=False) as npz:
                self._loaded = npz[array.key]
        else:
            self._stream = stack.enter_context(archive.open(array.info))
            self._stream.read(array.offset)

    def take(self, n: int) -> np.ndarray:
        if self._stream is None:
            rows = self._loaded[self._at : self._at + n]
        else:
            want = n * self.array.row_bytes
            data = self._stream.read(want)
            if len(data) != want:
                raise DataError(f"{self.array.where} ended early", fix=_SAVE_FIX)
            rows = np.frombuffer(data, self.array.dtype).reshape((n, *self.array.shape[1:]))
        self._at += n
        return rows


def read_npz(
    path: Path, source_name: str, limits: Limits, block_size: int
) -> Iterator[pa.RecordBatch]:
    """Batches of the columns described in the module docstring."""
    with SafeZip(path, source_name, limits) as archive, ExitStack() as stack:
        arrays: list[_Array] = []
        for info in archive.files():
            if not info.filename.endswith(".npy"):
                raise DataError(
                    f"{archive.where(info.filename)} is not a .npy array", fix=_SAVE_FIX
                )
            arrays.append(_header(archive, info))
        if not arrays:
            raise DataError(f"{source_name} holds no arrays", fix=_SAVE_FIX)
        counts = {a.key: a.shape[0] for a in arrays}
        if len(set(counts.values())) > 1:
            listed = ", ".join(f"{k!r} has {n:,}" for k, n in counts.items())
            raise DataError(
                f"{source_name}: arrays differ in their first dimension (rows): {listed}",
                fix="Every array needs one row per example: give them the same first dimension.",
            )
        names = [n for group in _names(arrays) for n in group]
        total = arrays[0].shape[0]
        per_batch = max(
            1, min(_MAX_BATCH_ROWS, block_size // max(1, sum(a.row_bytes for a in arrays)))
        )
        readers = [_Rows(a, path, archive, stack) for a in arrays]
        for start in range(0, total, per_batch):
            n = min(per_batch, total - start)
            columns = [c for r in readers for c in _columns(r.array, r.take(n))]
            yield pa.record_batch(columns, names=names)
