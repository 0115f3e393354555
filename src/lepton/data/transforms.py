"""Derive a new dataset version from an old one by a list of steps, streamed batch by batch.

Every step is checked against the columns as they stand at that point before a single row is
read, so a typo fails in milliseconds, not after an hour of image resizing. Only the source
columns the output (or a row filter) depends on are read: selecting ``label`` from an image
dataset never decodes an image. The result is written under a temporary name beside ``dst`` and
renamed into place at the end, so ``dst`` is either complete or absent.
"""

from __future__ import annotations

import contextlib
import difflib
import hmac
import io
import os
import re
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd  # type: ignore[import-untyped,unused-ignore]
import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]
import pyarrow.compute as pc  # type: ignore[import-untyped,unused-ignore]
import pyarrow.parquet as pq  # type: ignore[import-untyped,unused-ignore]
from PIL import Image

from lepton.errors import InvalidRequest
from lepton.schemas import (
    AnonymizeStep,
    CastStep,
    DeduplicateStep,
    DropNullsStep,
    DropStep,
    RenameStep,
    ResizeImagesStep,
    SelectStep,
    TransformStep,
)

__all__ = ["IMAGE_COLUMN", "apply_transform", "describe"]

IMAGE_COLUMN = "image"
_BATCH_BYTES = 64 * 2**20  # per batch: 65,536 rows of 100 KB images would be 6.5 GB at once
# 64 bits: two of n distinct values share a hash with odds ~n^2 / 2^65 (3e-8 for a million).
HASH_HEX_CHARS = 16
Rows = npt.NDArray[np.int64]


