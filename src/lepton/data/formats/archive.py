"""Zip archives read defensively: nothing escapes the folder and nothing expands without bound.

Uploads are untrusted. Before any entry is read the archive is refused when it declares more
entries or more bytes than `Limits` allows, or holds an entry that could land outside a folder
if extracted (``..``, absolute paths, drive letters, symlinks). Entries are never extracted to
disk; they are read into memory through `EntryReader`, which counts the bytes that really come
out, since the sizes an archive declares can lie.
"""

from __future__ import annotations

import io
import re
import stat
import struct
import zipfile
import zlib
from pathlib import Path
from types import TracebackType

from lepton.data.formats.limits import RATIO_FLOOR, Limits
from lepton.errors import DataError

__all__ = ["EntryReader", "SafeZip", "is_ignored"]

_CHUNK = 1024 * 1024
_DRIVE = re.compile(r"^[A-Za-z]:")
_EOCD = b"PK\x05\x06"
_EOCD64_LOCATOR = b"PK\x06\x07"
_EOCD64 = b"PK\x06\x06"


def is_ignored(name: str) -> bool:
    """Whether an entry is operating-system debris (``__MACOSX``, ``.DS_Store``, dotfiles)."""
    parts = [p for p in name.replace("\\", "/").split("/") if p]
    return any(p == "__MACOSX" or p.startswith(".") or p == "Thumbs.db" for p in parts)


def _declared_entries(path: Path) -> int | None:
    """Entries the end-of-central-directory record declares, read without parsing the rest.

    `zipfile.ZipFile` builds an object per entry before anyone can count them, so a crafted
    archive with ten million entries would cost gigabytes before the limit could be checked.
    """
    with path.open("rb") as f:
        size = f.seek(0, 2)
        tail_start = max(0, size - (22 + 65535))
        f.seek(tail_start)
        tail = f.read()
        at = tail.rfind(_EOCD)
        if at < 0 or len(tail) - at < 22:
            return None
        (total,) = struct.unpack("<H", tail[at + 10 : at + 12])
        if total != 0xFFFF or at < 20 or tail[at - 20 : at - 16] != _EOCD64_LOCATOR:
            return int(total)
        (record_at,) = struct.unpack("<Q", tail[at - 12 : at - 4])
        f.seek(record_at)
        record = f.read(40)
        if len(record) < 40 or record[:4] != _EOCD64:
            return None
        (total64,) = struct.unpack("<Q", record[32:40])
        return int(total64)


