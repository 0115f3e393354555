"""Bytes in and out of the API: size-limited streaming request bodies, and blobs streamed back,
with the OpenAPI fragments that describe both."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse

from lepton.errors import PayloadTooLarge

__all__ = ["BYTES_RESPONSE", "UPLOAD_BODY", "body_chunks", "stream_bytes"]

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


def stream_bytes(
    chunks: Iterator[bytes],
    digest: str,
    size: int | None = None,
    media_type: str = "application/octet-stream",
) -> StreamingResponse:
    """Stored bytes as the answer, verified as they stream; the ETag is their sha256."""
    headers = {"ETag": f'"{digest}"'}
    if size is not None:
        headers["Content-Length"] = str(size)
    return StreamingResponse(chunks, media_type=media_type, headers=headers)