def apply_transform(
    src: Path, steps: Sequence[TransformStep], dst: Path, *, batch_size: int = 65_536
) -> None:
    """Apply ``steps`` in order to the Parquet file ``src`` and write the result to ``dst``.

    Raises:
        InvalidRequest: A step names a column that does not exist at that point, would leave no
            columns or two with one name, or a value cannot be cast or decoded. ``dst`` is then
            untouched.
    """
    source = pq.ParquetFile(src)
    read, output = _plan(list(source.schema_arrow.names), steps)
    meta = source.metadata
    if meta.num_rows:  # wide rows (images) get fewer per batch, so a batch stays near 64 MiB
        row_bytes = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        batch_size = max(1, min(batch_size, _BATCH_BYTES * meta.num_rows // max(row_bytes, 1)))
    run = _Run(steps, output)
    tmp = dst.with_name(f".{dst.name}.{secrets.token_hex(6)}.tmp")
    writer: Any = None
    try:
        start = 0
        for batch in source.iter_batches(batch_size=batch_size, columns=read):
            table = run(pa.Table.from_batches([batch]), np.arange(start, start + batch.num_rows))
            start += batch.num_rows
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
            if table.num_rows:
                writer.write_table(table.cast(writer.schema))
        if writer is None:  # no rows at all: still write the schema the steps produce
            empty = source.schema_arrow.empty_table().select(read)
            writer = pq.ParquetWriter(tmp, run(empty, np.zeros(0, dtype=np.int64)).schema)
        writer.close()
        writer = None
        with open(tmp, "rb") as done:  # durable before it becomes visible under its real name
            os.fsync(done.fileno())
        os.replace(tmp, dst)
    except BaseException:
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.close()
        tmp.unlink(missing_ok=True)
        raise


def describe(steps: Sequence[TransformStep]) -> str:
    """One line per step, as the CLI prints it, e.g. ``anonymize email (salted sha256)``."""
    lines = []
    for step in steps:
        if isinstance(step, SelectStep | DropStep):
            lines.append(f"{step.op} {', '.join(step.columns)}")
        elif isinstance(step, RenameStep):
            lines.append("rename " + ", ".join(f"{a} -> {b}" for a, b in step.mapping.items()))
        elif isinstance(step, CastStep):
            lines.append("cast " + ", ".join(f"{c} to {t}" for c, t in step.types.items()))
        elif isinstance(step, DropNullsStep):
            where = ", ".join(step.columns) if step.columns else "any column"
            lines.append(f"drop rows with a missing value in {where}")
        elif isinstance(step, DeduplicateStep):
            lines.append("drop duplicate rows (keep the first)")
        elif isinstance(step, AnonymizeStep):
            how = {"hash": "salted sha256", "mask": "masked", "drop": "dropped"}[step.method]
            if step.method == "hash" and step.salt is None:
                how += ", random salt not kept"
            lines.append(f"anonymize {', '.join(step.columns)} ({how})")
        else:
            lines.append(f"resize images to {step.width}x{step.height} (lanczos, png)")
    return "\n".join(lines)


# --- Planning: walk the steps over the column names -------------------------------------------


def _plan(names: list[str], steps: Sequence[TransformStep]) -> tuple[list[str], list[str]]:
    """Check every step against the columns at that point; return (columns to read, output)."""
    cols = list(names)
    inputs: list[list[str]] = []
    for number, step in enumerate(steps, 1):
        inputs.append(cols)
        where = f"step {number} ({step.op})"
        if isinstance(step, SelectStep):
            _require(step.columns, cols, where)
            twice = sorted({c for c in step.columns if step.columns.count(c) > 1})
            if twice:
                raise InvalidRequest(
                    f"{where} lists {', '.join(map(repr, twice))} more than once",
                    fix="List each column once.",
                )
            cols = list(step.columns)
        elif isinstance(step, DropStep | AnonymizeStep):
            _require(step.columns, cols, where)
            if isinstance(step, DropStep) or step.method == "drop":
                cols = [c for c in cols if c not in step.columns]
                if not cols:
                    raise InvalidRequest(
                        f"{where} would remove every column",
                        fix="Keep at least one column; to keep only some, use a select step.",
                    )
        elif isinstance(step, RenameStep):
            _require(list(step.mapping), cols, where)
            renamed = [step.mapping.get(c, c) for c in cols]
            clash = next((c for c in renamed if renamed.count(c) > 1), None)
            if clash is not None:
                raise InvalidRequest(
                    f"{where} would give two columns the name {clash!r}; columns are: "
                    f"{', '.join(cols)}",
                    fix=f"Pick a new name that is not taken, or drop the existing {clash!r} first.",
                )
            cols = renamed
        elif isinstance(step, CastStep):
            _require(list(step.types), cols, where)
        elif isinstance(step, DropNullsStep):
            _require(step.columns or [], cols, where)
        elif isinstance(step, ResizeImagesStep) and IMAGE_COLUMN not in cols:
            raise InvalidRequest(
                f"{where} needs an {IMAGE_COLUMN!r} column; columns are: {', '.join(cols)}",
                fix="Resize only image datasets, or rename the column of encoded images to "
                f"{IMAGE_COLUMN!r} first.",
            )
    # Walk back from the output to the source columns it (or a row filter) depends on.
    needed = set(cols)
    for step, before in zip(reversed(steps), reversed(inputs), strict=True):
        if isinstance(step, RenameStep):
            back = {new: old for old, new in step.mapping.items()}
            needed = {back.get(c, c) for c in needed}
        elif isinstance(step, DropNullsStep):
            needed |= set(step.columns or before)
        elif isinstance(step, DeduplicateStep):
            needed = set(before)
    return [c for c in names if c in needed], cols


def _require(wanted: list[str], cols: list[str], where: str) -> None:
    for name in wanted:
        if name not in cols:
            close = difflib.get_close_matches(name, cols, n=1)
            hint = f"; the closest is {close[0]!r}" if close else ""
            raise InvalidRequest(
                f"{where} names column {name!r}, which does not exist at that point; "
                f"columns are: {', '.join(cols)}{hint}",
                fix=(f"Use {close[0]!r}" if close else "Use one of those names")
                + " (earlier steps may have renamed or dropped the column).",
            )


# --- Running: the steps over one batch --------------------------------------------------------


class _Run:
    """The steps as a function of one batch; holds what spans batches (salt, rows seen)."""

    def __init__(self, steps: Sequence[TransformStep], output: list[str]) -> None:
        self.steps = steps
        self.output = output
        # One random salt per call, never stored: equal values within the new version still get
        # equal hashes (joins and group-bys keep working), but nobody can recompute them later.
        self.salt = secrets.token_bytes(32)
        self.seen = {i: _SeenRows() for i, s in enumerate(steps) if isinstance(s, DeduplicateStep)}

    def __call__(self, table: Any, rows: Rows) -> Any:
        for i, step in enumerate(self.steps):
            present = table.column_names  # only the columns the output needs were read
            if isinstance(step, SelectStep):
                table = table.select([c for c in step.columns if c in present])
            elif isinstance(step, DropStep):
                table = table.drop_columns([c for c in step.columns if c in present])
            elif isinstance(step, RenameStep):
                table = table.rename_columns([step.mapping.get(c, c) for c in present])
            elif isinstance(step, CastStep):
                for name, to in step.types.items():
                    if name in present:
                        values = _cast(table.column(name).combine_chunks(), to, name, rows)
                        table = table.set_column(present.index(name), name, values)
            elif isinstance(step, DropNullsStep | DeduplicateStep):
                if isinstance(step, DeduplicateStep):
                    keep = self.seen[i].keep_first(_row_keys(table))
                else:
                    keep = np.ones(table.num_rows, dtype=bool)
                    for name in step.columns or present:
                        missing = pc.is_null(table.column(name), nan_is_null=True)
                        keep &= ~missing.to_numpy(zero_copy_only=False)
                table, rows = table.filter(pa.array(keep)), rows[keep]
            elif isinstance(step, AnonymizeStep):
                names = [c for c in step.columns if c in present]
                if step.method == "drop":
                    table = table.drop_columns(names)
                    continue
                salt = self.salt if step.salt is None else step.salt.encode()
                for name in names:
                    values = _anonymize(table.column(name).combine_chunks(), step.method, salt)
                    table = table.set_column(present.index(name), name, values)
            elif IMAGE_COLUMN in present:
                size = (step.width, step.height)
                values = _resize(table.column(IMAGE_COLUMN).combine_chunks(), size, rows)
                table = table.set_column(present.index(IMAGE_COLUMN), IMAGE_COLUMN, values)
        table = table.select(self.output)
        # pandas' metadata describes the source's columns and index, not these.
        meta = {k: v for k, v in (table.schema.metadata or {}).items() if k != b"pandas"}
        return table.replace_schema_metadata(meta or None)


class _BadValue(Exception):
    def __init__(self, index: int | None) -> None:
        self.index = index  # None: no value of this type can be cast


def _cast(values: Any, to: str, column: str, rows: Rows) -> Any:
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if pa.types.is_floating(values.type):  # NaN is pandas' "missing": a null, not "nan" or an error
        values = pc.if_else(pc.is_nan(values), pa.scalar(None, values.type), values)
    try:
        return _CASTS[to](values)
    except _BadValue as bad:
        if bad.index is None:
            message = f"column {column!r} holds {values.type} values, which cannot become {to}"
        else:
            shown = repr(values[bad.index].as_py())
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            message = (
                f"cannot cast column {column!r} to {to}: value {shown} at row {rows[bad.index]} "
                "(counting from 0)"
            )
        raise InvalidRequest(
            message,
            fix=f"Fix or drop the row first, or cast {column!r} to a type that fits "
            "(string always works).",
        ) from None


_CAST_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, ValueError)


def _checked(values: Any, convert: Callable[[Any], Any]) -> Any:
    """``convert(values)``; on failure, the first value that fails, found by bisection."""

    def fails(prefix: int) -> bool:
        try:
            convert(values.slice(0, prefix))
            return False
        except _CAST_ERRORS:
            return True

    try:
        return convert(values)
    except _CAST_ERRORS:
        if fails(0):  # even no values fail: the type itself cannot be converted
            raise _BadValue(None) from None
    lo, hi = 0, len(values) - 1  # the prefix ending at hi fails; find the shortest that does
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if fails(mid + 1) else (mid + 1, hi)
    raise _BadValue(lo)


def _is_text(values: Any) -> bool:
    return bool(pa.types.is_string(values.type) or pa.types.is_large_string(values.type))


def _trimmed(values: Any) -> Any:
    return pc.utf8_trim_whitespace(values) if _is_text(values) else values


def _to_int(values: Any) -> Any:
    def convert(v: Any) -> Any:
        try:
            return pc.cast(_trimmed(v), pa.int64())  # safe: 1.5 fails instead of truncating
        except pa.ArrowInvalid:
            if not _is_text(v):
                raise
            return pc.cast(pc.cast(_trimmed(v), pa.float64()), pa.int64())  # "3.0" is an int

    return _checked(values, convert)


def _to_bool(values: Any) -> Any:
    if pa.types.is_boolean(values.type):
        return values
    if _is_text(values):
        text = pc.utf8_lower(_trimmed(values))
        true = pc.is_in(text, pa.array(["true", "1", "yes"]))
        false = pc.is_in(text, pa.array(["false", "0", "no"]))
    elif pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
        true, false = pc.equal(values, 1), pc.equal(values, 0)  # 2 is an error, not "truthy"
    else:
        raise _BadValue(None)
    ok = pc.fill_null(pc.or_(true, false), False).to_numpy(zero_copy_only=False)
    bad = np.flatnonzero(values.is_valid().to_numpy(zero_copy_only=False) & ~ok)
    if len(bad):
        raise _BadValue(int(bad[0]))
    return pc.if_else(values.is_valid(), true, pa.scalar(None, pa.bool_()))


def _to_datetime(values: Any) -> Any:
    if pa.types.is_timestamp(values.type):
        return values
    if pa.types.is_date(values.type):
        return pc.cast(values, pa.timestamp("us"))
    if not _is_text(values):
        raise _BadValue(None)
    # pandas reads every ISO 8601 form (date only, "T" or space, offsets); arrow rejects offsets
    # into a naive type. Offsets become UTC, so one column has one naive time scale.
    text = pd.Series(values.to_pylist(), dtype=object)
    parsed = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
    bad = np.flatnonzero(text.notna().to_numpy() & parsed.isna().to_numpy())
    if len(bad):
        raise _BadValue(int(bad[0]))
    return pa.array(parsed.dt.tz_convert(None), type=pa.timestamp("us"), from_pandas=True)


_CASTS: dict[str, Callable[[Any], Any]] = {
    "int": _to_int,
    "float": lambda v: _checked(v, lambda x: pc.cast(_trimmed(x), pa.float64())),
    "string": lambda v: _checked(v, lambda x: pc.cast(x, pa.string())),
    "bool": _to_bool,
    "datetime": _to_datetime,
    "category": lambda v: pc.dictionary_encode(_checked(v, lambda x: pc.cast(x, pa.string()))),
}


# --- Deduplication ----------------------------------------------------------------------------

_HASH_KEYS = ("lepton-dedup-k1!", "lepton-dedup-k2!")  # siphash keys: exactly 16 bytes each
_FNV_PRIME = np.uint64(0x100000001B3)
_NULL_HASH = np.uint64(0x9E3779B97F4A7C15)  # any fixed value: a null equals only a null
_FIXED_WIDTH = (
    pa.types.is_integer,
    pa.types.is_boolean,
    pa.types.is_timestamp,
    pa.types.is_date,
    pa.types.is_time,
    pa.types.is_duration,
)


def _row_keys(table: Any) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
    """A 128-bit hash per row: two 64-bit row hashes under independent keys.

    For n distinct rows the chance that any two share both halves is about n^2 / 2^129: 1e-21 for
    a billion rows, far below the odds of a disk error.
    """
    high, low = (np.zeros(table.num_rows, dtype=np.uint64) for _ in _HASH_KEYS)
    for column in table.columns:
        values = column.combine_chunks()
        high = (high ^ _column_hash(values, _HASH_KEYS[0])) * _FNV_PRIME  # order-sensitive mix
        low = (low ^ _column_hash(values, _HASH_KEYS[1])) * _FNV_PRIME
    return high, low


def _column_hash(values: Any, key: str) -> npt.NDArray[np.uint64]:
    """Keyed SipHash of each value; the same value hashes the same in every batch.

    Nulls are filled before converting, because an int column with a null comes out of
    ``to_numpy`` as float64, and 1 would then hash differently from the 1 of a batch without one.
    """
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    kind, valid = values.type, values.is_valid().to_numpy(zero_copy_only=False)
    if pa.types.is_floating(kind):
        data = values.to_numpy(zero_copy_only=False)
        valid &= ~np.isnan(data)  # NaN is missing, as in drop_nulls
        data = np.where(valid, data + 0.0, 0.0).astype(data.dtype)  # + 0.0 turns -0.0 into 0.0
    elif any(is_(kind) for is_ in _FIXED_WIDTH):
        zero = pa.scalar(False if pa.types.is_boolean(kind) else 0, type=kind)
        data = pc.fill_null(values, zero).to_numpy(zero_copy_only=False)
    elif _is_text(values) or pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        data = values.to_numpy(zero_copy_only=False)
    else:  # lists, structs, decimals: hash their printed form
        data = np.array([repr(v) for v in values.to_pylist()], dtype=object)
    hashed = pd.util.hash_array(data, hash_key=key)
    return np.where(valid, hashed, _NULL_HASH).astype(np.uint64)


class _SeenRows:
    """Hashes of the rows kept so far: sorted runs of (high, low) uint64 pairs, 16 bytes a row.

    Runs merge like a binary counter, so a batch is checked against O(log n) sorted arrays by
    binary search on the high half (3x faster end to end than searching 16-byte strings, on 2M
    rows). A Python set of 128-bit ints would cost ~75 bytes a row.
    """

    def __init__(self) -> None:
        self._runs: list[tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]] = []

    def keep_first(
        self, keys: tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]
    ) -> npt.NDArray[np.bool_]:
        high, low = keys
        keep = np.zeros(len(high), dtype=bool)
        pairs = np.ascontiguousarray(np.column_stack([high, low])).view("S16").ravel()
        keep[np.unique(pairs, return_index=True)[1]] = True  # first occurrence within the batch
        order = np.argsort(high)  # sorted needles: numpy's binary search reuses the last bound
        for run_high, run_low in self._runs:
            start = np.empty(len(high), dtype=np.intp)
            start[order] = np.searchsorted(run_high, high[order])
            at = np.minimum(start, len(run_high) - 1)
            keep &= ~((run_high[at] == high) & (run_low[at] == low))
            # Two kept rows with equal high halves (odds ~n^2 / 2^65): compare all of them.
            nxt = np.minimum(start + 1, len(run_high) - 1)
            for i in np.flatnonzero((run_high[at] == high) & (run_high[nxt] == high) & keep):
                stop = np.searchsorted(run_high, high[i], side="right")
                keep[i] = not bool(np.any(run_low[start[i] : stop] == low[i]))
        if keep.any():
            self._runs.append(_sorted(high[keep], low[keep]))
        while len(self._runs) > 1 and len(self._runs[-2][0]) <= len(self._runs[-1][0]):
            (h2, l2), (h1, l1) = self._runs.pop(), self._runs.pop()
            self._runs.append(_sorted(np.concatenate([h1, h2]), np.concatenate([l1, l2])))
        return keep


