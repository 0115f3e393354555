"""Which stored content is still referenced, and erasing what no longer is.

Content is shared by digest across workspaces, so a digest may be erased only when no row
anywhere refers to it. The check and the erase run under the state's content lock, and so does
every "store bytes, then insert the row that refers to them" sequence, so an erase can never
race a new reference to the same digest.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import InstrumentedAttribute, Session

from lepton.store.blobs import BlobStore
from lepton.store.models import BlobRow, DatasetVersionRow, JobRow, ModelVersionRow, SplitRow

__all__ = ["DIGEST_COLUMNS", "erase_unreferenced"]

# Every column that holds a blob digest. A table added later that refers to blobs joins here.
DIGEST_COLUMNS: tuple[InstrumentedAttribute[str] | InstrumentedAttribute[str | None], ...] = (
    BlobRow.digest,
    DatasetVersionRow.source_digest,
    DatasetVersionRow.data_digest,
    SplitRow.digest,
    ModelVersionRow.artifact_digest,
    JobRow.checkpoint_digest,
)


def is_referenced(session: Session, digest: str) -> bool:
    return any(
        session.scalars(select(column).where(column == digest).limit(1)).first() is not None
        for column in DIGEST_COLUMNS
    )


def erase_unreferenced(session: Session, blobs: BlobStore, digests: Iterable[str]) -> int:
    """Erase the content of each digest no row refers to; returns how many were erased.
    Call with the state's content lock held, after committing the deletion of the rows."""
    erased = 0
    for digest in set(digests):
        if not is_referenced(session, digest):
            blobs.delete(digest)
            erased += 1
    return erased
