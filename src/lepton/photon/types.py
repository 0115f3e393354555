"""Input and output types of photon handlers: :class:`File` and the media responses.

``File`` arrives as a multipart upload, as a data URI (``data:image/png;base64,...``) or as
plain base64 in JSON; it is never fetched from a URL (a replica makes no outbound calls).
``PNGResponse``, ``JPEGResponse`` and ``WAVResponse`` send bytes with their media type, as
leptonai's do; ``StreamingResponse`` is Starlette's.
"""

from __future__ import annotations

import base64
import binascii
import io
import tempfile
from typing import IO, Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema
from starlette.exceptions import HTTPException
from starlette.responses import Response, StreamingResponse

__all__ = [
    "File",
    "HTTPException",
    "JPEGResponse",
    "PNGResponse",
    "StreamingResponse",
    "WAVResponse",
]


class File:
    """Uploaded bytes, with the file name and media type when the client sent them.

    Accepted as a handler argument from a multipart part, a ``data:`` URI or base64 text.
    """

    __slots__ = ("content", "content_type", "filename")

    def __init__(
        self, content: bytes, *, filename: str | None = None, content_type: str | None = None
    ) -> None:
        self.content = bytes(content)
        self.filename = filename
        self.content_type = content_type

    def get_content(self) -> bytes:
        """The bytes."""
        return self.content

    def get_bytesio(self) -> io.BytesIO:
        """The bytes as a file object."""
        return io.BytesIO(self.content)

    def get_temp_file(self) -> IO[bytes]:
        """The bytes in a named temporary file (deleted when closed), positioned at the start."""
        handle = tempfile.NamedTemporaryFile()  # noqa: SIM115  (the caller closes it)
        handle.write(self.content)
        handle.flush()
        handle.seek(0)
        return handle

    def __len__(self) -> int:
        return len(self.content)

    def __repr__(self) -> str:
        return f"File({len(self.content)} bytes, filename={self.filename!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, File) and other.content == self.content

    __hash__ = None  # type: ignore[assignment]

    @classmethod
    def parse(cls, value: Any) -> File:
        """A ``File`` from bytes, a data URI or base64 text; anything else is a ValueError."""
        if isinstance(value, File):
            return value
        if isinstance(value, (bytes, bytearray, memoryview)):
            return cls(bytes(value))
        if not isinstance(value, str):
            raise ValueError("expected a file: bytes, a data URI or base64 text")
        content_type = None
        text = value
        if text.startswith("data:"):
            header, sep, text = text.partition(",")
            if not sep or not header.endswith(";base64"):
                raise ValueError("a data URI must read data:<type>;base64,<data>")
            content_type = header[5:-7] or None
        elif text.startswith(("http://", "https://", "s3://")):
            raise ValueError("URLs are not fetched by a replica; send the file's bytes instead")
        try:
            content = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("the file is neither a data URI nor valid base64") from None
        return cls(content, content_type=content_type)

    def to_data_uri(self) -> str:
        """The bytes as a ``data:`` URI (how a ``File`` is sent back in JSON)."""
        kind = self.content_type or "application/octet-stream"
        return f"data:{kind};base64,{base64.b64encode(self.content).decode()}"

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls.parse,
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda f: f.to_data_uri(), when_used="json"
            ),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "type": "string",
            "format": "binary",
            "description": "a multipart file part, a data URI, or base64 text",
        }


class _BytesResponse(Response):
    """Bytes (or a file object, or a PIL image) with a fixed media type."""

    image_format: str = ""

    def render(self, content: Any) -> bytes:
        if isinstance(content, io.IOBase):
            data: bytes = content.read()
            return data
        if hasattr(content, "save") and self.image_format:  # a PIL image
            buffer = io.BytesIO()
            content.save(buffer, format=self.image_format)
            return buffer.getvalue()
        return bytes(super().render(content))


class PNGResponse(_BytesResponse):
    media_type = "image/png"
    image_format = "PNG"


class JPEGResponse(_BytesResponse):
    media_type = "image/jpeg"
    image_format = "JPEG"


class WAVResponse(_BytesResponse):
    media_type = "audio/wav"


HTTPException = HTTPException
StreamingResponse = StreamingResponse
