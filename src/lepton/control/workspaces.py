"""Workspaces, the unit of isolation, and the first start that creates ``default``.

A token sees only its own workspace. Admins of the instance's first workspace (``default``)
run the instance: they may create workspaces and list them all.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from lepton.control.context import Context
from lepton.control.paging import Page, PageRequest, paged
from lepton.control.tokens import Principal, TokenService, created_view
from lepton.credentials import Credentials, read_credentials, write_credentials
from lepton.errors import Conflict, NotFound, PermissionDenied
from lepton.schemas import Role, Workspace, WorkspaceCreate, WorkspaceCreated
from lepton.store.models import WorkspaceRow

__all__ = ["DEFAULT_WORKSPACE", "FirstStart", "WorkspaceService"]

DEFAULT_WORKSPACE = "default"


@dataclass(frozen=True)
class FirstStart:
    """What the first start created; the token is shown once and never stored in clear."""

    token: str
    credentials_written: bool


def _view(row: WorkspaceRow) -> Workspace:
    return Workspace(name=row.name, created_at=row.created_at)


def is_instance_admin(principal: Principal) -> bool:
    return principal.workspace == DEFAULT_WORKSPACE and principal.has("admin")


class WorkspaceService:
    def __init__(self, ctx: Context, tokens: TokenService) -> None:
        self.ctx = ctx
        self.tokens = tokens

    def bootstrap(self) -> FirstStart | None:
        """Create the default workspace, an admin token and the local credentials file if the
        store has no workspace yet."""
        with self.ctx.sessions() as session:
            if session.scalars(select(WorkspaceRow).limit(1)).first() is not None:
                return None
            workspace = WorkspaceRow(
                id=uuid.uuid4().hex, name=DEFAULT_WORKSPACE, created_at=self.ctx.clock()
            )
            session.add(workspace)
            session.flush()  # the token row references it
            _, bearer = self.tokens.mint(
                session, workspace_id=workspace.id, name="admin", role=Role.admin, scope=None
            )
            try:
                session.commit()
            except IntegrityError:  # another control plane on this database bootstrapped first
                return None
        settings = self.ctx.settings
        existing = read_credentials(settings.credentials_path)
        # Never overwrite a login to another server; a stale file for this URL is replaced.
        written = existing is None or existing.url == settings.local_url
        if written:
            write_credentials(
                settings.credentials_path, Credentials(url=settings.local_url, token=bearer)
            )
        return FirstStart(token=bearer, credentials_written=written)

    def list(self, principal: Principal, page: PageRequest) -> Page[Workspace]:
        """The caller's workspace; every workspace for admins of `default`."""
        query = select(WorkspaceRow)
        if not is_instance_admin(principal):
            query = query.where(WorkspaceRow.id == principal.workspace_id)
        with self.ctx.sessions() as session:
            return paged(session, query, [WorkspaceRow.name], page, _view)

    def get(self, principal: Principal, name: str) -> Workspace:
        with self.ctx.sessions() as session:
            row = session.scalars(select(WorkspaceRow).where(WorkspaceRow.name == name)).first()
            if row is None or (
                row.id != principal.workspace_id and not is_instance_admin(principal)
            ):
                raise NotFound(
                    f"workspace '{name}' does not exist or is not visible to this token",
                    fix="list the workspaces you can see: lepton workspace list",
                )
            return _view(row)

    def create(self, principal: Principal, body: WorkspaceCreate) -> WorkspaceCreated:
        """A workspace and its first admin token (shown once)."""
        if not is_instance_admin(principal):
            raise PermissionDenied(
                f"only admins of the '{DEFAULT_WORKSPACE}' workspace may create workspaces; "
                f"{principal.describe()} belongs to '{principal.workspace}'",
                fix=f"use an admin token of the '{DEFAULT_WORKSPACE}' workspace",
            )
        exists = Conflict(f"workspace '{body.name}' already exists", fix="choose another name")
        with self.ctx.sessions() as session:
            row = WorkspaceRow(id=uuid.uuid4().hex, name=body.name, created_at=self.ctx.clock())
            session.add(row)
            try:
                session.flush()  # the token row references it
            except IntegrityError:
                raise exists from None
            token, bearer = self.tokens.mint(
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
                raise exists from None
            return WorkspaceCreated(
                workspace=_view(row), admin_token=created_view(token, row.name, bearer)
            )