class EntryReader:
    """A readable archive entry that refuses to yield more bytes than it declared."""

    def __init__(self, archive: SafeZip, info: zipfile.ZipInfo) -> None:
        self._archive = archive
        self._info = info
        self._left = info.file_size
        self._where = archive.where(info.filename)
        try:
            self._stream = archive.zip.open(info)
        except (NotImplementedError, RuntimeError, zipfile.BadZipFile, OSError) as e:
            raise DataError(
                f"{self._where} cannot be opened: {e}",
                fix="Re-create the archive with plain zip (deflate or stored, no password).",
            ) from e

    def read(self, size: int = -1) -> bytes:
        """``size`` bytes, fewer only at the end (all that is left when negative)."""
        want = self._left + 1 if size < 0 else min(size, self._left + 1)
        parts: list[bytes] = []
        while want > 0:
            try:
                part = self._stream.read(min(want, _CHUNK))
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
                raise DataError(
                    f"{self._where} is corrupt: {e}",
                    fix="The archive was damaged or cut short: create it again and re-push.",
                ) from e
            if not part:
                break
            parts.append(part)
            want -= len(part)
            self._left -= len(part)
            self._archive.count(len(part))
            if self._left < 0:
                raise DataError(
                    f"{self._where} expands past the {self._info.file_size:,} bytes its header "
                    "declares",
                    fix="The archive is malformed or a zip bomb: create it again with a "
                    "standard zip tool.",
                )
        return b"".join(parts)

    def seek(self, offset: int, whence: int = 0, /) -> int:
        """Entries are read forward only (gzip asks for ``seek`` but never calls it to read)."""
        raise io.UnsupportedOperation("archive entries are read forward only")

    def tell(self) -> int:
        """Bytes read so far."""
        return self._info.file_size - self._left

    def close(self) -> None:
        """Release the entry's stream."""
        self._stream.close()

    def __enter__(self) -> EntryReader:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class SafeZip:
    """A zip archive whose central directory has passed the safety checks.

    Args:
        path: The archive on local disk.
        source_name: The name it was uploaded under, used in every message.
        limits: Ceilings on entries and bytes.

    Raises:
        DataError: The archive is corrupt, too large, or holds an entry that escapes its folder.
    """

    def __init__(self, path: Path, source_name: str, limits: Limits) -> None:
        self.source_name = source_name
        self.limits = limits
        self._read = 0
        declared = _declared_entries(path)
        if declared is not None:
            self._check_entries(declared)
        try:
            self.zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as e:
            raise DataError(
                f"{source_name} is not a readable zip archive ({e}); it may be truncated or "
                "corrupt",
                fix="Create the archive again (e.g. `zip -r data.zip folder/`) and re-push it.",
            ) from e
        try:
            self._check(self.zip.infolist())
        except DataError:
            self.zip.close()
            raise

    def _check_entries(self, count: int) -> None:
        if count > self.limits.max_entries:
            raise DataError(
                f"{self.source_name} holds {count:,} entries; at most "
                f"{self.limits.max_entries:,} are allowed",
                fix="Split the data into several smaller archives, or raise the entry limit.",
            )

    def _check(self, infos: list[zipfile.ZipInfo]) -> None:
        self._check_entries(len(infos))
        seen: set[str] = set()
        total = 0
        for info in infos:
            name = info.filename
            parts = name.replace("\\", "/").split("/")
            if name.startswith(("/", "\\")) or _DRIVE.match(name) or ".." in parts or "\0" in name:
                raise DataError(
                    f"{self.where(name)} points outside the archive's folder",
                    fix="Zip the folder with relative paths only (no '..', no absolute paths).",
                )
            if stat.S_ISLNK(info.external_attr >> 16):
                raise DataError(
                    f"{self.where(name)} is a symbolic link; links are refused",
                    fix="Zip the files themselves (e.g. `zip -r` without `--symlinks`).",
                )
            if name in seen:
                raise DataError(
                    f"{self.where(name)} appears twice in the archive",
                    fix="Create the archive again so each path appears once.",
                )
            seen.add(name)
            total += info.file_size
        if total > self.limits.max_uncompressed_bytes:
            raise DataError(
                f"{self.source_name} expands to {total:,} bytes; at most "
                f"{self.limits.max_uncompressed_bytes:,} are allowed",
                fix="Split the data into several smaller archives, or raise the size limit.",
            )

    def where(self, entry: str) -> str:
        """How messages name an entry: ``data.zip, entry 'cats/1.png'``."""
        return f"{self.source_name}, entry {entry!r}"

    def files(self) -> list[zipfile.ZipInfo]:
        """Entries that are files and not operating-system debris, in archive order."""
        return [i for i in self.zip.infolist() if not i.is_dir() and not is_ignored(i.filename)]

    def open(self, info: zipfile.ZipInfo) -> EntryReader:
        """A reader over one entry, after the compression-ratio check."""
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > RATIO_FLOOR and ratio > self.limits.max_ratio:
            raise DataError(
                f"{self.where(info.filename)} expands {ratio:,.0f}-fold "
                f"({info.compress_size:,} to {info.file_size:,} bytes); at most "
                f"{self.limits.max_ratio:,.0f}-fold is allowed",
                fix="This looks like a zip bomb; push the real files, or raise the ratio limit.",
            )
        return EntryReader(self, info)

    def read(self, info: zipfile.ZipInfo) -> bytes:
        """All bytes of one entry."""
        with self.open(info) as entry:
            return entry.read()

    def count(self, n: int) -> None:
        """Add ``n`` bytes read to the archive's total and refuse past the limit."""
        self._read += n
        if self._read > self.limits.max_uncompressed_bytes:
            raise DataError(
                f"{self.source_name} expanded past {self.limits.max_uncompressed_bytes:,} bytes",
                fix="Split the data into several smaller archives, or raise the size limit.",
            )

    def close(self) -> None:
        """Close the archive."""
        self.zip.close()

    def __enter__(self) -> SafeZip:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
