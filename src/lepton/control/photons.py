"""Photons: packaged services (a zip of source files and a manifest, never a pickle), stored
content-addressed and numbered per name by the one numbering helper, so a number is never given
twice, even after its version was deleted.

A push is spooled to a private work folder and checked (a safe zip, a manifest naming an entry
``file.py:Class`` that its file defines, no pickle) before anything is stored: a bad package
stores nothing. Deleting a version releases its package, and bytes no one else uses are erased.
"""

from __future__ import annotations

import builtins
import json
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
from sqlalchemy import select
from sqlalchemy.orm import Session

from lepton.control.content import Content
from lepton.control.context import Context
from lepton.control.numbering import next_number
from lepton.control.paging import Page, PageRequest, paged
from lepton.control.tokens import Principal
from lepton.errors import Conflict, InvalidRequest, NotFound
from lepton.names import DIGEST_PATTERN, fits
from lepton.refs import parse_ref, version_number
from lepton.schemas import DATASET_NAME_PATTERN, Photon
from lepton.store.models import PhotonRow

__all__ = ["PhotonService", "UserCheck"]


UserCheck = Callable[[Session, builtins.list[PhotonRow]], builtins.list[str]]
"""Names what serves any of the photon versions (``deployment web``)."""


def owner(photon_id: str) -> tuple[str, str]:
    return ("photon", photon_id)


def view(row: PhotonRow) -> Photon:
    return Photon(
        name=row.name,
        version=row.version,
        ref=f"{row.name}@{row.version}",
        digest=row.digest,
        size=row.size,
        entry=row.entry,
        manifest=json.loads(row.manifest_json),
        created_at=row.created_at,
    )


class PhotonService:
    def __init__(self, ctx: Context, content: Content) -> None:
        self.ctx = ctx
        self.content = content
        self.users: builtins.list[UserCheck] = []

    def photon_row(self, session: Session, principal: Principal, ref: str) -> PhotonRow:
        """A photon by ``name``, ``name@N`` (``latest``) or the sha256 of its package."""
        query = select(PhotonRow).where(PhotonRow.workspace_id == principal.workspace_id)
        if fits(DIGEST_PATTERN, ref):
            row = session.scalars(
                query.where(PhotonRow.digest == ref).order_by(PhotonRow.version.desc())
            ).first()
            shown = f"with digest {ref}"
        else:
            name, version = parse_ref(ref)
            query = query.where(PhotonRow.name == name)
            number = version_number(version, example=f"{name}@1")
            query = (
                query.order_by(PhotonRow.version.desc())
                if number is None
                else query.where(PhotonRow.version == number)
            )
            row = session.scalars(query.limit(1)).first()
            shown = f"'{ref}'"
        if row is None:
            raise NotFound(
                f"no photon {shown} in workspace '{principal.workspace}'",
                fix="list them with `lepton photon list`, or push one: lepton photon push DIR",
            )
        return row

    def list(self, principal: Principal, page: PageRequest) -> Page[Photon]:
        """Every photon version, by name, newest version first."""
        query = select(PhotonRow).where(PhotonRow.workspace_id == principal.workspace_id)
        with self.ctx.sessions() as session:
            result = paged(session, query, [PhotonRow.name, PhotonRow.version], page, view)
        # Within a name, newest first, as `lepton photon list` shows them.
        items = sorted(result.items, key=lambda p: (p.name, -p.version))
        return Page(items=items, next=result.next)

    def get(self, principal: Principal, name: str, version: str = "latest") -> Photon:
        with self.ctx.sessions() as session:
            return view(self.photon_row(session, principal, f"{name}@{version}"))

    async def push(
        self, principal: Principal, chunks: AsyncIterator[bytes], *, name: str | None
    ) -> tuple[Photon, bool]:
        """Store a pushed package; returns the photon and whether it is a new version (the same
        bytes under the same name answer the existing one)."""
        with self.ctx.spool() as work:
            package = work / "photon.zip"
            with package.open("wb") as f:
                async for chunk in chunks:
                    await anyio.to_thread.run_sync(f.write, chunk)
            return await anyio.to_thread.run_sync(self._store, principal, package, name)

    def _store(self, principal: Principal, package: Path, name: str | None) -> tuple[Photon, bool]:
        from lepton.photon.inspect import inspect_package

        info = inspect_package(package)
        name = name or info.name
        if name is None or not fits(DATASET_NAME_PATTERN, name):
            raise InvalidRequest(
                f"the photon needs a name of lower-case letters, digits, '-', '_' or '.'; "
                f"got {name!r}",
                fix="pass one: lepton photon push DIR --name NAME",
            )
        with self.content.stage_file(package) as writer:  # the big write: no lock held
            digest = writer.finish().digest
            with self.ctx.sessions() as session:
                same = session.scalars(
                    select(PhotonRow).where(
                        PhotonRow.workspace_id == principal.workspace_id,
                        PhotonRow.name == name,
                        PhotonRow.digest == digest,
                    )
                ).first()
                if same is not None:
                    return view(same), False
                row_id = uuid.uuid4().hex
                blob = self.content.claim(
                    session,
                    [writer],
                    workspace_id=principal.workspace_id,
                    owner=owner(row_id),
                    roles=["package"],
                )[0]
                row = PhotonRow(
                    id=row_id,
                    workspace_id=principal.workspace_id,
                    name=name,
                    version=next_number(session, "photon", f"{principal.workspace_id}/{name}"),
                    digest=blob.digest,
                    size=blob.size,
                    entry=info.entry,
                    manifest_json=json.dumps(info.manifest),
                    created_at=self.ctx.clock(),
                    created_by=principal.token_id,
                )
                session.add(row)
                session.commit()
                return view(row), True

    def delete(self, principal: Principal, name: str, version: str | None) -> builtins.list[Photon]:
        """Delete a photon's versions (one, or all), refused while a deployment serves one;
        their packages are erased unless something else uses the bytes."""
        with self.ctx.sessions() as session:
            if version is not None:
                rows = [self.photon_row(session, principal, f"{name}@{version}")]
            else:
                self.photon_row(session, principal, name)  # 404 when there is none
                rows = list(
                    session.scalars(
                        select(PhotonRow).where(
                            PhotonRow.workspace_id == principal.workspace_id,
                            PhotonRow.name == name,
                        )
                    )
                )
            users = [user for check in self.users for user in check(session, rows)]
            if users:
                raise Conflict(
                    f"photon '{name}' is served by {', '.join(users)}",
                    fix=f"remove them first: lepton deployment rm {users[0].split()[-1]}",
                )
            gone = [view(r) for r in rows]
            released: builtins.list[str] = []
            for row in rows:
                released += self.content.release(session, owner(row.id))
                session.delete(row)
            session.commit()
        self.content.erase(released)
        return gone
