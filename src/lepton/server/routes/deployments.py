"""Deployments: serve a model version (by number or alias) or a photon on replicas.

The routes only write the desired state; the supervisor (``lepton.deploy.supervisor``) starts,
watches, rolls and drains the replica processes. Creating a deployment mints an inference
token scoped to it (``deployment:<id>``), returned once, unless it is explicitly public.
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from sqlalchemy import select
from sqlalchemy.orm import Session

from lepton.errors import Conflict, InvalidRequest
from lepton.schemas import (
    DEPLOYMENT_NAME_PATTERN,
    Deployment,
    DeploymentCreate,
    DeploymentCreated,
    DeploymentUpdate,
    LogChunk,
)
from lepton.server.auth import Principal, mint_token, require
from lepton.server.deploy_catalog import (
    allocate_port,
    deployment_view,
    get_deployment,
    resolve_source,
)
from lepton.server.errors import ERROR_RESPONSES
from lepton.server.state import ServerState, db_session, get_state
from lepton.server.transfer import read_log
from lepton.store.models import DeploymentRow, TokenRow, utcnow

router = APIRouter(prefix="/api/v1/deployments", tags=["deployments"], responses=ERROR_RESPONSES)

DeploymentName = Annotated[str, PathParam(description="Deployment name.", max_length=63)]


def _wake(request: Request) -> None:
    supervisor = getattr(request.app.state, "supervisor", None)
    if supervisor is not None:
        supervisor.wake()


def _default_name(name: str) -> str:
    """A model or photon name made fit for a deployment (dashes for ``_`` and ``.``)."""
    cleaned = re.sub(r"[^a-z0-9-]", "-", name.lower()).strip("-")[:63]
    if not re.match(DEPLOYMENT_NAME_PATTERN, cleaned):
        raise InvalidRequest(
            f"'{name}' does not make a deployment name", fix="pass --name with letters and digits"
        )
    return cleaned


@router.post("", name="deployment.create", status_code=201)
def create_deployment(
    body: DeploymentCreate,
    request: Request,
    principal: Principal = Depends(require("write")),
    session: Session = Depends(db_session, scope="function"),
    state: ServerState = Depends(get_state),
) -> DeploymentCreated:
    """Serve a model version or a photon. The answer holds the inference token (unless
    public): it is shown only here."""
    source = resolve_source(session, principal, body.model, body.photon)
    name = body.name or _default_name(source.name)
    request.state.audit_resource = f"deployment/{name}"
    existing = session.scalars(
        select(DeploymentRow).where(
            DeploymentRow.workspace_id == principal.workspace_id, DeploymentRow.name == name
        )
    ).first()
    if existing is not None:
        if existing.state == "deleting":
            raise Conflict(
                f"deployment '{name}' is still being deleted (its replicas are draining)",
                fix="try again in a few seconds, or pick another --name",
            )
        raise Conflict(
            f"deployment '{name}' already exists (serving {existing.source_ref})",
            fix=f"update it: lepton deployment update {name} --model REF; or pick another --name",
        )
    now = utcnow()
    row = DeploymentRow(
        id=uuid.uuid4().hex[:12],
        workspace_id=principal.workspace_id,
        name=name,
        model_version_id=source.model_version.id if source.model_version else None,
        photon_id=source.photon.id if source.photon else None,
        source_ref=source.requested,
        replicas=body.replicas,
        max_batch_size=body.max_batch_size,
        max_wait_ms=body.max_wait_ms,
        timeout_s=body.timeout_s,
        public=body.public,
        port=allocate_port(session, state.settings.host),
        state="active",
        generation=1,
        created_at=now,
        updated_at=now,
        created_by=principal.token_id,
    )
    bearer = None
    if not body.public:
        token, bearer = mint_token(
            session,
            workspace_id=principal.workspace_id,
            name=f"{name[:50]}-inference",
            role=None,
            scope=f"deployment:{row.id}",
            created_by=principal.token_id,
        )
        row.token_id = token.id
    session.add(row)
    session.commit()
    _wake(request)
    view = deployment_view(session, state.settings, row)
    return DeploymentCreated(**view.model_dump(), token=bearer)


@router.get("", name="deployment.list")
def list_deployments(
    principal: Principal = Depends(require("read")),
    session: Session = Depends(db_session, scope="function"),
    state: ServerState = Depends(get_state),
) -> list[Deployment]:
    rows = session.scalars(
        select(DeploymentRow)
        .where(DeploymentRow.workspace_id == principal.workspace_id)
        .order_by(DeploymentRow.name)
    )
    return [deployment_view(session, state.settings, row) for row in rows]


@router.get("/{deployment_name}", name="deployment.get")
def get_deployment_route(
    deployment_name: DeploymentName,
    principal: Principal = Depends(require("read")),
    session: Session = Depends(db_session, scope="function"),
    state: ServerState = Depends(get_state),
) -> Deployment:
    return deployment_view(
        session, state.settings, get_deployment(session, principal, deployment_name)
    )


@router.patch("/{deployment_name}", name="deployment.update")
def update_deployment(
    deployment_name: DeploymentName,
    body: DeploymentUpdate,
    request: Request,
    principal: Principal = Depends(require("write")),
    session: Session = Depends(db_session, scope="function"),
    state: ServerState = Depends(get_state),
) -> Deployment:
    """Scale (``replicas``: no restart), or roll to a new model version, photon or batching:
    a new replica is ready before an old one drains."""
    row = get_deployment(session, principal, deployment_name)
    request.state.audit_resource = f"deployment/{row.name}"
    if row.state == "deleting":
        raise Conflict(f"deployment '{row.name}' is being deleted", fix="deploy it again")
    changes = body.model_dump(exclude_none=True)
    if not changes:
        raise InvalidRequest(
            "the update changes nothing",
            fix="give replicas, model, photon, max_batch_size, max_wait_ms or timeout_s",
        )
    rolls = False
    if body.model is not None or body.photon is not None:
        source = resolve_source(session, principal, body.model, body.photon)
        new_model = source.model_version.id if source.model_version else None
        new_photon = source.photon.id if source.photon else None
        if (new_model, new_photon) != (row.model_version_id, row.photon_id):
            row.model_version_id, row.photon_id = new_model, new_photon
            rolls = True
        row.source_ref = source.requested
    for field in ("max_batch_size", "max_wait_ms", "timeout_s"):
        value = changes.get(field)
        if value is not None and value != getattr(row, field):
            setattr(row, field, value)
            rolls = True
    if body.replicas is not None:
        row.replicas = body.replicas
    if rolls:
        row.generation += 1
        row.error_message = None
    row.updated_at = utcnow()
    session.commit()
    _wake(request)
    return deployment_view(session, state.settings, row)


@router.delete("/{deployment_name}", name="deployment.delete")
def delete_deployment(
    deployment_name: DeploymentName,
    request: Request,
    principal: Principal = Depends(require("write")),
    session: Session = Depends(db_session, scope="function"),
    state: ServerState = Depends(get_state),
) -> Deployment:
    """Revoke the inference token now and drain every replica; the deployment is gone once
    they have stopped (``state: deleting`` until then)."""
    row = get_deployment(session, principal, deployment_name)
    request.state.audit_resource = f"deployment/{row.name}"
    row.state = "deleting"
    row.updated_at = utcnow()
    token = session.get(TokenRow, row.token_id) if row.token_id else None
    if token is not None and token.revoked_at is None:
        token.revoked_at = utcnow()
    session.commit()
    _wake(request)
    return deployment_view(session, state.settings, row)


@router.get("/{deployment_name}/logs", name="deployment.logs")
def deployment_logs(
    deployment_name: DeploymentName,
    offset: int = Query(0, ge=0, description="Byte offset to read from."),
    principal: Principal = Depends(require("read")),
    session: Session = Depends(db_session, scope="function"),
    state: ServerState = Depends(get_state),
) -> LogChunk:
    """The replicas' output, each line tagged with its replica id, and the supervisor's events
    (started, ready, crashed, draining), from ``offset``; follow by asking again."""
    from lepton.deploy.workdir import deployment_log

    row = get_deployment(session, principal, deployment_name)
    path = deployment_log(state.settings.home, row.id)
    return read_log(path, offset, ended=row.state == "deleting")
