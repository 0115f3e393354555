"""Wire models shared by the server, the SDK and the CLI.

Every model forbids unknown fields, so a typo in a request is a 422 that names the field
rather than a silently ignored option.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "API_VERSION",
    "API_VERSION_HEADER",
    "SCOPE_PATTERN",
    "WORKSPACE_NAME_PATTERN",
    "AuditEvent",
    "Blob",
    "ErrorBody",
    "ErrorDetail",
    "Health",
    "Outcome",
    "Role",
    "Status",
    "Token",
    "TokenCreate",
    "TokenCreated",
    "Workspace",
    "WorkspaceCreate",
    "WorkspaceCreated",
]

API_VERSION = 1
"""Integer version of the HTTP API; bumped on any incompatible change."""

API_VERSION_HEADER = "X-Lepton-API-Version"

WORKSPACE_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
SCOPE_PATTERN = r"^(job|deployment):[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Role(StrEnum):
    """What a workspace token may do: read, read and write, or also manage tokens and audit."""

    admin = "admin"
    editor = "editor"
    viewer = "viewer"


class Outcome(StrEnum):
    """How a mutating request ended."""

    success = "success"
    denied = "denied"
    rejected = "rejected"
    failed = "failed"


class ErrorDetail(_Model):
    code: str = Field(description="Stable machine-readable error code, e.g. `not_found`.")
    message: str = Field(description="What was wrong.")
    fix: str = Field(description="How to fix it; may be empty.")


class ErrorBody(_Model):
    error: ErrorDetail = Field(description="The error.")


class Health(_Model):
    status: str = Field(description="`ok` when the server answers.")
    api_version: int = Field(description="The API version the server speaks.")


class WorkspaceCreate(_Model):
    name: Annotated[str, Field(pattern=WORKSPACE_NAME_PATTERN)] = Field(
        description="Lower-case letters, digits and dashes; starts with a letter or digit."
    )


class Workspace(_Model):
    name: str = Field(description="The workspace's unique name.")
    created_at: datetime = Field(description="When it was created (UTC).")


class TokenCreate(_Model):
    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._@-]+$")] = Field(
        description="A label for people reading token lists and the audit log."
    )
    role: Role | None = Field(
        default=None, description="Workspace role. Give a role or a scope; a role by default."
    )
    scope: Annotated[str, Field(pattern=SCOPE_PATTERN)] | None = Field(
        default=None,
        description="Narrow scope instead of a role: `job:<id>` or `deployment:<id>`.",
    )
    expires_in: Annotated[int, Field(gt=0, le=10 * 365 * 86400)] | None = Field(
        default=None, description="Seconds until the token expires; never when absent."
    )


class Token(_Model):
    id: str = Field(description="Public identifier; safe to show and log.")
    name: str = Field(description="The token's label.")
    role: Role | None = Field(description="Workspace role, or null for a scoped token.")
    scope: str | None = Field(description="Narrow scope, or null for a role token.")
    workspace: str = Field(description="The workspace the token belongs to.")
    created_at: datetime = Field(description="When it was created (UTC).")
    expires_at: datetime | None = Field(description="When it expires (UTC), or null.")
    revoked_at: datetime | None = Field(description="When it was revoked (UTC), or null.")
    created_by: str | None = Field(description="Id of the token that created it.")


class TokenCreated(Token):
    token: str = Field(description="The bearer secret. Shown only once; store it now.")


class WorkspaceCreated(_Model):
    workspace: Workspace = Field(description="The new workspace.")
    admin_token: TokenCreated = Field(description="Its first admin token, shown only once.")


class AuditEvent(_Model):
    id: int = Field(description="Increasing event number.")
    time: datetime = Field(description="When the request was answered (UTC).")
    actor_token_id: str | None = Field(description="Token id of the caller; null if unknown.")
    actor_name: str | None = Field(description="Token name of the caller; null if unknown.")
    action: str = Field(description="What was attempted, e.g. `token.create`.")
    method: str = Field(description="HTTP method.")
    resource: str = Field(description="What it was attempted on, e.g. `token/4f2a...`.")
    outcome: Outcome = Field(description="success, denied (401/403), rejected (4xx), failed.")
    status_code: int = Field(description="HTTP status of the answer.")


class Blob(_Model):
    digest: str = Field(description="sha256 of the content, lower-case hex.")
    size: int = Field(description="Size in bytes.")
    created_at: datetime = Field(description="When it was first stored in this workspace.")


class Status(_Model):
    version: str = Field(description="Server package version.")
    api_version: int = Field(description="The API version the server speaks.")
    workspace: str = Field(description="The caller's workspace.")
    token: Token = Field(description="The caller's token.")
    database: str = Field(description="Metadata store backend, e.g. `sqlite` or `postgresql`.")
    storage: str = Field(description="Blob store location, without credentials.")
    encrypted: bool = Field(description="Whether blobs are encrypted at rest.")
    uptime_s: float = Field(description="Seconds since the control plane started.")
