"""Stored bytes and who uses them: the one record (``content_refs``) and the locking that keeps
erasure safe with any number of control-plane processes on one database and one blob store.

The protocol, per object digest ``D`` (its row in ``blob_objects`` is the lock):

- A writer streams its bytes into a temp object first, outside any lock (:meth:`Content.stage`).
  Then, in the owner's transaction, it locks ``D``'s row (creating it), moves the bytes into
  place if they are not there yet, and adds its reference (:meth:`Content.claim`); the commit
  releases the lock. Referring to bytes already stored (a model registering its uploaded
  artifact) locks ``D`` the same way and checks the bytes are there (:meth:`Content.refer`).
- An eraser locks ``D``'s row, checks that no reference is left, deletes the bytes and the row,
  and commits (:meth:`Content.erase`).

So a reference is only ever added while its bytes are in place and locked, and bytes are only
deleted while nothing refers to them and the lock is held. The lock is a write to the row:
a row lock on PostgreSQL, the database's write lock on SQLite. Only the move into place (a
rename; a server-side copy on S3) happens under it, never the upload itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from lepton.control.context import Context
from lepton.errors import NotFound
from lepton.store.blobs import BlobInfo, BlobWriter
from lepton.store.models import BlobObjectRow, ContentRefRow

__all__ = ["Content", "Owner"]

log = logging.getLogger("lepton.content")

Owner = tuple[str, str]
"""``(owner_kind, owner_id)``: who holds a reference (``("photon", id)``)."""

UPLOAD = "upload"
"""Owner kind of a workspace's own uploads (owner id: the workspace id)."""


