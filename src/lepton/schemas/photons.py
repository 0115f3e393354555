"""Photons: packaged serving code, versioned by name and content."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from lepton.schemas.common import _Model


class Photon(_Model):
    name: str = Field(description="Photon name.")
    version: int = Field(description="Version number, from 1.")
    ref: str = Field(description="`name@N`.")
    digest: str = Field(description="sha256 of the package: its content address.")
    size: int = Field(description="Package size in bytes.")
    entry: str = Field(description="`file.py:Class` the replica serves.")
    manifest: dict[str, Any] = Field(description="The package's manifest.json.")
    created_at: datetime = Field(description="Pushed (UTC).")
