"""Tokens of the caller's workspace: create (secret shown once), list, show, revoke."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from lepton.control.paging import PageRequest
from lepton.control.plane import Control
from lepton.schemas import Token, TokenCreate, TokenCreated
from lepton.server.auth import Principal, require
from lepton.server.errors import ERROR_RESPONSES
from lepton.server.paging import page_request, page_response
from lepton.server.state import get_control

router = APIRouter(prefix="/api/v1/tokens", tags=["tokens"], responses=ERROR_RESPONSES)


@router.get("", name="token.list")
def list_tokens(
    request: Request,
    response: Response,
    include_revoked: bool = False,
    page: PageRequest = Depends(page_request),
    principal: Principal = Depends(require("admin")),
    control: Control = Depends(get_control),
) -> list[Token]:
    """The workspace's tokens (never their secrets), oldest first."""
    found = control.tokens.list(principal, page, include_revoked=include_revoked)
    return page_response(request, response, found)


@router.post("", name="token.create", status_code=201)
def create_token(
    body: TokenCreate,
    request: Request,
    principal: Principal = Depends(require("admin")),
    control: Control = Depends(get_control),
) -> TokenCreated:
    """Create a token with a role or a narrow scope. The secret is in this answer only."""
    created = control.tokens.create(principal, body)
    request.state.audit_resource = f"token/{created.id}"
    return created


@router.get("/{token_id}", name="token.get")
def get_token(
    token_id: str,
    principal: Principal = Depends(require("admin")),
    control: Control = Depends(get_control),
) -> Token:
    """One token of the workspace."""
    return control.tokens.get(principal, token_id)


@router.delete("/{token_id}", name="token.revoke")
def revoke_token(
    token_id: str,
    request: Request,
    principal: Principal = Depends(require("admin")),
    control: Control = Depends(get_control),
) -> Token:
    """Revoke a token at once. The row stays, so the audit log keeps its name."""
    request.state.audit_resource = f"token/{token_id}"
    return control.tokens.revoke(principal, token_id)
