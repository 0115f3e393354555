"""The routes' authentication and authorisation: the bearer token a request carries becomes a
:class:`~lepton.control.tokens.Principal` (verified by the token service), and ``require``
grants by role or by a narrow scope."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from lepton.control.tokens import LOGIN_FIX, Level, Principal
from lepton.errors import AuthenticationError, PermissionDenied
from lepton.server.state import get_control

__all__ = ["Level", "Principal", "authenticate", "require"]

_bearer = HTTPBearer(auto_error=False, description="A Lepton token: `lep_<id>_<secret>`.")


def authenticate(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
) -> Principal:
    """Verify the bearer token; the 401 message says whether it is missing, unknown, revoked or
    expired. The check uses its own short session: a connection held for the whole request would
    starve the pool while large uploads stream in."""
    if credentials is None:
        raise AuthenticationError("this request needs a bearer token", fix=LOGIN_FIX)
    principal = get_control(request).tokens.verify(credentials.credentials)
    request.state.principal = principal
    return principal


def require(level: Level, *, scope: str | None = None) -> Callable[..., Principal]:
    """A dependency that lets through role tokens granting ``level`` and, when ``scope`` names a
    resource kind (``job``, ``deployment``), tokens scoped to the id in the path parameter
    ``<scope>_id``."""

    def check(request: Request, principal: Principal = Depends(authenticate)) -> Principal:
        if principal.has(level):
            return principal
        if scope is not None:
            resource_id = str(request.path_params.get(f"{scope}_id", ""))
            if principal.scoped_to(scope, resource_id):
                return principal
        needed = {"read": "viewer", "write": "editor", "admin": "admin"}[level]
        raise PermissionDenied(
            f"{principal.describe()} may not {request.method} {request.url.path}: "
            f"it needs the {needed} role",
            fix=f"use a token with the {needed} role (lepton token create NAME --role {needed})",
        )

    return check
