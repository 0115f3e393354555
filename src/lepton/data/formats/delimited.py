"""CSV and TSV, streamed in blocks, in two passes so that every error comes before any row.

pyarrow's streaming reader fixes each column's type from the first block, then fails on a
later block that disagrees: a sparse column that is empty for the first 50,000 rows is typed
``null`` and breaks at the first value. So the first pass reads the whole file and discards
it, widening a column and starting over whenever a later value does not fit (``null`` to
``int64`` to ``double`` to ``string``); it also finds ragged rows and bad UTF-8 before anything
has been handed to the caller. The second pass reads with the settled types and yields.
Memory stays at a few blocks either way; the price is parsing twice.

Missing cells (empty, ``NA``, ``null``, ...) are nulls in every column, as pandas reads them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]
import pyarrow.csv as pacsv  # type: ignore[import-untyped, unused-ignore]

from lepton.data.formats.sniffer import Header, find_bad_utf8, find_ragged_row, read_header
from lepton.errors import DataError

__all__ = ["MAX_RESTARTS", "Retyped", "read_delimited"]

# Each restart re-reads the file up to the value that broke; 32 covers a table whose sparse
# columns all wake up late without letting a pathological file loop for long.
MAX_RESTARTS = 32
_CONVERSION = re.compile(
    r"In CSV column #(\d+): CSV conversion error to ([^:]+): invalid value '(.*)'$", re.DOTALL
)
_INT = re.compile(r"^\s*[+-]?\d+\s*$")
_FLOAT = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$|^\s*[+-]?(inf|nan)\s*$", re.I)


@dataclass(frozen=True)
class _Source:
    path: Path
    name: str
    header: Header
    block_size: int


def _open(src: _Source, types: dict[str, pa.DataType]) -> pacsv.CSVStreamingReader:
    return pacsv.open_csv(
        src.path,
        read_options=pacsv.ReadOptions(
            block_size=src.block_size,
            column_names=src.header.names,
            skip_rows=src.header.lines,
        ),
        parse_options=pacsv.ParseOptions(delimiter=src.header.delimiter, newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=True),
    )


def _widened(error: Exception, names: list[str]) -> tuple[str, pa.DataType] | None:
    """The column and the wider type that would take the value pyarrow refused, if any."""
    match = _CONVERSION.search(str(error))
    if match is None:
        return None
    column, current, value = int(match[1]), match[2], match[3]
    if column >= len(names):
        return None
    if current == "null" and _INT.match(value):
        return names[column], pa.int64()
    if current in ("null", "int64") and _FLOAT.match(value):
        return names[column], pa.float64()
    if current == "string":
        return None  # a string column refuses only invalid UTF-8
    return names[column], pa.string()


def _explain(error: Exception, src: _Source) -> DataError:
    """Turn pyarrow's message into one that names the line, by re-scanning the file."""
    text = str(error)
    if "Expected" in text and "columns, got" in text:
        found = find_ragged_row(src.path, src.header)
        if found is not None:
            line, fields = found
            expected = len(src.header.names)
            shown = "a tab" if src.header.delimiter == "\t" else repr(src.header.delimiter)
            return DataError(
                f"{src.name}, line {line}: {fields} field{'s' * (fields != 1)}, but the header "
                f"has {expected}",
                fix=f"Give every row {expected} fields; put quotes around values that "
                f"contain {shown}.",
            )
    if "UTF8" in text or isinstance(error, UnicodeDecodeError):
        bad = find_bad_utf8(src.path)
        if bad is not None:
            return bad.error(src.name)
    return DataError(
        f"{src.name} cannot be parsed as {'TSV' if src.header.delimiter == chr(9) else 'CSV'}: "
        f"{text}",
        fix="Open it in a spreadsheet and export it again as CSV (UTF-8), or push Parquet.",
    )


def _settle_types(src: _Source) -> dict[str, pa.DataType]:
    """First pass: read everything, widening types until every value fits."""
    types: dict[str, pa.DataType] = {}
    for _ in range(MAX_RESTARTS + 1):
        try:
            reader = _open(src, types)
            schema = reader.schema
            if any(pa.types.is_binary(f.type) for f in schema):
                # pyarrow falls back to binary when a column's first block is not UTF-8.
                bad = find_bad_utf8(src.path)
                if bad is not None:
                    raise bad.error(src.name)
            for _batch in reader:
                pass
        except (pa.ArrowInvalid, UnicodeDecodeError) as e:
            widened = _widened(e, src.header.names)
            if widened is None or types.get(widened[0]) == widened[1]:
                raise _explain(e, src) from e
            types[widened[0]] = widened[1]
            continue
        # A column with no values at all is typed null; string is what such a column holds.
        return {f.name: pa.string() if pa.types.is_null(f.type) else f.type for f in schema}
    raise DataError(
        f"{src.name}: column types kept changing deep into the file ({len(types)} columns "
        "changed after the first rows)",
        fix="Put rows that show each column's type near the top, or push Parquet with "
        "explicit types.",
    )


class Retyped(Exception):  # a signal to read again, not an error
    """A column needed a wider type after batches of the narrower one were handed out: discard
    them and read again with ``types``."""

    def __init__(self, types: dict[str, pa.DataType]) -> None:
        super().__init__(f"column types changed: {types}")
        self.types = types


def _settled(batch: pa.RecordBatch) -> pa.RecordBatch:
    """A column with no values so far is typed null; string is what such a column holds."""
    if not any(pa.types.is_null(t) for t in batch.schema.types):
        return batch
    schema = pa.schema(
        [f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in batch.schema]
    )
    return batch.cast(schema)


def _one_pass(src: _Source, types: dict[str, pa.DataType]) -> Iterator[pa.RecordBatch]:
    """Parse once, yielding as it goes; widen and start over while nothing was yielded, raise
    `Retyped` once something was."""
    types = dict(types)
    for _ in range(MAX_RESTARTS + 1):
        yielded = False
        try:
            reader = _open(src, types)
            if any(pa.types.is_binary(f.type) for f in reader.schema):
                bad = find_bad_utf8(src.path)
                if bad is not None:
                    raise bad.error(src.name)
            for batch in reader:
                yield _settled(batch)
                yielded = True
            return
        except (pa.ArrowInvalid, UnicodeDecodeError) as e:
            widened = _widened(e, src.header.names)
            if widened is None or types.get(widened[0]) == widened[1]:
                raise _explain(e, src) from e
            types[widened[0]] = widened[1]
            if yielded:
                raise Retyped(types) from None
    raise DataError(
        f"{src.name}: column types kept changing deep into the file ({len(types)} columns "
        "changed after the first rows)",
        fix="Put rows that show each column's type near the top, or push Parquet with "
        "explicit types.",
    )


def read_delimited(
    path: Path,
    source_name: str,
    *,
    delimiter: str | None,
    block_size: int,
    types: dict[str, pa.DataType] | None = None,
) -> Iterator[pa.RecordBatch]:
    """Batches of a CSV (``delimiter=None`` sniffs ``,`` ``;`` ``|`` or tab) or a TSV (tab).

    Raises:
        DataError: An empty header, duplicate names, a ragged row, bad UTF-8; each names the
            line. All are found before the first batch is yielded.
    """
    src = _Source(path, source_name, read_header(path, source_name, delimiter), block_size)
    if types is not None:  # the caller discards what it had on an error, or on `Retyped`
        yield from _one_pass(src, types)
        return
    types = _settle_types(src)
    try:
        yield from _open(src, types)
    except (pa.ArrowInvalid, UnicodeDecodeError) as e:
        raise _explain(e, src) from e