class Content:
    """References to stored bytes, written in their owners' transactions, and erasure."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    # --- writing --------------------------------------------------------------------------

    @contextmanager
    def stage(self) -> Iterator[BlobWriter]:
        """A writer for new bytes; the temp object is dropped unless :meth:`claim` published it."""
        with self.ctx.blobs.writer() as writer:
            yield writer

    async def stage_stream(self, chunks: AsyncIterator[bytes]) -> BlobWriter:
        """Stream ``chunks`` into a temp object (no lock held while they arrive); the finished
        writer is the caller's to claim, or to abort."""
        writer = self.ctx.blobs.writer()
        try:
            async for chunk in chunks:
                await anyio.to_thread.run_sync(writer.write, chunk)
            await anyio.to_thread.run_sync(writer.finish)
        except BaseException:
            writer.abort()
            raise
        return writer

    def stage_file(self, path: Path) -> BlobWriter:
        """Write a local file into a temp object (no lock held); claim or abort the writer."""
        writer = self.ctx.blobs.writer()
        try:
            with path.open("rb") as f:
                while chunk := f.read(1 << 20):
                    writer.write(chunk)
            writer.finish()
        except BaseException:
            writer.abort()
            raise
        return writer

    def claim(
        self,
        session: Session,
        writers: Iterable[BlobWriter],
        *,
        workspace_id: str,
        owner: Owner,
        roles: Iterable[str],
    ) -> list[BlobInfo]:
        """Lock each staged blob's object, move it into place, and add ``owner``'s reference
        with the matching role, in ``session``'s transaction (the caller commits)."""
        staged = list(writers)
        infos = [w.finish() for w in staged]
        self.lock(session, {i.digest: i.size for i in infos})
        for writer, info, role in zip(staged, infos, roles, strict=True):
            writer.publish()
            self._add(session, info.digest, workspace_id, owner, role)
        return infos

    def refer(
        self,
        session: Session,
        digest: str,
        *,
        workspace_id: str,
        owner: Owner,
        role: str,
        uploaded: bool = True,
    ) -> None:
        """Add ``owner``'s reference to bytes already stored. With ``uploaded`` (the default)
        the workspace must have uploaded them itself; a workspace never reaches another's bytes
        by naming their digest."""
        if uploaded and not self.uploaded(session, workspace_id, digest):
            raise NotFound(
                f"blob {digest} was not uploaded to this workspace",
                fix="upload it first (POST /api/v1/blobs); the SDK and the job runner do this",
            )
        self.lock(session, {digest: None})
        if not self.ctx.blobs.exists(digest):
            raise NotFound(
                f"the bytes of blob {digest} are gone from the store", fix="upload them again"
            )
        self._add(session, digest, workspace_id, owner, role)

    def lock(self, session: Session, digests: dict[str, int | None]) -> None:
        """Lock the object rows of ``digests`` (creating missing ones) until ``session`` ends;
        sorted, so two transactions locking the same objects cannot deadlock."""
        insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        for digest in sorted(digests):
            while True:
                session.execute(
                    insert(BlobObjectRow)
                    .values(digest=digest, size=digests[digest], created_at=self.ctx.clock())
                    .on_conflict_do_nothing(index_elements=["digest"])
                )
                # The write takes the lock; no row means an eraser removed it meanwhile.
                locked = session.execute(
                    update(BlobObjectRow)
                    .where(BlobObjectRow.digest == digest)
                    .values(size=func.coalesce(BlobObjectRow.size, digests[digest]))
                )
                if locked.rowcount:  # type: ignore[attr-defined]
                    break

    def _add(
        self, session: Session, digest: str, workspace_id: str, owner: Owner, role: str
    ) -> None:
        kind, owner_id = owner
        key = (digest, kind, owner_id, role)
        if session.get(ContentRefRow, key) is None:
            session.add(
                ContentRefRow(
                    digest=digest,
                    owner_kind=kind,
                    owner_id=owner_id,
                    role=role,
                    workspace_id=workspace_id,
                    created_at=self.ctx.clock(),
                )
            )
            session.flush()

    def add_upload(self, session: Session, workspace_id: str, writer: BlobWriter) -> BlobInfo:
        """List staged bytes among the workspace's uploads (``/api/v1/blobs``)."""
        return self.claim(
            session,
            [writer],
            workspace_id=workspace_id,
            owner=(UPLOAD, workspace_id),
            roles=[UPLOAD],
        )[0]

    # --- reading --------------------------------------------------------------------------

    def uploaded(self, session: Session, workspace_id: str, digest: str) -> bool:
        """Whether the workspace uploaded ``digest`` itself."""
        return session.get(ContentRefRow, (digest, UPLOAD, workspace_id, UPLOAD)) is not None

    def size(self, session: Session, digest: str) -> int | None:
        row = session.get(BlobObjectRow, digest)
        return row.size if row else None

    def of(self, session: Session, owner: Owner) -> dict[str, str]:
        """``owner``'s references, role → digest."""
        rows = session.scalars(
            select(ContentRefRow).where(
                ContentRefRow.owner_kind == owner[0], ContentRefRow.owner_id == owner[1]
            )
        )
        return {row.role: row.digest for row in rows}

    # --- releasing and erasing ------------------------------------------------------------

    def release(
        self, session: Session, owner: Owner, *, roles: Iterable[str] | None = None
    ) -> list[str]:
        """Drop ``owner``'s references (all, or those of ``roles``) in ``session``; returns the
        digests to :meth:`erase` once the caller committed. An upload that only this owner took
        goes with it: it was uploaded to be registered, and its user is gone."""
        query = select(ContentRefRow).where(
            ContentRefRow.owner_kind == owner[0], ContentRefRow.owner_id == owner[1]
        )
        if roles is not None:
            query = query.where(ContentRefRow.role.in_(list(roles)))
        released = list(session.scalars(query))
        for row in released:
            session.delete(row)
        session.flush()
        for row in released:
            others = session.scalar(
                select(
                    exists().where(
                        ContentRefRow.digest == row.digest,
                        ContentRefRow.workspace_id == row.workspace_id,
                        ContentRefRow.owner_kind != UPLOAD,
                    )
                )
            )
            if not others:
                session.execute(
                    delete(ContentRefRow).where(
                        ContentRefRow.digest == row.digest,
                        ContentRefRow.owner_kind == UPLOAD,
                        ContentRefRow.owner_id == row.workspace_id,
                    )
                )
        return sorted({row.digest for row in released})

    def erase(self, digests: Iterable[str]) -> int:
        """Erase each object that nothing refers to any more; returns how many were erased.
        Each runs in its own short transaction; a lock timeout leaves it to the next sweep."""
        erased = 0
        for digest in sorted(set(digests)):
            for attempt in range(3):
                try:
                    erased += self._erase_one(digest)
                    break
                except OperationalError:  # deadlock or lock timeout: a writer got there first
                    log.warning("erasing %s: attempt %d met a lock; retrying", digest, attempt + 1)
                    time.sleep(0.05 * (attempt + 1))
        return erased

    def _erase_one(self, digest: str) -> int:
        with self.ctx.sessions() as session:
            self.lock(session, {digest: None})
            used = session.scalar(select(exists().where(ContentRefRow.digest == digest)))
            if used:
                session.rollback()
                return 0
            # Bytes first, under the lock: a crash after it leaves a row without bytes, which a
            # writer re-publishes and a sweep removes; never bytes a reference was added to.
            self.ctx.blobs.delete(digest)
            session.execute(delete(BlobObjectRow).where(BlobObjectRow.digest == digest))
            session.commit()
            return 1

    def sweep(self) -> int:
        """Erase every object nothing refers to: rows without references, and stored bytes
        without a row (a writer that crashed between moving them into place and committing)."""
        with self.ctx.sessions() as session:
            unused = set(
                session.scalars(
                    select(BlobObjectRow.digest).where(
                        ~exists().where(ContentRefRow.digest == BlobObjectRow.digest)
                    )
                )
            )
            known = set(session.scalars(select(BlobObjectRow.digest)))
        unused |= {d for d in self.ctx.blobs.digests() if d not in known}
        erased = self.erase(unused)
        if erased:
            log.info("erased %d stored objects nothing referred to", erased)
        return erased
