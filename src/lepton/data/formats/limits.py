"""Ceilings on what an upload may expand into, so one file cannot exhaust the server."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_BLOCK_SIZE", "RATIO_FLOOR", "Limits"]

# 4 MiB: pyarrow infers CSV and JSON types from the first block, so a larger block sees more
# rows before it commits to a type; memory stays at a few blocks whatever the file size.
DEFAULT_BLOCK_SIZE = 4 * 1024 * 1024

# Entries under this size skip the ratio check: a bomb that expands to less is harmless, and
# small files (a 6 KiB .DS_Store of zeros) legitimately compress several hundred-fold.
RATIO_FLOOR = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """How far a reader may go before it refuses a file.

    Attributes:
        max_entries: Entries an archive (zip, npz) may hold.
        max_uncompressed_bytes: Bytes an archive or a gzip file may expand to, in all.
        max_ratio: Uncompressed / compressed size of one entry: the zip-bomb guard. Entries
            under 1 MiB are exempt, since a bomb that small is harmless and tiny files such
            as ``.DS_Store`` compress 300-fold.
        max_image_pixels: Width x height of one image.
    """

    max_entries: int = 1_000_000
    max_uncompressed_bytes: int = 20 * 1024**3
    max_ratio: float = 200.0
    max_image_pixels: int = 64 * 1024 * 1024
