"""Blobs: a workspace's uploads, content-addressed, streamed in and out.

Upload order gives crash safety: the bytes are complete in a temp object before the
transaction that moves them into place and records the upload, and that commits before the
answer. A crash in between leaves at most an unreferenced object, which the sweeper erases.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse

from lepton.control.paging import PageRequest
from lepton.control.plane import Control
from lepton.schemas import Blob
from lepton.server.auth import Principal, require
from lepton.server.errors import ERROR_RESPONSES
from lepton.server.paging import page_request, page_response
from lepton.server.state import get_control
from lepton.server.transfer import BYTES_RESPONSE, UPLOAD_BODY, body_chunks, stream_bytes

router = APIRouter(prefix="/api/v1/blobs", tags=["blobs"], responses=ERROR_RESPONSES)


@router.post("", name="blob.upload", status_code=201, openapi_extra=UPLOAD_BODY)
async def upload_blob(
    request: Request,
    principal: Principal = Depends(require("write")),
    control: Control = Depends(get_control),
) -> Blob:
    """Store the raw request body; the answer names its sha256. Uploading known content again
    returns the existing blob."""
    limit = control.ctx.settings.max_upload_bytes
    blob = await control.uploads.upload(principal, body_chunks(request, limit))
    request.state.audit_resource = f"blob/{blob.digest}"
    return blob


@router.get("", name="blob.list")
def list_blobs(
    request: Request,
    response: Response,
    page: PageRequest = Depends(page_request),
    principal: Principal = Depends(require("read")),
    control: Control = Depends(get_control),
) -> list[Blob]:
    """The workspace's blobs, newest first."""
    return page_response(request, response, control.uploads.list(principal, page))


@router.get(
    "/{digest}", name="blob.download", response_class=StreamingResponse, responses=BYTES_RESPONSE
)
def download_blob(
    digest: str,
    principal: Principal = Depends(require("read")),
    control: Control = Depends(get_control),
) -> StreamingResponse:
    """Stream a blob's bytes; the store verifies them against the digest as they go."""
    chunks, size = control.uploads.open(principal, digest)
    return stream_bytes(chunks, digest, size)
