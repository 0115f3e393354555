"""Workspaces: the unit of isolation (rules in :mod:`lepton.control.workspaces`)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from lepton.control.paging import PageRequest
from lepton.control.plane import Control
from lepton.schemas import Workspace, WorkspaceCreate, WorkspaceCreated
from lepton.server.auth import Principal, require
from lepton.server.errors import ERROR_RESPONSES
from lepton.server.paging import page_request, page_response
from lepton.server.state import get_control

router = APIRouter(prefix="/api/v1/workspaces", tags=["workspaces"], responses=ERROR_RESPONSES)


@router.get("", name="workspace.list")
def list_workspaces(
    request: Request,
    response: Response,
    page: PageRequest = Depends(page_request),
    principal: Principal = Depends(require("read")),
    control: Control = Depends(get_control),
) -> list[Workspace]:
    """The caller's workspace; every workspace for admins of `default`."""
    return page_response(request, response, control.workspaces.list(principal, page))


@router.get("/{workspace_name}", name="workspace.get")
def get_workspace(
    workspace_name: str,
    principal: Principal = Depends(require("read")),
    control: Control = Depends(get_control),
) -> Workspace:
    """One workspace the caller can see."""
    return control.workspaces.get(principal, workspace_name)


@router.post("", name="workspace.create", status_code=201)
def create_workspace(
    body: WorkspaceCreate,
    request: Request,
    principal: Principal = Depends(require("admin")),
    control: Control = Depends(get_control),
) -> WorkspaceCreated:
    """Create a workspace and its first admin token (shown once)."""
    request.state.audit_resource = f"workspace/{body.name}"
    return control.workspaces.create(principal, body)
