"""One entry point over all readers: pick by format, then hold every batch to one schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]

from lepton.data.formats.delimited import read_delimited
from lepton.data.formats.detect import FORMAT_NAMES
from lepton.data.formats.idx import read_idx
from lepton.data.formats.image_folder import read_image_folder
from lepton.data.formats.jsonl import read_jsonl
from lepton.data.formats.limits import DEFAULT_BLOCK_SIZE, Limits
from lepton.data.formats.npz import read_npz
from lepton.data.formats.parquet import read_parquet
from lepton.errors import DataError

__all__ = ["read_batches"]


def _read(
    path: Path,
    fmt: str,
    source_name: str,
    limits: Limits,
    block_size: int,
    types: dict[str, pa.DataType] | None,
) -> Iterator[pa.RecordBatch]:
    if fmt in ("csv", "tsv"):
        delimiter = None if fmt == "csv" else "\t"
        return read_delimited(
            path, source_name, delimiter=delimiter, block_size=block_size, types=types
        )
    if fmt == "parquet":
        return read_parquet(path, source_name)
    if fmt == "jsonl":
        return read_jsonl(path, source_name, block_size)
    if fmt == "npz":
        return read_npz(path, source_name, limits, block_size)
    if fmt == "idx":
        return read_idx(path, source_name, limits)
    return read_image_folder(path, source_name, limits)


def _check_columns(schema: pa.Schema, source_name: str) -> None:
    names: list[str] = schema.names
    if not names:
        raise DataError(f"{source_name} has no columns", fix="Push a table with columns.")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataError(
            f"{source_name}: duplicate column names: {', '.join(map(repr, repeated))}",
            fix="Rename the columns so that every name is different.",
        )


def read_batches(
    path: Path,
    fmt: str,
    source_name: str,
    limits: Limits = Limits(),  # frozen, so one shared default is safe
    *,
    block_size: int = DEFAULT_BLOCK_SIZE,
    one_pass: dict[str, pa.DataType] | None = None,
) -> Iterator[pa.RecordBatch]:
    """Record batches of the canonical table of the file at ``path``, streamed.

    Every batch has the first batch's schema and at least one row. Nothing is read until
    iteration starts; errors surface as early as the format allows (headers, archive
    directories and whole-file checks before the first batch), and a caller that meets
    one mid-way discards what it had.

    Args:
        path: The uploaded bytes on local disk.
        fmt: One of `FORMAT_NAMES`, usually from `detect_format`.
        source_name: The name it was pushed under; every message names it.
        limits: Ceilings on archives and images.
        block_size: Bytes per block for CSV, TSV and JSON Lines, and the batch size target
            for npz.
        one_pass: For CSV and TSV, parse once with these column types (``{}``: inferred),
            handing batches out as they come; errors then surface mid-way, and a column that
            needs a wider type raises `Retyped` with the types to read again with.

    Raises:
        DataError: The file cannot be read as ``fmt``; the message names the line or entry.
    """
    if fmt not in FORMAT_NAMES:
        raise DataError(
            f"unknown format {fmt!r} for {source_name}; formats are: {', '.join(FORMAT_NAMES)}",
            fix="Pass one of those, or let detect_format choose.",
        )
    if path.stat().st_size == 0:
        raise DataError(f"{source_name} is empty (0 bytes)", fix="Push a file that holds data.")
    schema: pa.Schema | None = None
    rows = 0
    for batch in _read(path, fmt, source_name, limits, block_size, one_pass):
        if batch.num_rows == 0:
            continue
        if schema is None:
            schema = batch.schema
            _check_columns(schema, source_name)
        elif not batch.schema.equals(schema):
            raise DataError(
                f"{source_name}: rows {rows + 1:,} on have columns {batch.schema.names} of "
                f"types {batch.schema.types}, not those of the rows before",
                fix="Give every row the same columns and types.",
            )
        rows += batch.num_rows
        yield batch
    if rows == 0:
        raise DataError(f"{source_name} holds no rows", fix="Push a file with at least one row.")
