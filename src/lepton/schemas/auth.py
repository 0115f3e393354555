"""Workspaces, tokens and their roles or scopes, the audit log, secrets, and the caller's status."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import ConfigDict, Field, field_validator

from lepton.enums import Outcome, Role
from lepton.schemas.common import _Model
from lepton.schemas.env import SECRET_VALUE_MAX

WORKSPACE_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
SCOPE_PATTERN = r"^(job|deployment):[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class WorkspaceCreate(_Model):
    name: Annotated[str, Field(pattern=WORKSPACE_NAME_PATTERN)] = Field(
        description="Lower-case letters, digits and dashes; starts with a letter or digit."
    )


class Workspace(_Model):
    name: str = Field(description="The workspace's unique name.")
    created_at: datetime = Field(description="When it was created (UTC).")


class TokenCreate(_Model):
    """A role token (``role``, ``viewer`` when absent) or a scoped one (``scope``), never both."""

    model_config = ConfigDict(
        json_schema_extra={
            "not": {
                "required": ["role", "scope"],
                "properties": {"role": {"not": {"type": "null"}}, "scope": {"type": "string"}},
            }
        }
    )

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


class SecretPut(_Model):
    value: str = Field(
        min_length=1,
        max_length=SECRET_VALUE_MAX,
        description="The secret's value. Stored encrypted; no API answers it again.",
    )

    @field_validator("value")
    @classmethod
    def _no_nul(cls, value: str) -> str:
        if "\x00" in value:  # it becomes an environment variable, which cannot hold one
            raise ValueError("a secret value may not hold a NUL byte")
        return value


class Secret(_Model):
    name: str = Field(description="The secret's name; jobs and deployments refer to it by it.")
    created_at: datetime = Field(description="When it was created (UTC).")
    updated_at: datetime = Field(description="When its value was last set (UTC).")
    created_by: str | None = Field(description="Id of the token that created it.")


class Status(_Model):
    version: str = Field(description="Server package version.")
    api_version: int = Field(description="The API version the server speaks.")
    workspace: str = Field(description="The caller's workspace.")
    token: Token = Field(description="The caller's token.")
    database: str = Field(description="Metadata store backend, e.g. `sqlite` or `postgresql`.")
    storage: str = Field(description="Blob store location, without credentials.")
    encrypted: bool = Field(description="Whether blobs are encrypted at rest.")
    uptime_s: float = Field(description="Seconds since the control plane started.")
