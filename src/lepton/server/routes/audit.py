"""Reading the audit log (admins only)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Query
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from lepton.schemas import AuditEvent, Outcome
from lepton.server.auth import Principal, require
from lepton.server.errors import ERROR_RESPONSES
from lepton.server.routes.workspaces import DEFAULT_WORKSPACE
from lepton.server.state import db_session
from lepton.store.models import AuditEventRow

router = APIRouter(prefix="/api/v1/audit", tags=["audit"], responses=ERROR_RESPONSES)


@router.get("", name="audit.list")
def list_events(
    action: str | None = Query(None, description="Only this action, e.g. `token.create`."),
    actor: str | None = Query(None, description="Only this token name or token id."),
    outcome: Outcome | None = Query(None, description="Only this outcome."),
    since: datetime | None = Query(None, description="Only events at or after this time."),
    limit: int = Query(100, ge=1, le=10_000, description="At most this many, newest first."),
    principal: Principal = Depends(require("admin")),
    session: Session = Depends(db_session, scope="function"),
) -> list[AuditEvent]:
    """Recent audit events of the caller's workspace, newest first.

    Admins of `default` also see requests that failed before a workspace was known
    (missing or invalid tokens).
    """
    where = AuditEventRow.workspace_id == principal.workspace_id
    if principal.workspace == DEFAULT_WORKSPACE:
        where = or_(where, AuditEventRow.workspace_id.is_(None))
    query = select(AuditEventRow).where(where)
    if action:
        query = query.where(AuditEventRow.action == action)
    if actor:
        query = query.where(
            or_(AuditEventRow.actor_name == actor, AuditEventRow.actor_token_id == actor)
        )
    if outcome:
        query = query.where(AuditEventRow.outcome == outcome.value)
    if since:
        query = query.where(AuditEventRow.time >= since)
    rows = session.scalars(query.order_by(AuditEventRow.id.desc()).limit(limit))
    return [
        AuditEvent(
            id=row.id,
            time=row.time,
            actor_token_id=row.actor_token_id,
            actor_name=row.actor_name,
            action=row.action,
            method=row.method,
            resource=row.resource,
            outcome=Outcome(row.outcome),
            status_code=row.status_code,
        )
        for row in rows
    ]
