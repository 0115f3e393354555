"""First start: the ``default`` workspace, its admin token, and the local credentials file."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from lepton.credentials import Credentials, read_credentials, write_credentials
from lepton.schemas import Role
from lepton.server.auth import mint_token
from lepton.server.routes.workspaces import DEFAULT_WORKSPACE
from lepton.settings import Settings
from lepton.store.models import WorkspaceRow, utcnow

__all__ = ["FirstStart", "bootstrap"]


@dataclass(frozen=True)
class FirstStart:
    """What the first start created; the token is shown once and never stored in clear."""

    token: str
    credentials_written: bool


def bootstrap(settings: Settings, sessions: sessionmaker[Session]) -> FirstStart | None:
    """Create the default workspace and an admin token if the store has no workspace yet."""
    with sessions() as session:
        if session.scalars(select(WorkspaceRow).limit(1)).first() is not None:
            return None
        workspace = WorkspaceRow(id=uuid.uuid4().hex, name=DEFAULT_WORKSPACE, created_at=utcnow())
        session.add(workspace)
        session.flush()  # the token row references it
        _, bearer = mint_token(
            session, workspace_id=workspace.id, name="admin", role=Role.admin, scope=None
        )
        session.commit()
    existing = read_credentials(settings.credentials_path)
    # Never overwrite a login to another server; a stale file for this URL is replaced.
    written = existing is None or existing.url == settings.local_url
    if written:
        write_credentials(
            settings.credentials_path, Credentials(url=settings.local_url, token=bearer)
        )
    return FirstStart(token=bearer, credentials_written=written)
