"""Workspaces: the unit of isolation.

A token sees only its own workspace. Admins of the instance's first workspace (``default``)
run the instance: they may create workspaces and list them all.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lepton.errors import Conflict, NotFound, PermissionDenied
from lepton.schemas import Role, Workspace, WorkspaceCreate, WorkspaceCreated
from lepton.server.auth import Principal, mint_token, require
from lepton.server.errors import ERROR_RESPONSES
from lepton.server.routes.tokens import token_view
from lepton.server.state import db_session
from lepton.store.models import WorkspaceRow, utcnow

DEFAULT_WORKSPACE = "default"

router = APIRouter(prefix="/api/v1/workspaces", tags=["workspaces"], responses=ERROR_RESPONSES)


def _view(row: WorkspaceRow) -> Workspace:
    return Workspace(name=row.name, created_at=row.created_at)


def _exists(name: str) -> Conflict:
    return Conflict(f"workspace '{name}' already exists", fix="choose another name")


def _is_instance_admin(principal: Principal) -> bool:
    return principal.workspace == DEFAULT_WORKSPACE and principal.has("admin")


@router.get("", name="workspace.list")
def list_workspaces(
    principal: Principal = Depends(require("read")),
    session: Session = Depends(db_session, scope="function"),
) -> list[Workspace]:
    """The caller's workspace; every workspace for admins of `default`."""
    query = select(WorkspaceRow).order_by(WorkspaceRow.name)
    if not _is_instance_admin(principal):
        query = query.where(WorkspaceRow.id == principal.workspace_id)
    return [_view(row) for row in session.scalars(query)]


@router.get("/{workspace_name}", name="workspace.get")
def get_workspace(
    workspace_name: str,
    principal: Principal = Depends(require("read")),
    session: Session = Depends(db_session, scope="function"),
) -> Workspace:
    """One workspace the caller can see."""
    row = session.scalars(select(WorkspaceRow).where(WorkspaceRow.name == workspace_name)).first()
    if row is None or (row.id != principal.workspace_id and not _is_instance_admin(principal)):
        raise NotFound(
            f"workspace '{workspace_name}' does not exist or is not visible to this token",
            fix="list the workspaces you can see: lepton workspace list",
        )
    return _view(row)


@router.post("", name="workspace.create", status_code=201)
def create_workspace(
    body: WorkspaceCreate,
    request: Request,
    principal: Principal = Depends(require("admin")),
    session: Session = Depends(db_session, scope="function"),
) -> WorkspaceCreated:
    """Create a workspace and its first admin token (shown once)."""
    if not _is_instance_admin(principal):
        raise PermissionDenied(
            f"only admins of the '{DEFAULT_WORKSPACE}' workspace may create workspaces; "
            f"{principal.describe()} belongs to '{principal.workspace}'",
            fix=f"use an admin token of the '{DEFAULT_WORKSPACE}' workspace",
        )
    request.state.audit_resource = f"workspace/{body.name}"
    row = WorkspaceRow(id=uuid.uuid4().hex, name=body.name, created_at=utcnow())
    session.add(row)
    try:
        session.flush()  # the token row references it
    except IntegrityError:
        raise _exists(body.name) from None
    token, bearer = mint_token(
        session,
        workspace_id=row.id,
        name=f"{body.name}-admin",
        role=Role.admin,
        scope=None,
        created_by=principal.token_id,
    )
    try:
        session.commit()
    except IntegrityError:  # a concurrent request created the same name first
        raise _exists(body.name) from None
    return WorkspaceCreated(
        workspace=_view(row), admin_token=token_view(token, row.name, secret=bearer)
    )
