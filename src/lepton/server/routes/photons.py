"""Photons: packaged services (a zip of source files and a manifest, never a pickle), stored
content-addressed and numbered per name.

A push is spooled to a private work folder and checked (a safe zip, a manifest naming an entry
``file.py:Class`` that its file defines, no pickle) before anything is stored: a bad package
stores nothing.
"""

from __future__ import annotations

import re
import shutil
import uuid
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as PathParam
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from lepton.errors import Conflict, InvalidRequest
from lepton.schemas import DATASET_NAME_PATTERN, Photon
from lepton.server.auth import Principal, require
from lepton.server.deploy_catalog import get_photon, photon_view, record_photon
from lepton.server.errors import ERROR_RESPONSES
from lepton.server.state import ServerState, db_session, get_state
from lepton.server.transfer import UPLOAD_BODY, body_chunks
from lepton.store.models import BlobRow, DeploymentRow, PhotonRow, utcnow

router = APIRouter(prefix="/api/v1/photons", tags=["photons"], responses=ERROR_RESPONSES)

PhotonName = Annotated[str, PathParam(description="Photon name.", max_length=63)]


@router.post(
    "",
    name="photon.push",
    status_code=201,
    openapi_extra=UPLOAD_BODY,
    responses={200: {"model": Photon, "description": "This package is already that photon."}},
)
async def push_photon(
    request: Request,
    response: Response,
    name: str | None = Query(
        None,
        pattern=DATASET_NAME_PATTERN,
        max_length=63,
        description="Photon name; the manifest's `name` by default.",
    ),
    principal: Principal = Depends(require("write")),
    state: ServerState = Depends(get_state),
) -> Photon:
    """Push a photon package (the raw zip as the body). The same bytes pushed again under the
    same name answer the existing version (HTTP 200)."""
    work = state.work_dir() / uuid.uuid4().hex
    work.mkdir(mode=0o700)
    try:
        package = work / "photon.zip"
        with package.open("wb") as f:
            async for chunk in body_chunks(request, state.settings.max_upload_bytes):
                await run_in_threadpool(f.write, chunk)
        photon, created = await run_in_threadpool(_store, state, principal, package, name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    request.state.audit_resource = f"photon/{photon.ref}"
    if not created:
        response.status_code = 200
    return photon


def _store(
    state: ServerState, principal: Principal, package: Path, name: str | None
) -> tuple[Photon, bool]:
    from lepton.deploy.packages import inspect_package

    info = inspect_package(package)
    name = name or info.name
    if name is None or not re.match(DATASET_NAME_PATTERN, name):
        raise InvalidRequest(
            f"the photon needs a name of lower-case letters, digits, '-', '_' or '.'; got {name!r}",
            fix="pass one: lepton photon push DIR --name NAME",
        )
    with state.content_lock, state.sessions() as session:
        with package.open("rb") as f, state.blobs.writer() as writer:
            while chunk := f.read(1 << 20):
                writer.write(chunk)
            blob = writer.commit()
        if session.get(BlobRow, (principal.workspace_id, blob.digest)) is None:
            session.add(
                BlobRow(
                    workspace_id=principal.workspace_id,
                    digest=blob.digest,
                    size=blob.size,
                    created_at=utcnow(),
                )
            )
            session.flush()
        row, created = record_photon(
            session,
            principal,
            name=name,
            digest=blob.digest,
            size=blob.size,
            entry=info.entry,
            manifest=info.manifest,
        )
        return photon_view(row), created


@router.get("", name="photon.list")
def list_photons(
    principal: Principal = Depends(require("read")),
    session: Session = Depends(db_session, scope="function"),
) -> list[Photon]:
    """Every photon version, by name, newest version first."""
    rows = session.scalars(
        select(PhotonRow)
        .where(PhotonRow.workspace_id == principal.workspace_id)
        .order_by(PhotonRow.name, PhotonRow.version.desc())
    )
    return [photon_view(row) for row in rows]


@router.get("/{photon_name}", name="photon.get")
def get_photon_route(
    photon_name: PhotonName,
    version: str = Query("latest", max_length=12, description="`3`, `v3` or `latest`."),
    principal: Principal = Depends(require("read")),
    session: Session = Depends(db_session, scope="function"),
) -> Photon:
    return photon_view(get_photon(session, principal, f"{photon_name}@{version}"))


@router.delete("/{photon_name}", name="photon.delete")
def delete_photon(
    photon_name: PhotonName,
    request: Request,
    version: str | None = Query(
        None, max_length=12, description="Delete only this version; every version by default."
    ),
    principal: Principal = Depends(require("write")),
    session: Session = Depends(db_session, scope="function"),
) -> list[Photon]:
    """Delete a photon's versions (refused while a deployment serves one); answers what went."""
    request.state.audit_resource = f"photon/{photon_name}"
    if version is not None:
        rows = [get_photon(session, principal, f"{photon_name}@{version}")]
    else:
        get_photon(session, principal, photon_name)  # 404 when there is none
        rows = list(
            session.scalars(
                select(PhotonRow).where(
                    PhotonRow.workspace_id == principal.workspace_id,
                    PhotonRow.name == photon_name,
                )
            )
        )
    users = session.scalars(
        select(DeploymentRow.name).where(DeploymentRow.photon_id.in_([r.id for r in rows]))
    ).all()
    if users:
        raise Conflict(
            f"photon '{photon_name}' is served by deployment(s) {', '.join(users)}",
            fix=f"remove them first: lepton deployment rm {users[0]}",
        )
    gone = [photon_view(r) for r in rows]
    for row in rows:
        session.delete(row)
    session.commit()
    return gone
