"""Parquet files, read as stored, one row group at a time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]
import pyarrow.parquet as pq  # type: ignore[import-untyped, unused-ignore]

from lepton.errors import DataError

__all__ = ["read_parquet"]

# 64k rows: Parquet's own default batch, a few MiB for a typical table.
_BATCH_ROWS = 65_536
_FIX = "Write the file again (e.g. df.to_parquet(path)) and re-push it; it may have been cut short."


def read_parquet(path: Path, source_name: str) -> Iterator[pa.RecordBatch]:
    """Batches of the file's own schema; a damaged row group names its number."""
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        raise DataError(f"{source_name} is not a readable Parquet file: {e}", fix=_FIX) from e
    with parquet:
        groups = parquet.metadata.num_row_groups
        for group in range(groups):
            try:
                yield from parquet.iter_batches(batch_size=_BATCH_ROWS, row_groups=[group])
            except (pa.ArrowException, OSError) as e:
                raise DataError(
                    f"{source_name}, row group {group + 1} of {groups}: cannot be read: {e}",
                    fix=_FIX,
                ) from e
