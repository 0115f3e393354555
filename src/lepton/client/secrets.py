"""``client.secrets``: workspace secrets, set and deleted by name; values go in, never out."""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING

from lepton.schemas import Secret

if TYPE_CHECKING:
    from lepton.client.client import Client

__all__ = ["Secrets"]


class Secrets:
    def __init__(self, client: Client) -> None:
        self._client = client

    def create(self, name: str, value: str) -> Secret:
        """Create secret ``name``, or replace its value. Jobs and deployments name it
        (``secrets=["HF_TOKEN"]`` or ``["ENV=HF_TOKEN"]``) to get it as a variable; no call
        answers the value again."""
        body = {"value": value}  # checked by the server, whose 422 names the field
        response = self._client.request("PUT", f"/api/v1/secrets/{name}", json=body)
        return Secret.model_validate(response.json())

    def list(self) -> builtins.list[Secret]:
        """The workspace's secrets: names and times, never values."""
        return [Secret.model_validate(item) for item in self._client.collect("/api/v1/secrets")]

    def delete(self, name: str) -> Secret:
        """Delete a secret (refused while a deployment needs it)."""
        response = self._client.request("DELETE", f"/api/v1/secrets/{name}")
        return Secret.model_validate(response.json())
