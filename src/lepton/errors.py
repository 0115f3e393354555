"""One exception tree for the server, the SDK and the CLI.

Every error carries a ``message`` (what was wrong) and a ``fix`` (what to do). The server
turns them into ``{"error": {"code", "message", "fix"}}`` with the class's HTTP status; the
SDK turns that body back into the same class, so a caller catches one tree wherever the
error came from.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "APIVersionMismatch",
    "AuthenticationError",
    "BlobIntegrityError",
    "ConfigError",
    "Conflict",
    "ConnectionFailed",
    "DataError",
    "HandlerError",
    "HandlerTimeout",
    "InvalidRequest",
    "LeptonError",
    "NotFound",
    "Overloaded",
    "PayloadTooLarge",
    "PermissionDenied",
    "ServerError",
    "ServiceUnavailable",
    "error_for_code",
]


class LeptonError(Exception):
    """Base of every Lepton error."""

    code: ClassVar[str] = "error"
    status_code: ClassVar[int] = 400

    def __init__(self, message: str, *, fix: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.message}. {self.fix}" if self.fix else self.message

    def to_dict(self) -> dict[str, str]:
        """The wire form, ``{"code", "message", "fix"}``."""
        return {"code": self.code, "message": self.message, "fix": self.fix}


class InvalidRequest(LeptonError):
    """The request was malformed or named something that cannot be (HTTP 400/422)."""

    code = "invalid_request"
    status_code = 422


class DataError(InvalidRequest):
    """Uploaded data cannot be read: the message names the file and the line or entry."""

    code = "bad_data"
    status_code = 422


class ConfigError(LeptonError):
    """A setting or local file is wrong."""

    code = "config_error"
    status_code = 400


class APIVersionMismatch(LeptonError):
    """Client and server speak different API versions."""

    code = "api_version_mismatch"
    status_code = 400


class AuthenticationError(LeptonError):
    """No token, an unknown token, or a revoked or expired one (HTTP 401)."""

    code = "unauthenticated"
    status_code = 401


class PermissionDenied(LeptonError):
    """The token is valid but its role or scope does not allow this (HTTP 403)."""

    code = "permission_denied"
    status_code = 403


class NotFound(LeptonError):
    """The resource does not exist in the token's workspace (HTTP 404)."""

    code = "not_found"
    status_code = 404


class Conflict(LeptonError):
    """The resource already exists or is in a state that forbids this (HTTP 409)."""

    code = "conflict"
    status_code = 409


class PayloadTooLarge(LeptonError):
    """The request body exceeds the configured limit (HTTP 413)."""

    code = "payload_too_large"
    status_code = 413


class BlobIntegrityError(LeptonError):
    """Stored bytes do not match their hash or authentication tag."""

    code = "blob_integrity"
    status_code = 500


class ServiceUnavailable(LeptonError):
    """The server is overloaded or not ready (HTTP 503)."""

    code = "unavailable"
    status_code = 503


class InsufficientStorage(LeptonError):
    """The disk holding the control plane's data is full (HTTP 507): nothing of the request
    was kept, and the same request succeeds once there is room."""

    code = "insufficient_storage"
    status_code = 507


class Overloaded(ServiceUnavailable):
    """A replica's queue is full (HTTP 503 with ``Retry-After``): nothing ran, so the same
    request may be sent again. The SDK's ``predict`` and ``explain`` do so themselves, a few
    times; ``retry_after`` is the wait the replica asked for, in seconds (None: it did not say).
    """

    code = "overloaded"

    def __init__(self, message: str, *, fix: str = "", retry_after: float | None = None) -> None:
        super().__init__(message, fix=fix)
        self.retry_after = retry_after


class HandlerTimeout(LeptonError):
    """The served model or photon handler ran past the deployment's timeout (HTTP 504). It
    did run, so the SDK does not send it again."""

    code = "timeout"
    status_code = 504


class HandlerError(LeptonError):
    """The served model or photon handler raised on this request's batch (HTTP 500): the
    message names the handler and the exception, the replica's log has the traceback. A fault
    of the code being served, not of Lepton."""

    code = "handler_error"
    status_code = 500


class ServerError(LeptonError):
    """The server failed; this is a bug in Lepton (HTTP 5xx)."""

    code = "internal"
    status_code = 500


class ConnectionFailed(LeptonError):
    """The SDK could not reach the control plane, or a deployment's replicas."""

    code = "connection_failed"
    status_code = 503


_BY_CODE: dict[str, type[LeptonError]] = {
    cls.code: cls
    for cls in (
        InvalidRequest,
        DataError,
        ConfigError,
        APIVersionMismatch,
        AuthenticationError,
        PermissionDenied,
        NotFound,
        Conflict,
        PayloadTooLarge,
        BlobIntegrityError,
        ServiceUnavailable,
        InsufficientStorage,
        Overloaded,
        HandlerTimeout,
        HandlerError,
        ServerError,
        ConnectionFailed,
    )
}


def error_for_code(code: str, status_code: int) -> type[LeptonError]:
    """The exception class for a wire ``code``, falling back on the HTTP status."""
    if code in _BY_CODE:
        return _BY_CODE[code]
    if status_code >= 500:
        return ServerError
    by_status = {401: AuthenticationError, 403: PermissionDenied, 404: NotFound, 409: Conflict}
    return by_status.get(status_code, InvalidRequest)
