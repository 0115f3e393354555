"""The plain-Python side of delimited text: the header, and the line an error is on.

pyarrow parses fast but says little about where: "Expected 3 columns, got 4" and "invalid
UTF8 data" carry no line number. These scans run with Python's `csv` module and byte reads,
on the first lines for the header and on the error path only for the rest.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from lepton.errors import DataError

__all__ = ["BadUtf8", "Header", "find_bad_utf8", "find_ragged_row", "read_header"]

_BOM = b"\xef\xbb\xbf"
# 1 MiB holds the header and ~20 sample rows of any sane table; a longer first line is read on.
_PREFIX = 1024 * 1024
_MAX_HEADER = 64 * 1024 * 1024
_SAMPLE_ROWS = 20
_INT = re.compile(r"^[+-]?\d+$")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_UTF8_FIX = (
    "Re-save the file as UTF-8 (spreadsheets: 'CSV UTF-8'; shell: "
    "`iconv -f latin1 -t utf-8 old > new`)."
)


@dataclass(frozen=True)
class Header:
    """Column names and how the file lays them out."""

    names: list[str]
    lines: int  # physical lines the header row spans; 0 when the file has no header
    delimiter: str


@dataclass(frozen=True)
class BadUtf8:
    """Where the first invalid UTF-8 byte is."""

    line: int
    column: int  # byte offset within the line, from 1
    byte: int

    def error(self, source_name: str) -> DataError:
        """The `DataError` to raise for it."""
        return DataError(
            f"{source_name}, line {self.line}: byte 0x{self.byte:02x} at position "
            f"{self.column} is not valid UTF-8",
            fix=_UTF8_FIX,
        )


def _prefix(path: Path, source_name: str) -> tuple[bytes, bool]:
    """The file's first bytes (at least its first line) and whether that is all of it."""
    with path.open("rb") as f:
        data = f.read(_PREFIX)
        while b"\n" not in data and len(data) < _MAX_HEADER:
            more = f.read(len(data))
            if not more:
                return data, True
            data += more
        if b"\n" not in data:
            raise DataError(
                f"{source_name}, line 1: longer than {_MAX_HEADER:,} bytes with no line break",
                fix="Check that this is a text table; a binary file cannot be read as CSV.",
            )
        rest = f.read(1)
        return data, not rest


def _delimiter(line: str) -> str:
    """``,`` when the header has one, else the most frequent of ``;``, ``|`` and tab."""
    if "," in line:
        return ","
    best = max((";", "|", "\t"), key=line.count)
    return best if line.count(best) else ","


def _kind(value: str) -> str:
    if _INT.match(value):
        return "int"
    return "float" if _NUMBER.match(value) else "text"


def _has_header(first: list[str], sample: list[list[str]]) -> bool:
    """False only when every field of the first row looks like data in its column.

    A field looks like data when it is a number of the column's kind (an int over ints, a
    float over floats, either over a mix), or a word that recurs among the column's sampled
    values (``setosa`` in iris). ``country,2019,2020`` over ``France,1.2,1.3`` keeps its
    header: ``country`` does not recur and ``2019`` is an int over floats. Dropping a real
    header loses every name, keeping a data row as one loses a row, so ties keep the header.
    """
    for i, value in enumerate(first):
        value = value.strip()
        column = [row[i].strip() for row in sample if i < len(row) and row[i].strip()]
        if not value or not column:
            return True
        kinds = {_kind(v) for v in column}
        if "text" in kinds:
            if value not in column:
                return True
        elif _kind(value) == "text" or (len(kinds) == 1 and _kind(value) not in kinds):
            return True
    return False


def read_header(path: Path, source_name: str, delimiter: str | None) -> Header:
    """Read and check the first line: its delimiter, whether it names columns, and the names.

    Blank names are filled in as ``column_<i>`` (``i`` from 0), as are all names of a file
    without a header.

    Raises:
        DataError: Line 1 is empty, holds only delimiters, is not UTF-8, or repeats a name.
    """
    data, whole = _prefix(path, source_name)
    data = data.removeprefix(_BOM)
    if b"\0" in data:
        line = data.count(b"\n", 0, data.index(b"\0")) + 1
        raise DataError(
            f"{source_name}, line {line}: holds NUL bytes, so it is binary or UTF-16, not "
            "UTF-8 text",
            fix=_UTF8_FIX,
        )
    first_end = data.find(b"\n")
    try:
        data[: first_end if first_end >= 0 else len(data)].decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadUtf8(1, e.start + 1, data[e.start]).error(source_name) from e
    if not whole:
        data = data[: data.rfind(b"\n") + 1]  # drop a cut last line
    text = data.decode("utf-8", errors="replace")
    sep = delimiter or _delimiter(text.split("\n", 1)[0])
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
    first = next(reader, [])
    lines = reader.line_num
    if not any(field.strip() for field in first):
        raise DataError(
            f"{source_name}, line 1: no column names (the line is empty or only delimiters)",
            fix="Put the column names on the first line, e.g. `age,income,label`.",
        )
    sample = [row for _, row in zip(range(_SAMPLE_ROWS), reader, strict=False) if row]
    if sample and not _has_header(first, sample):
        return Header([f"column_{i}" for i in range(len(first))], 0, sep)
    names = [name if name.strip() else f"column_{i}" for i, name in enumerate(first)]
    repeated = [name for name, n in Counter(names).items() if n > 1]
    if repeated:
        listed = ", ".join(repr(name) for name in repeated)
        raise DataError(
            f"{source_name}, line 1: duplicate column names: {listed}",
            fix="Rename the columns so that every name is different.",
        )
    return Header(names, lines, sep)


def find_ragged_row(path: Path, header: Header) -> tuple[int, int] | None:
    """The first line (from 1) of a record whose field count differs, and that count."""
    expected = len(header.names)
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as f:
        reader = csv.reader(f, delimiter=header.delimiter)
        end = 0
        try:
            for row in reader:
                start, end = end + 1, reader.line_num
                if row and end > header.lines and len(row) != expected:
                    return start, len(row)
        except csv.Error:
            return None  # a field past csv's size limit: fall back on pyarrow's message
    return None


def find_bad_utf8(path: Path) -> BadUtf8 | None:
    """The first byte that is not valid UTF-8, read a bounded piece at a time."""
    line, column, carry = 1, 0, b""
    with path.open("rb") as f:
        while piece := f.readline(_PREFIX):
            piece = carry + piece
            carry = b""
            try:
                piece.decode("utf-8")
            except UnicodeDecodeError as e:
                if e.reason != "unexpected end of data" or piece.endswith(b"\n"):
                    return BadUtf8(line, column + e.start + 1, piece[e.start])
                # A character split at the piece boundary: decode it with the next piece.
                carry = piece[e.start :]
                piece = piece[: e.start]
            if piece.endswith(b"\n"):
                line, column = line + 1, 0
            else:
                column += len(piece)
    if carry:
        return BadUtf8(line, column + 1, carry[0])
    return None
