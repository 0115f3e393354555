"""Readers that turn an uploaded file into Arrow record batches of one canonical table.

The server spools an upload to disk, asks `detect_format` what it is, then streams
`read_batches` into Parquet. Readers hold a few blocks at a time, never the whole file, and
refuse bad input with a `lepton.errors.DataError` that names the file and the line or
archive entry at fault, and says how to fix it.
"""

from __future__ import annotations

from lepton.data.formats.detect import FORMAT_NAMES, detect_format
from lepton.data.formats.limits import DEFAULT_BLOCK_SIZE, Limits
from lepton.data.formats.reader import read_batches

__all__ = ["DEFAULT_BLOCK_SIZE", "FORMAT_NAMES", "Limits", "detect_format", "read_batches"]