def _sorted(
    high: npt.NDArray[np.uint64], low: npt.NDArray[np.uint64]
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
    order = np.lexsort((low, high))
    return high[order], low[order]


# --- Anonymisation ----------------------------------------------------------------------------

_EMAIL = re.compile(r"^([^@\s]+)@([^@\s]+?)(\.[^@.\s]+)$")


def _anonymize(values: Any, method: str, salt: bytes) -> Any:
    """Hash or mask each distinct value once; nulls stay null."""
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    encoded = pc.dictionary_encode(values)
    if method == "hash":
        new = [_hash(salt, _as_bytes(v)) for v in encoded.dictionary.to_pylist()]
    else:
        new = [_mask(_as_bytes(v).decode(errors="replace")) for v in encoded.dictionary.to_pylist()]
    return pa.array(new, type=pa.string()).take(encoded.indices)


def _as_bytes(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def _hash(salt: bytes, value: bytes) -> str:
    # hmac.digest is the one-shot C path: ~4x faster than building an hmac.new object per value.
    return hmac.digest(salt, value, "sha256")[: HASH_HEX_CHARS // 2].hex()


def _mask(text: str) -> str:
    """Keep a hint and star the rest: ``a****@*******.com``, ``+* ***-***-4567``, ``A****``."""
    email = _EMAIL.match(text)
    if email:
        local, domain, tld = email.groups()
        return f"{local[0]}{'*' * (len(local) - 1)}@{'*' * len(domain)}{tld}"
    digits = [i for i, ch in enumerate(text) if ch.isdigit()]
    # 7+ digits making up most of the value: a phone, card or account number. Separators carry
    # no identity, so they stay and the value keeps its recognisable shape.
    if len(digits) >= 7 and 2 * len(digits) >= len(text.replace(" ", "")):
        last4 = set(digits[-4:])
        return "".join(ch if i in last4 or not ch.isalnum() else "*" for i, ch in enumerate(text))
    if len(text) <= 3:  # the first character of a 2-letter value is half of it
        return "*" * len(text)
    return text[0] + "*" * (len(text) - 1)


# --- Images -----------------------------------------------------------------------------------

# Modes PNG cannot hold, and the nearest one it can (others become RGB).
_PNG_MODES = {"1", "L", "LA", "P", "RGB", "RGBA", "I;16"}
_PNG_FALLBACK = {"PA": "RGBA", "La": "LA", "RGBa": "RGBA"}


def _resize(values: Any, size: tuple[int, int], rows: Rows) -> Any:
    out: list[bytes | None] = []
    for i, data in enumerate(values.to_pylist()):
        if data is None:
            out.append(None)
            continue
        try:
            with Image.open(io.BytesIO(data)) as image:
                # LANCZOS: the sharpest of Pillow's filters when shrinking; Pillow itself falls
                # back to NEAREST for palette and 1-bit images, where blending makes no colour.
                resized = image.resize(size, Image.Resampling.LANCZOS)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise InvalidRequest(
                f"the {IMAGE_COLUMN!r} value at row {rows[i]} (counting from 0) is not an image "
                f"Pillow can read: {exc}",
                fix="Drop or replace that row first.",
            ) from None
        if resized.mode not in _PNG_MODES:
            resized = resized.convert(_PNG_FALLBACK.get(resized.mode, "RGB"))
        buffer = io.BytesIO()
        resized.save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return pa.array(out, type=values.type)
