"""Lepton: a self-hosted, local-first AI platform.

The public API is re-exported here and pinned by a test; heavy libraries are imported lazily
so ``import lepton`` stays fast.
"""

from lepton._version import __version__
from lepton.client import Client
from lepton.errors import (
    APIVersionMismatch,
    AuthenticationError,
    BlobIntegrityError,
    ConfigError,
    Conflict,
    ConnectionFailed,
    InvalidRequest,
    LeptonError,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    ServerError,
    ServiceUnavailable,
)

__all__ = [
    "APIVersionMismatch",
    "AuthenticationError",
    "BlobIntegrityError",
    "Client",
    "ConfigError",
    "Conflict",
    "ConnectionFailed",
    "InvalidRequest",
    "LeptonError",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "ServerError",
    "ServiceUnavailable",
    "__version__",
]
