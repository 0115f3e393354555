"""Photons: packaged services (a zip of source files and a manifest, never a pickle). The
checks and numbering are in :mod:`lepton.control.photons`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as PathParam

from lepton.control.paging import PageRequest
from lepton.control.plane import Control
from lepton.schemas import DATASET_NAME_PATTERN, Photon
from lepton.server.auth import Principal, require
from lepton.server.errors import ERROR_RESPONSES
from lepton.server.paging import page_request, page_response
from lepton.server.state import get_control
from lepton.server.transfer import UPLOAD_BODY, body_chunks

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
    control: Control = Depends(get_control),
) -> Photon:
    """Push a photon package (the raw zip as the body). The same bytes pushed again under the
    same name answer the existing version (HTTP 200)."""
    chunks = body_chunks(request, control.ctx.settings.max_upload_bytes)
    photon, created = await control.photons.push(principal, chunks, name=name)
    request.state.audit_resource = f"photon/{photon.ref}"
    if not created:
        response.status_code = 200
    return photon


@router.get("", name="photon.list")
def list_photons(
    request: Request,
    response: Response,
    page: PageRequest = Depends(page_request),
    principal: Principal = Depends(require("read")),
    control: Control = Depends(get_control),
) -> list[Photon]:
    """Every photon version, by name, newest version first."""
    return page_response(request, response, control.photons.list(principal, page))


@router.get("/{photon_name}", name="photon.get")
def get_photon(
    photon_name: PhotonName,
    version: str = Query("latest", max_length=12, description="`3`, `v3` or `latest`."),
    principal: Principal = Depends(require("read")),
    control: Control = Depends(get_control),
) -> Photon:
    return control.photons.get(principal, photon_name, version)


@router.delete("/{photon_name}", name="photon.delete")
def delete_photon(
    photon_name: PhotonName,
    request: Request,
    version: str | None = Query(
        None, max_length=12, description="Delete only this version; every version by default."
    ),
    principal: Principal = Depends(require("write")),
    control: Control = Depends(get_control),
) -> list[Photon]:
    """Delete a photon's versions (refused while a deployment serves one); answers what went.
    Its number is never given again."""
    request.state.audit_resource = f"photon/{photon_name}"
    return control.photons.delete(principal, photon_name, version)
