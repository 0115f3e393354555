"""Image folders: a zip with one sub-folder per class, read into ``image``, ``label``, ``path``.

The client zips a pushed directory, so the server only ever sees an archive::

    pets.zip                      pets.zip
      cats/1.png          or        pets/cats/1.png
      dogs/2.jpg                    pets/dogs/2.jpg

``image`` holds each file's original bytes (re-encoding would lose JPEG fidelity and grow the
table), ``label`` the class folder's name and ``path`` the entry's name. Rows come sorted by
path, so the same images give the same table however the archive was ordered.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]

from lepton.data.formats.archive import SafeZip, is_ignored
from lepton.data.formats.images import IMAGE_EXTENSIONS, check_image
from lepton.data.formats.limits import Limits
from lepton.errors import DataError

__all__ = ["read_image_folder"]

# 1000 rows or 16 MiB of encoded images, whichever comes first: a batch of large photos stays
# small in memory, a batch of thumbnails still amortises the per-batch overhead.
_BATCH_ROWS = 1000
_BATCH_BYTES = 16 * 1024 * 1024
_LAYOUT_FIX = (
    "Put the images in one folder per class, e.g. cats/1.png and dogs/2.jpg, and zip them."
)


def _parts(name: str) -> list[str]:
    return [p for p in name.replace("\\", "/").split("/") if p]


def _plan(archive: SafeZip) -> list[tuple[zipfile.ZipInfo, str]]:
    """Each image entry with its class, sorted by path; refuses a layout with no classes."""
    files = archive.files()
    images = [i for i in files if PurePosixPath(i.filename).suffix.lower() in IMAGE_EXTENSIONS]
    if not images:
        raise DataError(
            f"{archive.source_name} holds no images ({', '.join(IMAGE_EXTENSIONS)})",
            fix=_LAYOUT_FIX,
        )
    # A single top-level folder above the class folders is a wrapper, not a class.
    tops = {_parts(i.filename)[0] for i in images}
    root = tops.pop() if len(tops) == 1 and all(len(_parts(i.filename)) > 2 for i in images) else ""
    strip = 1 if root else 0

    def relative(name: str) -> list[str] | None:
        parts = _parts(name)
        if root and (not parts or parts[0] != root):
            return None
        return parts[strip:]

    plan: list[tuple[zipfile.ZipInfo, str]] = []
    for info in images:
        rel = relative(info.filename) or []
        if len(rel) < 2:
            raise DataError(
                f"{archive.where(info.filename)} is not inside a class folder", fix=_LAYOUT_FIX
            )
        plan.append((info, rel[0]))
    with_images = {label for _, label in plan}
    for info in archive.zip.infolist():
        if is_ignored(info.filename):
            continue
        where = relative(info.filename)
        inside = where is not None and (len(where) >= 2 or (info.is_dir() and len(where) == 1))
        if where and inside and where[0] not in with_images:
            folder = f"{root}/{where[0]}" if root else where[0]
            raise DataError(
                f"{archive.source_name}, folder {folder + '/'!r} holds no images "
                f"({', '.join(IMAGE_EXTENSIONS)})",
                fix="Add images to the folder or remove it; every folder is a class.",
            )
    return sorted(plan, key=lambda item: item[0].filename)


def _batch(images: list[bytes], labels: list[str], paths: list[str]) -> pa.RecordBatch:
    return pa.record_batch(
        [
            pa.array(images, pa.binary()),
            pa.array(labels, pa.string()),
            pa.array(paths, pa.string()),
        ],
        names=["image", "label", "path"],
    )


def read_image_folder(path: Path, source_name: str, limits: Limits) -> Iterator[pa.RecordBatch]:
    """Batches of ``image`` (binary), ``label`` (string) and ``path`` (string).

    Every image is decoded once to prove it is readable; a damaged one stops the read with
    a `DataError` naming its entry.
    """
    with SafeZip(path, source_name, limits) as archive:
        plan = _plan(archive)
        images: list[bytes] = []
        labels: list[str] = []
        paths: list[str] = []
        size = 0
        # No image within the pixel limit needs more than 8 bytes a pixel (16-bit RGBA), so a
        # larger entry is refused before it is read into memory.
        most = 8 * limits.max_image_pixels + 1024 * 1024
        for info, label in plan:
            if info.file_size > most:
                raise DataError(
                    f"{archive.where(info.filename)} is {info.file_size:,} bytes; an image within "
                    f"the {limits.max_image_pixels:,}-pixel limit needs at most {most:,}",
                    fix="Resize the image, or raise the image-size limit.",
                )
            data = archive.read(info)
            check_image(data, archive.where(info.filename), limits)
            images.append(data)
            labels.append(label)
            paths.append(info.filename)
            size += len(data)
            if len(images) >= _BATCH_ROWS or size >= _BATCH_BYTES:
                yield _batch(images, labels, paths)
                images, labels, paths, size = [], [], [], 0
        if images:
            yield _batch(images, labels, paths)
