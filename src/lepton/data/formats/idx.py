"""IDX files (the MNIST format): images and labels, gzipped or not, alone or zipped together.

An IDX file is a 4-byte magic (two zero bytes, a type code, the number of dimensions), one
big-endian uint32 per dimension, then the values. Lepton reads the two kinds MNIST uses:
images ``0x00000803`` (uint8, N x H x W) and labels ``0x00000801`` (uint8, N). The table has
``image`` (PNG bytes, grayscale) and ``label`` (int64) for whichever files are present.

Images are read 1000 at a time, so 60,000 MNIST images never sit in memory at once.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]

from lepton.data.formats.archive import EntryReader, SafeZip
from lepton.data.formats.images import encode_png
from lepton.data.formats.limits import RATIO_FLOOR, Limits
from lepton.errors import DataError

__all__ = ["IDX_MAGICS", "read_idx"]

_IMAGES = 0x00000803
_LABELS = 0x00000801
IDX_MAGICS = (_IMAGES.to_bytes(4, "big"), _LABELS.to_bytes(4, "big"))
_GZIP = b"\x1f\x8b"
_BATCH_ROWS = 1000
_FIX = (
    "Push the files as published, e.g. t10k-images-idx3-ubyte.gz, or both the images and the "
    "labels file in one zip."
)


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


@dataclass
class _Idx:
    """One opened IDX file whose header has been read and checked."""

    kind: str  # "images" or "labels"
    count: int
    shape: tuple[int, ...]  # of one item: (H, W) for images, () for labels
    stream: _Readable
    where: str

    @property
    def item_bytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


def _read(stream: _Readable, n: int, where: str) -> bytes:
    try:
        return stream.read(n)
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise DataError(
            f"{where} is a truncated or corrupt gzip file: {e}",
            fix="Download or compress the file again and re-push it.",
        ) from e


def _open(
    stream: _Readable, where: str, limits: Limits, *, size: int | None, packed: int | None
) -> _Idx | None:
    """Read and check the header; None when the stream is not IDX at all.

    ``size`` is the uncompressed length when known (a plain file), ``packed`` the compressed
    one (a gzip file), for the truncation and ratio checks.
    """
    magic = _read(stream, 4, where)
    if magic not in IDX_MAGICS:
        return None
    ndim = magic[3]
    header = _read(stream, 4 * ndim, where)
    if len(header) < 4 * ndim:
        raise DataError(f"{where} is truncated inside its header", fix=_FIX)
    dims = struct.unpack(f">{ndim}I", header)
    kind = "images" if magic == IDX_MAGICS[0] else "labels"
    idx = _Idx(kind, dims[0], tuple(dims[1:]), stream, where)
    if kind == "images" and (0 in idx.shape or idx.item_bytes > limits.max_image_pixels):
        raise DataError(
            f"{where} declares images of {idx.shape[0]}x{idx.shape[1]} pixels; 1 to "
            f"{limits.max_image_pixels:,} pixels are allowed",
            fix=_FIX,
        )
    data = idx.count * idx.item_bytes
    if data > limits.max_uncompressed_bytes:
        raise DataError(
            f"{where} declares {data:,} bytes of {kind}; at most "
            f"{limits.max_uncompressed_bytes:,} are allowed",
            fix="Split the file, or raise the size limit.",
        )
    if packed is not None and data > RATIO_FLOOR and data / max(packed, 1) > limits.max_ratio:
        raise DataError(
            f"{where} expands {data / max(packed, 1):,.0f}-fold; at most "
            f"{limits.max_ratio:,.0f}-fold is allowed",
            fix="This looks like a gzip bomb; push the real file, or raise the ratio limit.",
        )
    expected = 4 + 4 * ndim + data
    if size is not None and size != expected:
        what = f"{idx.count:,} {kind}" + (f" of {idx.shape[0]}x{idx.shape[1]}" if idx.shape else "")
        state = "is truncated" if size < expected else "is longer than its header says"
        raise DataError(
            f"{where} {state}: the header declares {what}, {expected:,} bytes in all, "
            f"but the file holds {size:,} bytes",
            fix=_FIX,
        )
    return idx


def _take(idx: _Idx, rows: int) -> np.ndarray:
    want = rows * idx.item_bytes
    data = _read(idx.stream, want, idx.where)
    if len(data) < want:
        raise DataError(
            f"{idx.where} is truncated: expected {want:,} more bytes of {idx.kind}, got "
            f"{len(data):,}",
            fix=_FIX,
        )
    return np.frombuffer(data, dtype=np.uint8).reshape((rows, *idx.shape))


def _batches(images: _Idx | None, labels: _Idx | None) -> Iterator[pa.RecordBatch]:
    present = [f for f in (images, labels) if f is not None]
    if images is not None and labels is not None and images.count != labels.count:
        raise DataError(
            f"{images.where} holds {images.count:,} images but {labels.where} holds "
            f"{labels.count:,} labels",
            fix="Push an images file with the labels file of the same split.",
        )
    total = present[0].count
    for start in range(0, total, _BATCH_ROWS):
        rows = min(_BATCH_ROWS, total - start)
        columns: dict[str, pa.Array] = {}
        if images is not None:
            pixels = _take(images, rows)
            columns["image"] = pa.array([encode_png(p) for p in pixels], pa.binary())
        if labels is not None:
            columns["label"] = pa.array(_take(labels, rows).astype(np.int64), pa.int64())
        yield pa.record_batch(list(columns.values()), names=list(columns))
    for idx in present:
        # Reading past the end also makes gzip and zip verify their checksums.
        if _read(idx.stream, 1, idx.where):
            raise DataError(f"{idx.where} holds bytes past the end its header declares", fix=_FIX)


def _gunzip(stream: EntryReader | BinaryIO) -> gzip.GzipFile:
    return gzip.GzipFile(fileobj=stream, mode="rb")


def _from_zip(archive: SafeZip, stack: ExitStack, limits: Limits) -> Iterator[pa.RecordBatch]:
    found: dict[str, list[tuple[str, _Idx]]] = {"images": [], "labels": []}
    for info in archive.files():
        with archive.open(info) as peek:
            gzipped = peek.read(2) == _GZIP
        entry = stack.enter_context(archive.open(info))
        stream: _Readable = stack.enter_context(_gunzip(entry)) if gzipped else entry
        size, packed = (None, info.file_size) if gzipped else (info.file_size, None)
        idx = _open(stream, archive.where(info.filename), limits, size=size, packed=packed)
        if idx is not None:
            found[idx.kind].append((info.filename, idx))
    for kind, files in found.items():
        if len(files) > 1:
            raise DataError(
                f"{archive.source_name} holds {len(files)} IDX {kind} files "
                f"({', '.join(name for name, _ in files)}); one is allowed",
                fix="Zip one split at a time: its images file and its labels file.",
            )
    if not found["images"] and not found["labels"]:
        raise DataError(f"{archive.source_name} holds no IDX images or labels file", fix=_FIX)
    images = found["images"][0][1] if found["images"] else None
    labels = found["labels"][0][1] if found["labels"] else None
    yield from _batches(images, labels)


def read_idx(path: Path, source_name: str, limits: Limits) -> Iterator[pa.RecordBatch]:
    """Batches of ``image`` (PNG, binary) and/or ``label`` (int64) from IDX data."""
    with ExitStack() as stack:
        raw = stack.enter_context(path.open("rb"))
        head = raw.read(4)
        raw.seek(0)
        if head == b"PK\x03\x04":
            archive = stack.enter_context(SafeZip(path, source_name, limits))
            yield from _from_zip(archive, stack, limits)
            return
        size = path.stat().st_size
        if head.startswith(_GZIP):
            idx = _open(
                stack.enter_context(_gunzip(raw)), source_name, limits, size=None, packed=size
            )
        else:
            idx = _open(raw, source_name, limits, size=size, packed=None)
        if idx is None:
            raise DataError(
                f"{source_name} is not an IDX images (magic 0x00000803) or labels "
                "(0x00000801) file",
                fix=_FIX,
            )
        yield from _batches(
            idx if idx.kind == "images" else None, idx if idx.kind == "labels" else None
        )
