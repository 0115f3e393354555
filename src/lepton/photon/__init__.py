"""The Photon authoring API: ``Photon``, ``File`` and the media responses.

Follows leptonai's Photon API, so a photon written for it ports by changing its import line
(``from leptonai.photon import Photon`` becomes ``from lepton.photon import Photon``).
"""

from __future__ import annotations

from lepton.photon.photon import HandlerSpec, Photon, handler
from lepton.photon.types import (
    File,
    HTTPException,
    JPEGResponse,
    PNGResponse,
    StreamingResponse,
    WAVResponse,
)

__all__ = [
    "File",
    "HTTPException",
    "HandlerSpec",
    "JPEGResponse",
    "PNGResponse",
    "Photon",
    "StreamingResponse",
    "WAVResponse",
    "handler",
]
