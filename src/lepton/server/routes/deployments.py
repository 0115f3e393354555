"""Deployments: serve a model version (by number or alias) or a photon on replicas. The routes
write desired state through :mod:`lepton.control.deployments`; the supervisor converges."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as PathParam

from lepton.control.paging import PageRequest
from lepton.control.plane import Control
from lepton.control.traffic import KEEP_MINUTES
from lepton.schemas import (
    Deployment,
    DeploymentCreate,
    DeploymentCreated,
    DeploymentRevision,
    DeploymentRollback,
    DeploymentTraffic,
    DeploymentUpdate,
    LogChunk,
)
from lepton.server.auth import Principal, require
from lepton.server.errors import ERROR_RESPONSES
from lepton.server.paging import page_request, page_response
from lepton.server.state import get_control

router = APIRouter(prefix="/api/v1/deployments", tags=["deployments"], responses=ERROR_RESPONSES)

DeploymentName = Annotated[str, PathParam(description="Deployment name.", max_length=63)]


@router.post("", name="deployment.create", status_code=201)
def create_deployment(
    body: DeploymentCreate,
    request: Request,
    principal: Principal = Depends(require("write")),
    control: Control = Depends(get_control),
) -> DeploymentCreated:
    """Serve a model version or a photon. The answer holds the inference token (unless
    public): it is shown only here."""
    request.state.audit_resource = f"deployment/{body.name or body.model or body.photon}"
    created = control.deployments.create(principal, body)
    request.state.audit_resource = f"deployment/{created.name}"
    return created


@router.get("", name="deployment.list")
def list_deployments(
    request: Request,
    response: Response,
    page: PageRequest = Depends(page_request),
    principal: Principal = Depends(require("read")),
    control: Control = Depends(get_control),
) -> list[Deployment]:
    return page_response(request, response, control.deployments.list(principal, page))


@router.get("/{deployment_name}", name="deployment.get")
def get_deployment(
    deployment_name: DeploymentName,
    principal: Principal = Depends(require("read")),
    control: Control = Depends(get_control),
) -> Deployment:
    return control.deployments.get(principal, deployment_name)


@router.patch("/{deployment_name}", name="deployment.update")
def update_deployment(
    deployment_name: DeploymentName,
    body: DeploymentUpdate,
    request: Request,
    principal: Principal = Depends(require("write")),
    control: Control = Depends(get_control),
) -> Deployment:
    """Scale (``replicas``: no restart), or roll to a new model version, photon or batching:
    a new replica is ready before an old one drains."""
    request.state.audit_resource = f"deployment/{deployment_name}"
    return control.deployments.update(principal, deployment_name, body)


@router.get("/{deployment_name}/revisions", name="deployment.revisions")
def deployment_revisions(
    deployment_name: DeploymentName,
    request: Request,
    response: Response,
    page: PageRequest = Depends(page_request),
    principal: Principal = Depends(require("read")),
    control: Control = Depends(get_control),
) -> list[DeploymentRevision]:
    """What each generation served (model version or photon, batching, variables, secret
    names) and why it began, newest first."""
    revisions = control.deployments.revisions(principal, deployment_name, page)
    return page_response(request, response, revisions)


@router.post("/{deployment_name}/rollback", name="deployment.rollback")
def rollback_deployment(
    deployment_name: DeploymentName,
    body: DeploymentRollback,
    request: Request,
    principal: Principal = Depends(require("write")),
    control: Control = Depends(get_control),
) -> Deployment:
    """Roll back to the revision before the current generation (or ``generation``'s) as a new
    generation, rolled out as an update is; the replica count stays. With a canary on trial
    (and no ``generation``), drop the canary instead."""
    request.state.audit_resource = f"deployment/{deployment_name}"
    return control.deployments.rollback(principal, deployment_name, body.generation)


@router.post("/{deployment_name}/promote", name="deployment.promote")
def promote_deployment(
    deployment_name: DeploymentName,
    request: Request,
    principal: Principal = Depends(require("write")),
    control: Control = Depends(get_control),
) -> Deployment:
    """Make the canary the serving version: its replicas stay, the old ones are replaced one
    by one."""
    request.state.audit_resource = f"deployment/{deployment_name}"
    return control.deployments.promote(principal, deployment_name)


@router.delete("/{deployment_name}", name="deployment.delete")
def delete_deployment(
    deployment_name: DeploymentName,
    request: Request,
    principal: Principal = Depends(require("write")),
    control: Control = Depends(get_control),
) -> Deployment:
    """Revoke the inference token now and drain every replica; the deployment is gone once
    they have stopped (``state: deleting`` until then)."""
    request.state.audit_resource = f"deployment/{deployment_name}"
    return control.deployments.delete(principal, deployment_name)


@router.get("/{deployment_name}/logs", name="deployment.logs")
def deployment_logs(
    deployment_name: DeploymentName,
    offset: int = Query(0, ge=0, description="Byte offset to read from."),
    principal: Principal = Depends(require("read")),
    control: Control = Depends(get_control),
) -> LogChunk:
    """The replicas' output, each line tagged with its replica id, and the supervisor's events
    (started, ready, crashed, draining), from ``offset``; follow by asking again."""
    return control.deployments.logs(principal, deployment_name, offset)


@router.get("/{deployment_name}/traffic", name="deployment.traffic")
def deployment_traffic(
    deployment_name: DeploymentName,
    minutes: int = Query(60, ge=1, le=KEEP_MINUTES, description="How far back, in minutes."),
    principal: Principal = Depends(require("read")),
    control: Control = Depends(get_control),
) -> DeploymentTraffic:
    """Requests, errors, refusals and latency percentiles in 10-second windows, summed over
    the replicas from their own reports; kept in memory for an hour."""
    return control.deployments.traffic(principal, deployment_name, minutes)
