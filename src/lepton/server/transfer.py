"""Bytes in and out of the API: size-limited streaming request bodies, and blobs streamed back,
with the OpenAPI fragments that describe both."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse

from lepton.errors import PayloadTooLarge
from lepton.schemas import LogChunk
from lepton.server.state import ServerState

__all__ = ["BYTES_RESPONSE", "UPLOAD_BODY", "body_chunks", "read_log", "stream_blob"]

LOG_CHUNK = 256 * 1024  # bytes of log per answer: a follow loop asks again for the rest

UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}
"""``openapi_extra`` of a route that reads a raw body."""

BYTES_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/octet-stream": {}}, "description": "The bytes."}
}
"""``responses`` of a route that streams bytes back."""


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the upload is larger than the limit of {limit} bytes",
        fix="split the data, or raise LEPTON_MAX_UPLOAD_BYTES on the server",
    )


async def body_chunks(request: Request, limit: int) -> AsyncIterator[bytes]:
    """The request body chunk by chunk; 413 as soon as it is (or says it will be) over
    ``limit``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise _too_large(limit)
        if chunk:
            yield chunk


def stream_blob(state: ServerState, digest: str, size: int | None = None) -> StreamingResponse:
    """A stored blob as the answer, verified as it streams; the ETag is its sha256."""
    headers = {"ETag": f'"{digest}"'}
    if size is not None:
        headers["Content-Length"] = str(size)
    return StreamingResponse(
        state.blobs.open(digest), media_type="application/octet-stream", headers=headers
    )


def read_log(path: Path, offset: int, *, ended: bool) -> LogChunk:
    """Up to ``LOG_CHUNK`` bytes of the log at ``path`` from ``offset``, and the offset to ask
    from next; ``complete`` once the writer has ``ended`` and nothing is left to read."""
    text, end, at_end = b"", offset, True
    if path.exists():
        with path.open("rb") as f:
            f.seek(offset)
            text = f.read(LOG_CHUNK)
            end = offset + len(text)
        at_end = end >= path.stat().st_size
    return LogChunk(
        text=text.decode("utf-8", errors="replace"), offset=end, complete=at_end and ended
    )
