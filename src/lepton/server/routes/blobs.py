"""Blobs: content-addressed bytes of a workspace, streamed in and out.

Upload order gives crash safety: the bytes are committed to the blob store (temporary object,
fsync, rename) before the row that makes them visible is committed, and the row before the
answer. A crash in between leaves at most an unreferenced but complete object, never a row
without its bytes or a partial object.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from lepton.errors import InvalidRequest, NotFound
from lepton.schemas import Blob
from lepton.server.auth import Principal, require
from lepton.server.errors import ERROR_RESPONSES
from lepton.server.state import ServerState, db_session, get_state
from lepton.server.transfer import UPLOAD_BODY, body_chunks, stream_blob
from lepton.store.blobs import BlobWriter
from lepton.store.models import BlobRow, utcnow

router = APIRouter(prefix="/api/v1/blobs", tags=["blobs"], responses=ERROR_RESPONSES)

_DIGEST = re.compile(r"^[0-9a-f]{64}$")


def _view(row: BlobRow) -> Blob:
    return Blob(digest=row.digest, size=row.size, created_at=row.created_at)


@router.post("", name="blob.upload", status_code=201, openapi_extra=UPLOAD_BODY)
async def upload_blob(
    request: Request,
    principal: Principal = Depends(require("write")),
    state: ServerState = Depends(get_state),
) -> Blob:
    """Store the raw request body; the answer names its sha256. Uploading known content again
    returns the existing blob."""
    blob = await receive_blob(request, state, principal)
    request.state.audit_resource = f"blob/{blob.digest}"
    return blob


async def receive_blob(
    request: Request, state: ServerState, principal: Principal, *, record: bool = True
) -> Blob:
    """Stream the request body into the blob store (size-limited) and, with ``record``, list it
    among the caller's workspace blobs. Without it the caller must reference the digest itself
    (a job's checkpoint), so erasing it when replaced is possible."""
    with state.blobs.writer() as writer:
        async for chunk in body_chunks(request, state.settings.max_upload_bytes):
            await run_in_threadpool(writer.write, chunk)
        return await run_in_threadpool(_commit, state, principal, writer, record)


def _commit(
    state: ServerState, principal: Principal, writer: BlobWriter, record: bool = True
) -> Blob:
    with state.content_lock, state.sessions() as session:
        info = writer.commit()
        if not record:
            return Blob(digest=info.digest, size=info.size, created_at=utcnow())
        row = session.get(BlobRow, (principal.workspace_id, info.digest))
        if row is None:
            row = BlobRow(
                workspace_id=principal.workspace_id,
                digest=info.digest,
                size=info.size,
                created_at=utcnow(),
            )
            session.add(row)
            session.commit()
        return _view(row)


@router.get("", name="blob.list")
def list_blobs(
    principal: Principal = Depends(require("read")),
    session: Session = Depends(db_session, scope="function"),
) -> list[Blob]:
    """The workspace's blobs, newest first."""
    query = (
        select(BlobRow)
        .where(BlobRow.workspace_id == principal.workspace_id)
        .order_by(BlobRow.created_at.desc(), BlobRow.digest)
    )
    return [_view(row) for row in session.scalars(query)]


@router.get(
    "/{digest}",
    name="blob.download",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "The bytes."}},
)
def download_blob(
    digest: str,
    principal: Principal = Depends(require("read")),
    session: Session = Depends(db_session, scope="function"),
    state: ServerState = Depends(get_state),
) -> StreamingResponse:
    """Stream a blob's bytes; the store verifies them against the digest as they go."""
    if not _DIGEST.match(digest):
        raise InvalidRequest(
            f"'{digest}' is not a blob digest (64 lower-case hex characters)",
            fix="use the digest that the upload returned: lepton blob list",
        )
    row = session.get(BlobRow, (principal.workspace_id, digest))
    if row is None:
        raise NotFound(
            f"blob {digest} does not exist in workspace '{principal.workspace}'",
            fix="list the workspace's blobs with GET /api/v1/blobs",
        )
    return stream_blob(state, digest, row.size)
