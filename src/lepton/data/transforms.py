"""Derive a new dataset version from an old one by a list of steps, streamed batch by batch.

Every step is checked against the columns as they stand at that point before a single row is
read, so a typo fails in milliseconds, not after an hour of image resizing. Only the source
columns the output (or a row filter) depends on are read: selecting ``label`` from an image
dataset never decodes an image. The result is written under a temporary name beside ``dst`` and
renamed into place at the end, so ``dst`` is either complete or absent.
"""

from __future__ import annotations

import contextlib
import hmac
import io
import os
import re
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]
import pyarrow.compute as pc  # type: ignore[import-untyped,unused-ignore]
import pyarrow.parquet as pq  # type: ignore[import-untyped,unused-ignore]
from PIL import Image

from lepton.data.casts import Rows, cast_values
from lepton.data.columns import unknown_column
from lepton.data.dedup import SeenRows, row_keys
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

__all__ = ["IMAGE_COLUMN", "apply_transform", "describe", "hashed_columns"]

IMAGE_COLUMN = "image"
_BATCH_BYTES = 64 * 2**20  # per batch: 65,536 rows of 100 KB images would be 6.5 GB at once
# 64 bits: two of n distinct values share a hash with odds ~n^2 / 2^65 (3e-8 for a million).
HASH_HEX_CHARS = 16


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


def hashed_columns(hashed: Sequence[str], steps: Sequence[TransformStep]) -> list[str]:
    """The columns holding salted digests after `steps`, given those that held them before.

    A digest holds no personal data, but 16 hex characters are all digits once in ~1,900
    values, and such a value can pass for a card number; the PII scan skips these columns.
    A cast keeps them: to a string type the digests are unchanged, to another they are no text.
    """
    cols = list(dict.fromkeys(hashed))
    for step in steps:
        if isinstance(step, SelectStep):
            cols = [c for c in cols if c in step.columns]
        elif isinstance(step, DropStep):
            cols = [c for c in cols if c not in step.columns]
        elif isinstance(step, RenameStep):
            cols = [step.mapping.get(c, c) for c in cols]
        elif isinstance(step, AnonymizeStep):
            cols = [c for c in cols if c not in step.columns]
            if step.method == "hash":
                cols += step.columns
    return cols


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
            raise unknown_column(
                name,
                cols,
                where=where,
                when=" at that point",
                use="Use {} (earlier steps may have renamed or dropped the column).",
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
        self.seen = {i: SeenRows() for i, s in enumerate(steps) if isinstance(s, DeduplicateStep)}

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
                        values = cast_values(table.column(name).combine_chunks(), to, name, rows)
                        table = table.set_column(present.index(name), name, values)
            elif isinstance(step, DropNullsStep | DeduplicateStep):
                if isinstance(step, DeduplicateStep):
                    keep = self.seen[i].keep_first(row_keys(table))
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
