"""A workspace's uploads (``/api/v1/blobs``): bytes stored for a later claim (a model's
artifact, an evaluation's plots, a job's script), listed and read back by their digest."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import datetime

import anyio
from sqlalchemy import select

from lepton.control.content import UPLOAD, Content
from lepton.control.context import Context
from lepton.control.paging import Page, PageRequest, paged
from lepton.control.tokens import Principal
from lepton.errors import InvalidRequest, NotFound
from lepton.names import DIGEST_PATTERN, fits
from lepton.schemas import Blob
from lepton.store.blobs import BlobWriter
from lepton.store.models import ContentRefRow

__all__ = ["UploadService"]


class UploadService:
    def __init__(self, ctx: Context, content: Content) -> None:
        self.ctx = ctx
        self.content = content

    async def upload(self, principal: Principal, chunks: AsyncIterator[bytes]) -> Blob:
        """Store a streamed body as one of the workspace's uploads. Known content answers the
        existing upload."""
        writer = await self.content.stage_stream(chunks)
        with writer:
            if writer.size == 0:  # the writer's exit removes what it staged
                raise InvalidRequest(
                    "the request body is empty: an upload stores the bytes of the body",
                    fix="send the file as the body: curl --data-binary @FILE",
                )
            return await anyio.to_thread.run_sync(self._claim, principal, writer)

    def _claim(self, principal: Principal, writer: BlobWriter) -> Blob:
        with self.ctx.sessions() as session:
            info = self.content.add_upload(session, principal.workspace_id, writer)
            session.commit()
            ref = session.get(ContentRefRow, (info.digest, UPLOAD, principal.workspace_id, UPLOAD))
            assert ref is not None
            return Blob(digest=info.digest, size=info.size, created_at=ref.created_at)

    def list(self, principal: Principal, page: PageRequest) -> Page[Blob]:
        """The workspace's uploads, newest first."""
        query = select(ContentRefRow).where(
            ContentRefRow.owner_kind == UPLOAD, ContentRefRow.owner_id == principal.workspace_id
        )
        with self.ctx.sessions() as session:

            def view(row: ContentRefRow) -> Blob:
                size = self.content.size(session, row.digest)
                return Blob(digest=row.digest, size=size or 0, created_at=row.created_at)

            return paged(
                session,
                query,
                [ContentRefRow.created_at, ContentRefRow.digest],
                page,
                view,
                descending=True,
                parse=lambda v: [datetime.fromisoformat(str(v[0])), v[1]],
            )

    def open(self, principal: Principal, digest: str) -> tuple[Iterator[bytes], int | None]:
        """An upload's bytes (verified as they stream) and size."""
        if not fits(DIGEST_PATTERN, digest):
            raise InvalidRequest(
                f"'{digest}' is not a blob digest (64 lower-case hex characters)",
                fix="use the digest that the upload returned: lepton blob list",
            )
        with self.ctx.sessions() as session:
            if not self.content.uploaded(session, principal.workspace_id, digest):
                raise NotFound(
                    f"blob {digest} does not exist in workspace '{principal.workspace}'",
                    fix="list the workspace's blobs with GET /api/v1/blobs",
                )
            size = self.content.size(session, digest)
        return self.ctx.blobs.open(digest), size
