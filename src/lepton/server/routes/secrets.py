"""Workspace secrets: set, list (names only), delete. No route answers a value; jobs and
deployments name secrets, and get their values in their environment when they start.

Editors and admins set and delete them; any role token lists the names. A job's or a
deployment's token (a narrow scope, no role) can do none of it. The audit log records the
route and the secret's name (``secret/HF_TOKEN``), never the body."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi import Path as PathParam

from lepton.control.paging import PageRequest
from lepton.control.plane import Control
from lepton.schemas import Secret, SecretPut
from lepton.server.auth import Principal, require
from lepton.server.errors import ERROR_RESPONSES
from lepton.server.paging import page_request, page_response
from lepton.server.state import get_control

router = APIRouter(prefix="/api/v1/secrets", tags=["secrets"], responses=ERROR_RESPONSES)

SecretName = Annotated[
    str, PathParam(description="Secret name, as an environment variable.", max_length=128)
]


@router.put("/{secret_name}", name="secret.put")
def put_secret(
    secret_name: SecretName,
    body: SecretPut,
    request: Request,
    principal: Principal = Depends(require("write")),
    control: Control = Depends(get_control),
) -> Secret:
    """Create a secret, or replace its value. The value is stored encrypted and is never
    answered again; jobs and replicas that start afterwards get the new one."""
    request.state.audit_resource = f"secret/{secret_name}"
    return control.secrets.put(principal, secret_name, body)


@router.get("", name="secret.list")
def list_secrets(
    request: Request,
    response: Response,
    page: PageRequest = Depends(page_request),
    principal: Principal = Depends(require("read")),
    control: Control = Depends(get_control),
) -> list[Secret]:
    """The workspace's secrets by name: names and times, never values."""
    return page_response(request, response, control.secrets.list(principal, page))


@router.delete("/{secret_name}", name="secret.delete")
def delete_secret(
    secret_name: SecretName,
    request: Request,
    principal: Principal = Depends(require("write")),
    control: Control = Depends(get_control),
) -> Secret:
    """Delete a secret (refused while a deployment needs it to start)."""
    request.state.audit_resource = f"secret/{secret_name}"
    return control.secrets.delete(principal, secret_name)
