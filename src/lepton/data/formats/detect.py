"""Which reader a file needs: by its first bytes where they tell, else by its name."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path, PurePosixPath

from lepton.data.formats.archive import SafeZip
from lepton.data.formats.idx import IDX_MAGICS
from lepton.data.formats.images import IMAGE_EXTENSIONS
from lepton.data.formats.limits import Limits
from lepton.errors import DataError

__all__ = ["FORMAT_NAMES", "detect_format"]

FORMAT_NAMES: tuple[str, ...] = ("csv", "tsv", "parquet", "jsonl", "npz", "idx", "image-folder")

_BY_EXTENSION = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".npz": "npz",
    ".idx": "idx",
    ".gz": "idx",
    ".zip": "zip",
}
_SUPPORTED = (
    "csv (.csv), tsv (.tsv, .tab), parquet (.parquet, .pq), jsonl (.jsonl, .ndjson), "
    "npz (.npz), idx (*-ubyte, *-ubyte.gz, or both zipped), image-folder (.zip of class folders)"
)
_ZIP = (b"PK\x03\x04", b"PK\x05\x06")
# Entries peeked for an IDX magic: an MNIST zip holds two, an image folder thousands.
_PEEK = 16


def _by_extension(source_name: str) -> str | None:
    lower = source_name.lower()
    if lower.endswith(("-ubyte", "-ubyte.gz")):
        return "idx"
    return _BY_EXTENSION.get(PurePosixPath(lower.replace("\\", "/")).suffix)


def _zip_kind(path: Path, source_name: str, limits: Limits) -> str:
    """``npz`` for .npy entries, ``idx`` for IDX entries, ``image-folder`` otherwise."""
    with SafeZip(path, source_name, limits) as archive:
        files = archive.files()
        suffixes = [PurePosixPath(i.filename.lower()).suffix for i in files]
        if suffixes and all(s == ".npy" for s in suffixes):
            return "npz"
        if any(s in IMAGE_EXTENSIONS for s in suffixes):
            return "image-folder"
        for info in files[:_PEEK]:
            with archive.open(info) as entry:
                head = entry.read(4)
            if head[:2] == b"\x1f\x8b":
                with archive.open(info) as entry, gzip.GzipFile(fileobj=entry) as inner:
                    head = _safe_read4(inner)
            if head in IDX_MAGICS:
                return "idx"
    return "image-folder"


def _safe_read4(stream: gzip.GzipFile) -> bytes:
    try:
        return stream.read(4)
    except (OSError, EOFError, zlib.error):
        return b""  # damaged: the reader will say how


def detect_format(
    path: Path,
    source_name: str,
    limits: Limits = Limits(),  # frozen, so one shared default is safe
) -> str:
    """The format name (one of `FORMAT_NAMES`) of the file at ``path``.

    Magic bytes win over the name, so ``data.csv`` holding Parquet reads as Parquet: Parquet
    (``PAR1``), zip (``PK``: npz, IDX or image folder by what it holds), gzip (an IDX file
    inside) and raw IDX. Text formats have no magic and go by the extension of
    ``source_name``.

    Args:
        path: The uploaded bytes on local disk.
        source_name: The name the file was pushed under.
        limits: Ceilings for the zip checks.

    Raises:
        DataError: The format is none of the supported ones, or a zip is unsafe or corrupt.
    """
    with path.open("rb") as f:
        head = f.read(4)
    by_name = _by_extension(source_name)
    if head == b"PAR1":
        return "parquet"
    if head in _ZIP or by_name == "zip":
        return _zip_kind(path, source_name, limits)
    if head in IDX_MAGICS:
        return "idx"
    if head[:2] == b"\x1f\x8b":
        with gzip.open(path) as inner:
            inner_head = _safe_read4(inner)
        # A gzip too damaged to show its first bytes goes to the IDX reader, which says how.
        if inner_head in IDX_MAGICS or (not inner_head and by_name == "idx"):
            return "idx"
        raise DataError(
            f"{source_name} is gzip-compressed but holds no IDX file; only IDX files may be "
            "pushed compressed",
            fix=f"Decompress it (`gunzip {source_name}`) and push the file inside.",
        )
    if by_name is not None:
        return by_name
    raise DataError(
        f"{source_name}: its format is not recognised from its name or its first bytes; "
        f"supported: {_SUPPORTED}",
        fix="Rename the file with the extension of its format, e.g. data.csv.",
    )
