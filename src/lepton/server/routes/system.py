"""Health and status."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends

from lepton._version import __version__
from lepton.control.plane import Control
from lepton.schemas import API_VERSION, Health, Status
from lepton.server.auth import Principal, authenticate
from lepton.server.errors import ERROR_RESPONSES
from lepton.server.state import get_control

router = APIRouter()


@router.get("/healthz", name="health", tags=["system"])
def health() -> Health:
    """Liveness: answers without a token."""
    return Health(status="ok", api_version=API_VERSION)


@router.get(
    "/api/v1/status",
    name="status",
    tags=["system"],
    responses={k: ERROR_RESPONSES[k] for k in (400, 401)},
)
def status(
    principal: Principal = Depends(authenticate),
    control: Control = Depends(get_control),
) -> Status:
    """The server's version and stores, and who the caller is. Any valid token may ask."""
    ctx = control.ctx
    return Status(
        version=__version__,
        api_version=API_VERSION,
        workspace=principal.workspace,
        token=control.tokens.get(principal, principal.token_id),
        database=ctx.engine.dialect.name,
        storage=ctx.blobs.url,
        encrypted=ctx.blobs.encrypted,
        uptime_s=round(time.monotonic() - ctx.started_at, 3),
    )
