"""The audit log: one event per mutating request (actor, action, resource, outcome), and its
reading by admins."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from lepton.control.context import Context
from lepton.control.paging import Page, PageRequest, paged
from lepton.control.tokens import Principal
from lepton.control.workspaces import DEFAULT_WORKSPACE
from lepton.schemas import AuditEvent, Outcome
from lepton.store.models import AuditEventRow

__all__ = ["AuditFilter", "AuditService"]


@dataclass(frozen=True)
class AuditFilter:
    action: str | None = None
    actor: str | None = None
    """A token name or token id."""
    outcome: Outcome | None = None
    since: datetime | None = None


def _view(row: AuditEventRow) -> AuditEvent:
    return AuditEvent(
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


class AuditService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def record(
        self,
        principal: Principal | None,
        *,
        action: str,
        method: str,
        resource: str,
        outcome: Outcome,
        status_code: int,
    ) -> None:
        with self.ctx.sessions() as session:
            session.add(
                AuditEventRow(
                    workspace_id=principal.workspace_id if principal else None,
                    time=self.ctx.clock(),
                    actor_token_id=principal.token_id if principal else None,
                    actor_name=principal.name if principal else None,
                    action=action[:64],
                    method=method,
                    resource=resource[:256],
                    outcome=outcome.value,
                    status_code=status_code,
                )
            )
            session.commit()

    def system(self, session: Session, *, workspace_id: str, action: str, resource: str) -> None:
        """Record what the control plane did by itself (an automatic rollback), in the caller's
        transaction: actor ``lepton``, method ``AUTO``."""
        session.add(
            AuditEventRow(
                workspace_id=workspace_id,
                time=self.ctx.clock(),
                actor_token_id=None,
                actor_name="lepton",
                action=action[:64],
                method="AUTO",
                resource=resource[:256],
                outcome=Outcome.success.value,
                status_code=200,
            )
        )

    def list(self, principal: Principal, where: AuditFilter, page: PageRequest) -> Page[AuditEvent]:
        """Events of the caller's workspace, newest first. Admins of `default` also see requests
        that failed before a workspace was known (missing or invalid tokens)."""
        scope = AuditEventRow.workspace_id == principal.workspace_id
        if principal.workspace == DEFAULT_WORKSPACE:
            scope = or_(scope, AuditEventRow.workspace_id.is_(None))
        query = select(AuditEventRow).where(scope)
        if where.action:
            query = query.where(AuditEventRow.action == where.action)
        if where.actor:
            query = query.where(
                or_(
                    AuditEventRow.actor_name == where.actor,
                    AuditEventRow.actor_token_id == where.actor,
                )
            )
        if where.outcome:
            query = query.where(AuditEventRow.outcome == where.outcome.value)
        if where.since:
            query = query.where(AuditEventRow.time >= where.since)
        with self.ctx.sessions() as session:
            return paged(session, query, [AuditEventRow.id], page, _view, descending=True)
