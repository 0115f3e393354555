"""Bearer tokens: minting, hashing, verification, and the role and scope checks of routes.

A bearer token reads ``lep_<id>_<secret>``. The id is public and indexes the row; only
``sha256(secret)`` is stored. The secret has 256 bits of entropy, so a plain hash (rather
than a slow password hash) is safe and keeps authentication at one indexed lookup.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from lepton.errors import AuthenticationError, PermissionDenied
from lepton.schemas import Role
from lepton.server.state import get_state
from lepton.store.models import TokenRow, WorkspaceRow, utcnow

__all__ = ["Level", "Principal", "authenticate", "hash_secret", "mint_token", "require"]

Level = Literal["read", "write", "admin"]

_ROLE_LEVELS: dict[Role, frozenset[str]] = {
    Role.viewer: frozenset({"read"}),
    Role.editor: frozenset({"read", "write"}),
    Role.admin: frozenset({"read", "write", "admin"}),
}

_bearer = HTTPBearer(auto_error=False, description="A Lepton token: `lep_<id>_<secret>`.")


@dataclass(frozen=True)
class Principal:
    """The caller: a verified token and its workspace."""

    token_id: str
    name: str
    workspace_id: str
    workspace: str
    role: Role | None
    scope: str | None

    def has(self, level: Level) -> bool:
        """Whether the token's role grants ``level`` on the whole workspace."""
        return self.role is not None and level in _ROLE_LEVELS[self.role]

    def scoped_to(self, kind: str, resource_id: str) -> bool:
        """Whether this is a narrow token for exactly ``kind:resource_id``."""
        return self.scope == f"{kind}:{resource_id}"

    def describe(self) -> str:
        return f"token '{self.name}' ({self.role.value if self.role else self.scope})"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def mint_token(
    session: Session,
    *,
    workspace_id: str,
    name: str,
    role: Role | None,
    scope: str | None,
    expires_in: int | None = None,
    created_by: str | None = None,
) -> tuple[TokenRow, str]:
    """Add a token row to ``session`` and return it with its bearer string (shown once)."""
    token_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    row = TokenRow(
        id=token_id,
        workspace_id=workspace_id,
        name=name,
        role=role.value if role else None,
        scope=scope,
        secret_hash=hash_secret(secret),
        created_at=utcnow(),
        expires_at=utcnow() + timedelta(seconds=expires_in) if expires_in else None,
        created_by=created_by,
    )
    session.add(row)
    return row, f"lep_{token_id}_{secret}"


_LOGIN_FIX = "pass a valid token as 'Authorization: Bearer <token>' (lepton login --token ...)"


def authenticate(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
) -> Principal:
    """Verify the bearer token; the 401 message says whether it is missing, unknown, revoked or
    expired. The check uses its own short session: a connection held for the whole request would
    starve the pool while large uploads stream in."""
    if credentials is None:
        raise AuthenticationError("this request needs a bearer token", fix=_LOGIN_FIX)
    parts = credentials.credentials.split("_", 2)
    if len(parts) != 3 or parts[0] != "lep":
        raise AuthenticationError(
            "the bearer token is not a Lepton token (expected lep_<id>_<secret>)", fix=_LOGIN_FIX
        )
    _, token_id, secret = parts
    with get_state(request).sessions() as session:
        principal = _verify(session, token_id, secret)
    request.state.principal = principal
    return principal


def _verify(session: Session, token_id: str, secret: str) -> Principal:
    row = session.get(TokenRow, token_id)
    if row is None or not hmac.compare_digest(row.secret_hash, hash_secret(secret)):
        raise AuthenticationError("the bearer token is not known to this server", fix=_LOGIN_FIX)
    if row.revoked_at is not None:
        raise AuthenticationError(
            f"token '{row.name}' ({row.id}) was revoked at {row.revoked_at:%Y-%m-%d %H:%M:%S} UTC",
            fix="ask a workspace admin for a new token: lepton token create NAME",
        )
    if row.expires_at is not None and row.expires_at <= utcnow():
        raise AuthenticationError(
            f"token '{row.name}' ({row.id}) expired at {row.expires_at:%Y-%m-%d %H:%M:%S} UTC",
            fix="ask a workspace admin for a new token: lepton token create NAME",
        )
    workspace = session.get(WorkspaceRow, row.workspace_id)
    assert workspace is not None  # tokens.workspace_id is a foreign key
    return Principal(
        token_id=row.id,
        name=row.name,
        workspace_id=row.workspace_id,
        workspace=workspace.name,
        role=Role(row.role) if row.role else None,
        scope=row.scope,
    )


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
