"""Tokens of the caller's workspace: create (secret shown once), list, show, revoke."""

from __future__ import annotations

from typing import overload

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from lepton.errors import Conflict, InvalidRequest, NotFound
from lepton.schemas import Role, Token, TokenCreate, TokenCreated
from lepton.server.auth import Principal, mint_token, require
from lepton.server.errors import ERROR_RESPONSES
from lepton.server.state import db_session
from lepton.store.models import TokenRow, utcnow

router = APIRouter(prefix="/api/v1/tokens", tags=["tokens"], responses=ERROR_RESPONSES)


@overload
def token_view(row: TokenRow, workspace: str) -> Token: ...
@overload
def token_view(row: TokenRow, workspace: str, *, secret: str) -> TokenCreated: ...
def token_view(row: TokenRow, workspace: str, *, secret: str | None = None) -> Token:
    """The wire form of a token row; with ``secret``, the one-time creation answer."""
    fields = {
        "id": row.id,
        "name": row.name,
        "role": Role(row.role) if row.role else None,
        "scope": row.scope,
        "workspace": workspace,
        "created_at": row.created_at,
        "expires_at": row.expires_at,
        "revoked_at": row.revoked_at,
        "created_by": row.created_by,
    }
    return TokenCreated(**fields, token=secret) if secret else Token(**fields)


def _get(session: Session, principal: Principal, token_id: str) -> TokenRow:
    row = session.get(TokenRow, token_id)
    if row is None or row.workspace_id != principal.workspace_id:
        raise NotFound(
            f"token '{token_id}' does not exist in workspace '{principal.workspace}'",
            fix="list the workspace's tokens: lepton token list",
        )
    return row


@router.get("", name="token.list")
def list_tokens(
    include_revoked: bool = False,
    principal: Principal = Depends(require("admin")),
    session: Session = Depends(db_session, scope="function"),
) -> list[Token]:
    """The workspace's tokens (never their secrets)."""
    query = (
        select(TokenRow)
        .where(TokenRow.workspace_id == principal.workspace_id)
        .order_by(TokenRow.created_at, TokenRow.id)
    )
    if not include_revoked:
        query = query.where(TokenRow.revoked_at.is_(None))
    return [token_view(row, principal.workspace) for row in session.scalars(query)]


@router.post("", name="token.create", status_code=201)
def create_token(
    body: TokenCreate,
    request: Request,
    principal: Principal = Depends(require("admin")),
    session: Session = Depends(db_session, scope="function"),
) -> TokenCreated:
    """Create a token with a role or a narrow scope. The secret is in this answer only."""
    if body.role is not None and body.scope is not None:
        raise InvalidRequest(
            "a token has either a role or a scope, not both",
            fix="drop 'role' for a scoped token, or 'scope' for a workspace token",
        )
    role = body.role if body.role or body.scope else Role.viewer
    row, bearer = mint_token(
        session,
        workspace_id=principal.workspace_id,
        name=body.name,
        role=role,
        scope=body.scope,
        expires_in=body.expires_in,
        created_by=principal.token_id,
    )
    session.commit()
    request.state.audit_resource = f"token/{row.id}"
    return token_view(row, principal.workspace, secret=bearer)


@router.get("/{token_id}", name="token.get")
def get_token(
    token_id: str,
    principal: Principal = Depends(require("admin")),
    session: Session = Depends(db_session, scope="function"),
) -> Token:
    """One token of the workspace."""
    return token_view(_get(session, principal, token_id), principal.workspace)


@router.delete("/{token_id}", name="token.revoke")
def revoke_token(
    token_id: str,
    request: Request,
    principal: Principal = Depends(require("admin")),
    session: Session = Depends(db_session, scope="function"),
) -> Token:
    """Revoke a token at once. The row stays, so the audit log keeps its name."""
    request.state.audit_resource = f"token/{token_id}"
    row = _get(session, principal, token_id)
    if row.revoked_at is not None:
        raise Conflict(
            f"token '{row.name}' ({row.id}) is already revoked",
            fix="nothing to do; lepton token list shows the active tokens",
        )
    row.revoked_at = utcnow()
    session.commit()
    return token_view(row, principal.workspace)
