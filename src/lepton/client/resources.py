"""Typed namespaces of the SDK: ``client.workspaces``, ``.tokens``, ``.audit``, ``.blobs``."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from lepton.client.bodies import checked
from lepton.client.client import CHUNK
from lepton.errors import BlobIntegrityError
from lepton.schemas import (
    AuditEvent,
    Blob,
    Outcome,
    Role,
    Token,
    TokenCreate,
    TokenCreated,
    Workspace,
    WorkspaceCreate,
    WorkspaceCreated,
)

if TYPE_CHECKING:
    from lepton.client.client import Client

__all__ = ["Audit", "Blobs", "Tokens", "Workspaces"]


class _Namespace:
    def __init__(self, client: Client) -> None:
        self._client = client


class Workspaces(_Namespace):
    def list(self) -> list[Workspace]:
        """Workspaces this token can see."""
        data = self._client.collect("/api/v1/workspaces")
        return [Workspace.model_validate(item) for item in data]

    def get(self, name: str) -> Workspace:
        return Workspace.model_validate(
            self._client.request("GET", f"/api/v1/workspaces/{name}").json()
        )

    def create(self, name: str) -> WorkspaceCreated:
        """Create a workspace; the answer holds its first admin token, shown only once."""
        with checked("workspace name", fix="use lower-case letters, digits and dashes: team-a"):
            body = WorkspaceCreate(name=name).model_dump()
        response = self._client.request("POST", "/api/v1/workspaces", json=body)
        return WorkspaceCreated.model_validate(response.json())


class Tokens(_Namespace):
    def list(self, *, include_revoked: bool = False) -> list[Token]:
        params = {"include_revoked": "true"} if include_revoked else None
        data = self._client.collect("/api/v1/tokens", params)
        return [Token.model_validate(item) for item in data]

    def get(self, token_id: str) -> Token:
        return Token.model_validate(
            self._client.request("GET", f"/api/v1/tokens/{token_id}").json()
        )

    def create(
        self,
        name: str,
        *,
        role: Role | str | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
    ) -> TokenCreated:
        """Create a token with a role (``viewer`` by default) or a narrow ``scope``."""
        with checked("token"):
            body = TokenCreate(
                name=name, role=Role(role) if role else None, scope=scope, expires_in=expires_in
            ).model_dump(exclude_none=True)
        response = self._client.request("POST", "/api/v1/tokens", json=body)
        return TokenCreated.model_validate(response.json())

    def revoke(self, token_id: str) -> Token:
        response = self._client.request("DELETE", f"/api/v1/tokens/{token_id}")
        return Token.model_validate(response.json())


class Audit(_Namespace):
    def list(
        self,
        *,
        action: str | None = None,
        actor: str | None = None,
        outcome: Outcome | str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[AuditEvent]:
        """Recent audit events, newest first (admins only)."""
        params: dict[str, Any] = {
            "action": action,
            "actor": actor,
            "outcome": Outcome(outcome).value if outcome else None,
            "since": since.isoformat() if since else None,
        }
        data = self._client.collect("/api/v1/audit", params, limit=limit)
        return [AuditEvent.model_validate(item) for item in data]


class Blobs(_Namespace):
    def upload(self, source: str | os.PathLike[str] | bytes | IO[bytes] | Iterable[bytes]) -> Blob:
        """Stream a file, a binary file object, bytes or an iterable of chunks to the server."""
        if isinstance(source, (str, os.PathLike)):
            with open(source, "rb") as f:
                return self._send(_read_chunks(f))
        if isinstance(source, bytes):
            return self._send(source)
        if hasattr(source, "read"):
            return self._send(_read_chunks(source))  # type: ignore[arg-type]
        return self._send(source)

    def _send(self, content: bytes | Iterable[bytes]) -> Blob:
        response = self._client.request(
            "POST",
            "/api/v1/blobs",
            content=content,
            headers={"Content-Type": "application/octet-stream"},
        )
        return Blob.model_validate(response.json())

    def list(self) -> list[Blob]:
        data = self._client.collect("/api/v1/blobs")
        return [Blob.model_validate(item) for item in data]

    def open(self, digest: str) -> Iterator[bytes]:
        """Stream a blob's bytes; raises ``BlobIntegrityError`` at the end if they do not hash
        to ``digest``."""
        hasher = hashlib.sha256()
        with self._client.stream("GET", f"/api/v1/blobs/{digest}") as response:
            for chunk in response.iter_bytes(CHUNK):
                hasher.update(chunk)
                yield chunk
        if hasher.hexdigest() != digest:
            raise BlobIntegrityError(
                f"downloaded bytes hash to {hasher.hexdigest()}, not {digest}",
                fix="retry the download; if it fails again the stored blob is damaged",
            )

    def read(self, digest: str) -> bytes:
        """The whole blob in memory (verified); use :meth:`download` for large ones."""
        return b"".join(self.open(digest))

    def download(self, digest: str, path: str | os.PathLike[str]) -> Path:
        """Write a blob to ``path``, verified; the file appears only when it is complete."""
        return self._client.download(f"/api/v1/blobs/{digest}", Path(path), digest=digest)


def _read_chunks(f: IO[bytes]) -> Iterator[bytes]:
    while chunk := f.read(CHUNK):
        yield chunk
