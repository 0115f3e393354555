"""Reading the audit log (admins only)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Query, Request, Response

from lepton.control.audit import AuditFilter
from lepton.control.paging import PageRequest
from lepton.control.plane import Control
from lepton.schemas import AuditEvent, Outcome
from lepton.server.auth import Principal, require
from lepton.server.errors import ERROR_RESPONSES
from lepton.server.paging import page_request, page_response
from lepton.server.state import get_control

router = APIRouter(prefix="/api/v1/audit", tags=["audit"], responses=ERROR_RESPONSES)


@router.get("", name="audit.list")
def list_events(
    request: Request,
    response: Response,
    action: str | None = Query(None, description="Only this action, e.g. `token.create`."),
    actor: str | None = Query(None, description="Only this token name or token id."),
    outcome: Outcome | None = Query(None, description="Only this outcome."),
    since: datetime | None = Query(None, description="Only events at or after this time."),
    page: PageRequest = Depends(page_request),
    principal: Principal = Depends(require("admin")),
    control: Control = Depends(get_control),
) -> list[AuditEvent]:
    """Recent audit events of the caller's workspace, newest first.

    Admins of `default` also see requests that failed before a workspace was known
    (missing or invalid tokens).
    """
    where = AuditFilter(action=action, actor=actor, outcome=outcome, since=since)
    return page_response(request, response, control.audit.list(principal, where, page))
