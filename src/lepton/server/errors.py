"""Every error leaves the API as ``{"error": {"code", "message", "fix"}}``."""

from __future__ import annotations

import contextlib
import errno
import logging
import shutil

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException
from starlette.routing import Match

from lepton.errors import InsufficientStorage, LeptonError, ServerError
from lepton.schemas import ErrorBody, ErrorDetail

__all__ = ["ERROR_RESPONSES", "error_response", "install_error_handlers"]

log = logging.getLogger("lepton.server")

_described = {"model": ErrorBody}
ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    400: {**_described, "description": "Bad request, or client and server API versions differ."},
    401: {**_described, "description": "Missing, unknown, revoked or expired token."},
    403: {**_described, "description": "The token's role or scope does not allow this."},
    404: {**_described, "description": "Not found in the token's workspace."},
    409: {**_described, "description": "Conflicts with the current state."},
    413: {**_described, "description": "Request body over the size limit."},
    422: {**_described, "description": "A field is missing or invalid; the message names it."},
}


def _error(
    status_code: int, detail: ErrorDetail, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = ErrorBody(error=detail).model_dump()
    return JSONResponse(body, status_code=status_code, headers=headers)


def _field_name(loc: tuple[object, ...]) -> str:
    # ("body", "name") -> "name"; ("query", "limit") -> "query parameter 'limit'"
    where, *rest = loc or ("request",)
    name = ".".join(str(part) for part in rest) or str(where)
    return f"{where} parameter '{name}'" if where in ("query", "path", "header") else f"'{name}'"


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for err in exc.errors()[:5]:
        problems.append(f"{_field_name(tuple(err.get('loc', ())))}: {err.get('msg', 'invalid')}")
    message = "invalid request: " + "; ".join(problems)
    return _error(
        422,
        ErrorDetail(
            code="invalid_request",
            message=message,
            fix="correct the named field(s); the API schema is at /api/v1/openapi.json",
        ),
    )


def error_response(exc: LeptonError) -> JSONResponse:
    """The JSON answer for a Lepton error."""
    return _error(exc.status_code, ErrorDetail(**exc.to_dict()))


async def _lepton(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LeptonError)
    if exc.status_code >= 500:
        log.error("server error on %s %s: %s", request.method, request.url.path, exc)
    if wants_page(request):
        from lepton.console.views import error_page

        return error_page(request, exc)
    return error_response(exc)


def wants_page(request: Request) -> bool:
    """A browser navigating the console (not the API, not a script): it gets an HTML page."""
    return not request.url.path.startswith("/api/") and "text/html" in request.headers.get(
        "accept", ""
    )


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        detail = ErrorDetail(
            code="not_found",
            message=f"no route {request.url.path}",
            fix="the API is under /api/v1; see /api/v1/openapi.json",
        )
    elif exc.status_code == 405:
        allowed = _allowed_methods(request)
        detail = ErrorDetail(
            code="method_not_allowed",
            message=f"{request.method} is not allowed on {request.url.path}; "
            f"it takes {', '.join(allowed)}",
            fix="see /api/v1/openapi.json for the methods of each route",
        )
        return _error(405, detail, headers={"Allow": ", ".join(allowed)})
    else:
        detail = ErrorDetail(
            code="http_error",
            message=str(exc.detail),
            fix="see /api/v1/openapi.json for what this route takes",
        )
    return _error(exc.status_code, detail, headers=dict(exc.headers or {}))


def _allowed_methods(request: Request) -> list[str]:
    # FastAPI registers one route per method: ask every route which methods match this path.
    return [
        method
        for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL
            for route in request.app.router.routes
        )
    ]


def disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it was raised from) is a write that found no room: ENOSPC or
    EDQUOT from a file, or SQLite's "database or disk is full"."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "database or disk is full" in str(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def storage_error(request: Request) -> InsufficientStorage:
    home = getattr(request.app.state, "lepton", None)
    where = home.ctx.settings.home if home is not None else None
    free = ""
    if where is not None:
        with contextlib.suppress(OSError):
            free = f" ({shutil.disk_usage(where).free / 2**20:,.1f} MiB free now)"
    return InsufficientStorage(
        f"the disk holding LEPTON_HOME ({where}) ran out of room; nothing of this request was "
        f"kept{free}",
        fix="free space on that disk (or move LEPTON_HOME to a larger one) and send it again; "
        "the request needs about its own size free, twice for a dataset",
    )


async def _storage(request: Request, exc: Exception) -> Response:
    """OSError and database errors: a 507 when the disk is full, else a bug like any other."""
    if disk_full(exc):
        return await _lepton(request, storage_error(request))
    return await _unexpected(request, exc)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    error = ServerError(
        f"internal error: {type(exc).__name__}",
        fix="this is a bug in Lepton; please report it with the server log",
    )
    if wants_page(request):
        from lepton.console.views import error_page

        return error_page(request, error)
    return _error(500, ErrorDetail(**error.to_dict()))


def install_error_handlers(app: FastAPI) -> None:
    from lepton.console.session import SignInNeeded
    from lepton.console.views import sign_in_redirect

    app.add_exception_handler(SignInNeeded, sign_in_redirect)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(LeptonError, _lepton)
    app.add_exception_handler(HTTPException, _http)
    # Handled here, not by the catch-all, which answers and then re-raises into the server log.
    app.add_exception_handler(OSError, _storage)
    app.add_exception_handler(DBAPIError, _storage)
    app.add_exception_handler(Exception, _unexpected)
