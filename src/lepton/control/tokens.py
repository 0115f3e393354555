"""Tokens: minting, verification, revocation, and the caller (:class:`Principal`) they make.

A bearer token reads ``lep_<id>_<secret>``. The id is public and indexes the row; only
``sha256(secret)`` is stored. The secret has 256 bits of entropy, so a plain hash (rather
than a slow password hash) is safe and keeps authentication at one indexed lookup.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from lepton.control.context import Context
from lepton.control.paging import Page, PageRequest, paged
from lepton.errors import (
    AuthenticationError,
    Conflict,
    InvalidRequest,
    NotFound,
    PermissionDenied,
)
from lepton.schemas import Role, Token, TokenCreate, TokenCreated
from lepton.store.models import TokenRow, WorkspaceRow

__all__ = ["CONSOLE_SESSION", "SESSION_S", "Level", "Principal", "TokenService", "hash_secret"]

Level = Literal["read", "write", "admin"]

_ROLE_LEVELS: dict[Role, frozenset[str]] = {
    Role.viewer: frozenset({"read"}),
    Role.editor: frozenset({"read", "write"}),
    Role.admin: frozenset({"read", "write", "admin"}),
}

CONSOLE_SESSION = "console session"
"""The name of the tokens the console signs people in with."""
SESSION_S = 12 * 3600
"""How long a console session lasts: a working day."""

LOGIN_FIX = "pass a valid token as 'Authorization: Bearer <token>' (lepton login --token ...)"


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


def token_view(row: TokenRow, workspace: str) -> Token:
    return Token(
        id=row.id,
        name=row.name,
        role=Role(row.role) if row.role else None,
        scope=row.scope,
        workspace=workspace,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        created_by=row.created_by,
    )


class TokenService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    # --- used by other services, inside their transactions ---------------------------------

    def mint(
        self,
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
        now = self.ctx.clock()
        row = TokenRow(
            id=token_id,
            workspace_id=workspace_id,
            name=name,
            role=role.value if role else None,
            scope=scope,
            secret_hash=hash_secret(secret),
            created_at=now,
            expires_at=now + timedelta(seconds=expires_in) if expires_in else None,
            created_by=created_by,
        )
        session.add(row)
        return row, f"lep_{token_id}_{secret}"

    def revoke_in(self, session: Session, token_id: str | None) -> None:
        """Revoke ``token_id`` (if any, and not already) in ``session``: the one way a token
        stops working, used by jobs that end, deployments that go, and admins. The console
        sessions signed in with it end with it."""
        if token_id is None:
            return
        row = session.get(TokenRow, token_id)
        now = self.ctx.clock()
        if row is not None and row.revoked_at is None:
            row.revoked_at = now
        sessions = select(TokenRow).where(
            TokenRow.created_by == token_id,
            TokenRow.name == CONSOLE_SESSION,
            TokenRow.revoked_at.is_(None),
        )
        for child in session.scalars(sessions):
            child.revoked_at = now

    # --- console sessions -------------------------------------------------------------------

    def open_session(self, bearer: str) -> tuple[Principal, str]:
        """Sign in to the console with an API token: a session token of the same role and
        workspace, valid for :data:`SESSION_S` and revoked with the token it came from.

        Raises:
            AuthenticationError: the token is not valid.
            PermissionDenied: it is a narrow (job or deployment) token, not a person's.
        """
        signer = self.verify(bearer)
        if signer.role is None:
            raise PermissionDenied(
                f"{signer.describe()} is scoped to one resource and cannot sign in",
                fix="sign in with a viewer, editor or admin token (lepton token create NAME)",
            )
        with self.ctx.sessions() as session:
            _, session_bearer = self.mint(
                session,
                workspace_id=signer.workspace_id,
                name=CONSOLE_SESSION,
                role=signer.role,
                scope=None,
                expires_in=SESSION_S,
                created_by=signer.token_id,
            )
            session.commit()
        return self.verify(session_bearer), session_bearer

    def close_session(self, principal: Principal) -> None:
        """Sign out: the session token stops working at once."""
        if principal.name != CONSOLE_SESSION:
            return
        with self.ctx.sessions() as session:
            self.revoke_in(session, principal.token_id)
            session.commit()

    # --- authentication ---------------------------------------------------------------------

    def verify(self, bearer: str) -> Principal:
        """The caller a bearer token names; the 401 says whether it is malformed, unknown,
        revoked or expired."""
        parts = bearer.split("_", 2)
        if len(parts) != 3 or parts[0] != "lep":
            raise AuthenticationError(
                "the bearer token is not a Lepton token (expected lep_<id>_<secret>)",
                fix=LOGIN_FIX,
            )
        _, token_id, secret = parts
        with self.ctx.sessions() as session:
            row = session.get(TokenRow, token_id)
            if row is None or not hmac.compare_digest(row.secret_hash, hash_secret(secret)):
                raise AuthenticationError(
                    "the bearer token is not known to this server", fix=LOGIN_FIX
                )
            _check_live(row, self.ctx.clock())
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

    # --- the tokens API -----------------------------------------------------------------------

    def get(self, principal: Principal, token_id: str) -> Token:
        with self.ctx.sessions() as session:
            return token_view(_get(session, principal, token_id), principal.workspace)

    def list(
        self, principal: Principal, page: PageRequest, *, include_revoked: bool = False
    ) -> Page[Token]:
        query = select(TokenRow).where(TokenRow.workspace_id == principal.workspace_id)
        if not include_revoked:
            query = query.where(TokenRow.revoked_at.is_(None))
        with self.ctx.sessions() as session:
            return paged(
                session,
                query,
                [TokenRow.created_at, TokenRow.id],
                page,
                lambda row: token_view(row, principal.workspace),
                parse=_parse_time_id,
            )

    def create(self, principal: Principal, body: TokenCreate) -> TokenCreated:
        """A token with a role or a narrow scope; the secret is in this answer only."""
        if body.role is not None and body.scope is not None:
            raise InvalidRequest(
                "a token has either a role or a scope, not both",
                fix="drop 'role' for a scoped token, or 'scope' for a workspace token",
            )
        role = body.role if body.role or body.scope else Role.viewer
        with self.ctx.sessions() as session:
            row, bearer = self.mint(
                session,
                workspace_id=principal.workspace_id,
                name=body.name,
                role=role,
                scope=body.scope,
                expires_in=body.expires_in,
                created_by=principal.token_id,
            )
            session.commit()
            return created_view(row, principal.workspace, bearer)

    def revoke(self, principal: Principal, token_id: str) -> Token:
        """Revoke a token at once. The row stays, so the audit log keeps its name."""
        with self.ctx.sessions() as session:
            row = _get(session, principal, token_id)
            if row.revoked_at is not None:
                raise Conflict(
                    f"token '{row.name}' ({row.id}) is already revoked",
                    fix="nothing to do; lepton token list shows the active tokens",
                )
            self.revoke_in(session, row.id)
            session.commit()
            return token_view(row, principal.workspace)


def created_view(row: TokenRow, workspace: str, bearer: str) -> TokenCreated:
    return TokenCreated(**token_view(row, workspace).model_dump(), token=bearer)


def _parse_time_id(values: builtins.list[object]) -> builtins.list[object]:
    return [datetime.fromisoformat(str(values[0])), values[1]]


def _check_live(row: TokenRow, now: datetime) -> None:
    if row.revoked_at is not None:
        raise AuthenticationError(
            f"token '{row.name}' ({row.id}) was revoked at {row.revoked_at:%Y-%m-%d %H:%M:%S} UTC",
            fix="ask a workspace admin for a new token: lepton token create NAME",
        )
    if row.expires_at is not None and row.expires_at <= now:
        raise AuthenticationError(
            f"token '{row.name}' ({row.id}) expired at {row.expires_at:%Y-%m-%d %H:%M:%S} UTC",
            fix="ask a workspace admin for a new token: lepton token create NAME",
        )


def _get(session: Session, principal: Principal, token_id: str) -> TokenRow:
    row = session.get(TokenRow, token_id)
    if row is None or row.workspace_id != principal.workspace_id:
        raise NotFound(
            f"token '{token_id}' does not exist in workspace '{principal.workspace}'",
            fix="list the workspace's tokens: lepton token list",
        )
    return row
