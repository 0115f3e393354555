"""What the gateway and the control plane say to each other."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from lepton.schemas.common import _Model


class GatewayRoutes(_Model):
    version: str = Field(description="Changes whenever anything below does.")
    deployments: list[dict[str, Any]] = Field(
        description="Each active deployment: id, name, keys (its paths), token_hashes (None: "
        "public), retry_posts, hold_timeout_s, timeout_s, error, canary_share, and its ready "
        "replicas (url, track)."
    )


class DeploymentLoad(_Model):
    id: str = Field(max_length=32, description="Deployment id.")
    inflight: float = Field(ge=0, description="Requests in flight, averaged over the interval.")
    peak: int = Field(ge=0, description="Most requests in flight at once in the interval.")
    waiting: int = Field(ge=0, description="Requests held now for a replica to start.")
    total: dict[str, Any] = Field(
        default_factory=dict,
        description="Answers since the gateway started: status → count, latency bucket counts.",
    )
    tracks: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="The same per track (stable, canary)."
    )


class GatewayReport(_Model):
    interval_s: float = Field(ge=0, le=3600, description="Seconds since the last report.")
    deployments: list[DeploymentLoad] = Field(max_length=100_000)


class Gateway(_Model):
    url: str | None = Field(description="Where the gateway listens; None while it does not run.")
