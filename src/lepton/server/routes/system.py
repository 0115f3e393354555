"""Health and status."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends
from sqlalchemy.orm import Session

from lepton._version import __version__
from lepton.schemas import API_VERSION, Health, Status
from lepton.server.auth import Principal, authenticate
from lepton.server.errors import ERROR_RESPONSES
from lepton.server.routes.tokens import token_view
from lepton.server.state import ServerState, db_session, get_state
from lepton.store.db import backend_name
from lepton.store.models import TokenRow

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
    session: Session = Depends(db_session, scope="function"),
    state: ServerState = Depends(get_state),
) -> Status:
    """The server's version and stores, and who the caller is. Any valid token may ask."""
    row = session.get(TokenRow, principal.token_id)
    assert row is not None  # authenticate just loaded it
    return Status(
        version=__version__,
        api_version=API_VERSION,
        workspace=principal.workspace,
        token=token_view(row, principal.workspace),
        database=backend_name(state.engine),
        storage=state.blobs.url,
        encrypted=state.blobs.encrypted,
        uptime_s=round(time.monotonic() - state.started_at, 3),
    )
