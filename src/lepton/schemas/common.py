"""What every resource shares: the ``_Model`` base (unknown fields are a 422), the API
version, error bodies, health, and blobs."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

API_VERSION = 1
"""Integer version of the HTTP API; bumped on any incompatible change."""

API_VERSION_HEADER = "X-Lepton-API-Version"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(_Model):
    code: str = Field(description="Stable machine-readable error code, e.g. `not_found`.")
    message: str = Field(description="What was wrong.")
    fix: str = Field(description="How to fix it; may be empty.")


class ErrorBody(_Model):
    error: ErrorDetail = Field(description="The error.")


class Health(_Model):
    status: str = Field(description="`ok` when the server answers.")
    api_version: int = Field(description="The API version the server speaks.")


class Blob(_Model):
    digest: str = Field(description="sha256 of the content, lower-case hex.")
    size: int = Field(description="Size in bytes.")
    created_at: datetime = Field(description="When it was first stored in this workspace.")
