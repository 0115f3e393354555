"""Lepton: a self-hosted, local-first AI platform.

The public API is re-exported here and pinned by a test. ``Client`` and the tracking functions
load on first use (PEP 562), so ``import lepton`` costs little more than the error classes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lepton._version import __version__
from lepton.errors import (
    APIVersionMismatch,
    AuthenticationError,
    BlobIntegrityError,
    ConfigError,
    Conflict,
    ConnectionFailed,
    DataError,
    HandlerError,
    HandlerTimeout,
    InvalidRequest,
    LeptonError,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    PermissionDenied,
    ServerError,
    ServiceUnavailable,
)

if TYPE_CHECKING:
    from lepton.client import Client
    from lepton.jobs.tracking import load_arrays, load_dataset, log, save_model
    from lepton.photon import (
        File,
        JPEGResponse,
        Photon,
        PNGResponse,
        StreamingResponse,
        WAVResponse,
    )

__all__ = [
    "APIVersionMismatch",
    "AuthenticationError",
    "BlobIntegrityError",
    "Client",
    "ConfigError",
    "Conflict",
    "ConnectionFailed",
    "DataError",
    "File",
    "HandlerError",
    "HandlerTimeout",
    "InvalidRequest",
    "JPEGResponse",
    "LeptonError",
    "NotFound",
    "Overloaded",
    "PNGResponse",
    "PayloadTooLarge",
    "PermissionDenied",
    "Photon",
    "ServerError",
    "ServiceUnavailable",
    "StreamingResponse",
    "WAVResponse",
    "__version__",
    "load_arrays",
    "load_dataset",
    "log",
    "save_model",
]

_LAZY = {
    "Client": "lepton.client",
    "File": "lepton.photon",
    "JPEGResponse": "lepton.photon",
    "PNGResponse": "lepton.photon",
    "Photon": "lepton.photon",
    "StreamingResponse": "lepton.photon",
    "WAVResponse": "lepton.photon",
    "load_arrays": "lepton.jobs.tracking",
    "load_dataset": "lepton.jobs.tracking",
    "log": "lepton.jobs.tracking",
    "save_model": "lepton.jobs.tracking",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lepton' has no attribute {name!r}")
