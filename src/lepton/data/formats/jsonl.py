"""JSON Lines: one object per line, nested objects flattened, streamed in chunks of lines.

Nesting: an object inside an object becomes dotted columns (``{"a": {"b": 1}}`` gives
``a.b``), as pandas' ``json_normalize`` does, since a table for training wants flat columns.
Lists are refused with the line they are on: their length varies from row to row, so there is
no column to put them in.

The file is cut into chunks of whole lines (about ``block_size`` each), and each chunk is
parsed by pyarrow on its own; that way an error names its line, since each chunk's first line
number is known. A first pass settles each field's type across all chunks (``int64`` and
``double`` meet at ``double``; a field that is always null becomes ``string``), a second pass
yields batches cast to it. A field that holds numbers in one place and text in another is
refused with the line, not guessed at. Strings that look like ISO dates are parsed as
timestamps by pyarrow; where such a field also holds other text it stays a string column, and
the timestamps in it are written back as ``YYYY-MM-DD hh:mm:ss``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]
import pyarrow.json as pajson  # type: ignore[import-untyped, unused-ignore]

from lepton.data.formats.sniffer import BadUtf8
from lepton.errors import DataError

__all__ = ["read_jsonl"]

_MAX_LINE = 64 * 1024 * 1024
_FIX = 'Write one JSON object per line, e.g. {"age": 31, "label": "yes"}.'
_LIST_FIX = "Store one value per field: join the list into a string, or spread it into fields."


def _chunks(path: Path, source_name: str, block_size: int) -> Iterator[tuple[int, bytes]]:
    """Pieces of whole lines, each with the number (from 1) of its first line."""
    line, carry = 1, b""
    with path.open("rb") as f:
        while piece := f.read(block_size):
            data = carry + piece
            cut = data.rfind(b"\n")
            if cut < 0:
                carry = data
                if len(carry) > _MAX_LINE:
                    raise DataError(
                        f"{source_name}, line {line}: longer than {_MAX_LINE:,} bytes",
                        fix="Check that this is JSON Lines: one object per line.",
                    )
                continue
            chunk, carry = data[: cut + 1], data[cut + 1 :]
            yield line, chunk
            line += chunk.count(b"\n")
    if carry.strip():
        yield line, carry


def _kind(value: object) -> str | None:
    """What a parsed JSON value is, with its article, for messages; None for null."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an object" if isinstance(value, dict) else "a list"


def _arrow_kind(t: pa.DataType) -> str | None:
    if pa.types.is_null(t):
        return None
    if pa.types.is_boolean(t):
        return "a boolean"
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        return "a number"
    return "a string"


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    for k in keys:
        if keys.count(k) > 1:
            raise ValueError(f"key {k!r} appears twice")
    return dict(pairs)


def _leaves(obj: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, object]]:
    for key, value in obj.items():
        yield prefix + key, value
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{key}.")


def _locate(
    chunk: bytes, first: int, source_name: str, kinds: dict[str, str | None]
) -> DataError | None:
    """Re-read a chunk line by line in Python to find the first line that is at fault."""
    for n, raw in enumerate(chunk.split(b"\n"), start=first):
        if not raw.strip():
            continue
        where = f"{source_name}, line {n}"
        try:
            text = raw.decode("utf-8-sig" if n == 1 else "utf-8")
        except UnicodeDecodeError as e:
            return BadUtf8(n, e.start + 1, raw[e.start]).error(source_name)
        try:
            value = json.loads(text, object_pairs_hook=_unique_keys)
        except ValueError as e:
            return DataError(f"{where}: not valid JSON: {e}", fix=_FIX)
        if not isinstance(value, dict):
            return DataError(f"{where}: holds {_kind(value)}, not a JSON object", fix=_FIX)
        for field, item in _leaves(value):
            kind = _kind(item)
            if kind == "a list":
                return DataError(f"{where}: field {field!r} holds a list", fix=_LIST_FIX)
            seen = kinds.get(field)
            if kind is None or seen is None:
                kinds[field] = kinds.get(field) or kind
                continue
            if seen != kind:
                return DataError(
                    f"{where}: field {field!r} holds {kind}, but earlier lines hold {seen}",
                    fix="Give each field one type on every line (numbers unquoted, text quoted).",
                )
    return None


def _parse(first: int, chunk: bytes, source_name: str) -> pa.Table:
    """One chunk as a flat table; a fault raises `DataError` naming its line."""
    last = first + chunk.count(b"\n")
    lines = f"{source_name}, lines {first}-{last}"
    try:
        chunk.decode("utf-8")  # pyarrow's JSON reader lets invalid UTF-8 into string columns
        table = pajson.read_json(io.BytesIO(chunk))
    except (pa.ArrowInvalid, UnicodeDecodeError) as e:
        raise _locate(chunk, first, source_name, {}) or DataError(f"{lines}: {e}", fix=_FIX) from e
    while any(pa.types.is_struct(f.type) for f in table.schema):
        table = table.flatten()
    names = table.column_names
    if any(pa.types.is_list(f.type) or pa.types.is_large_list(f.type) for f in table.schema):
        raise _locate(chunk, first, source_name, {}) or DataError(
            f"{source_name}: a field holds lists", fix=_LIST_FIX
        )
    if len(set(names)) < len(names):
        clash = sorted({n for n in names if names.count(n) > 1})
        raise DataError(
            f"{lines}: fields {clash} collide once nested objects are flattened to dotted names",
            fix="Rename the fields whose names contain dots.",
        )
    return table


def _merge(old: pa.DataType | None, new: pa.DataType) -> pa.DataType | None:
    """The type that holds both, or None when they disagree in kind."""
    if old is None or old == new or pa.types.is_null(old):
        return new
    if pa.types.is_null(new):
        return old
    if {_arrow_kind(old), _arrow_kind(new)} == {"a number"}:
        return pa.float64()
    if _arrow_kind(old) == _arrow_kind(new) == "a string":
        return pa.string()  # a timestamp-looking text column meets plain text
    return None


def _settle_schema(path: Path, source_name: str, block_size: int) -> pa.Schema:
    """First pass: every chunk parsed, the field types merged across chunks."""
    types: dict[str, pa.DataType] = {}
    for first, chunk in _chunks(path, source_name, block_size):
        for field in _parse(first, chunk, source_name).schema:
            merged = _merge(types.get(field.name), field.type)
            if merged is None:
                seen = {field.name: _arrow_kind(types[field.name])}
                raise _locate(chunk, first, source_name, seen) or DataError(
                    f"{source_name}: field {field.name!r} holds {types[field.name]} before "
                    f"line {first} and {field.type} after",
                    fix="Give each field one type on every line.",
                )
            types[field.name] = merged
    if not types:
        raise DataError(f"{source_name} holds no fields: every line is empty or {{}}", fix=_FIX)
    return pa.schema([(n, pa.string() if pa.types.is_null(t) else t) for n, t in types.items()])


def read_jsonl(path: Path, source_name: str, block_size: int) -> Iterator[pa.RecordBatch]:
    """Batches with one column per (flattened) field, in order of first appearance."""
    schema = _settle_schema(path, source_name, block_size)
    for first, chunk in _chunks(path, source_name, block_size):
        table = _parse(first, chunk, source_name)
        columns = [
            table[f.name].cast(f.type)
            if f.name in table.column_names
            else pa.chunked_array([pa.nulls(table.num_rows, f.type)])
            for f in schema
        ]
        yield from pa.Table.from_arrays(columns, schema=schema).to_batches()
