"""The console's dataset pages: the list, a version's profile, lineage and splits, the upload,
and transforms and splits made from the page."""

from __future__ import annotations

from typing import Any, get_args
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from lepton.console.render import form_error, page_request, render, signed_in, text_fields, writer
from lepton.console.session import CSRF_FIELD
from lepton.control.paging import PageRequest
from lepton.control.plane import Control
from lepton.control.tokens import Principal
from lepton.errors import InvalidRequest
from lepton.schemas import CastType, SplitSpec, TransformRequest
from lepton.server.state import get_control

router = APIRouter(include_in_schema=False)


@router.get("/datasets", name="console.datasets")
def datasets(
    request: Request, after: str | None = None, control: Control = Depends(get_control)
) -> HTMLResponse:
    me = signed_in(request)
    page = control.datasets.list(me, page_request(after))
    return render(request, "datasets.html", me, page=page)


@router.get("/datasets/{name}", name="console.dataset")
def dataset(
    request: Request, name: str, version: str = "latest", control: Control = Depends(get_control)
) -> HTMLResponse:
    me = signed_in(request)
    detail = control.datasets.version(me, name, version)
    return render(request, "dataset.html", me, **_dataset_parts(control, me, detail))


def _dataset_parts(control: Control, me: Principal, detail: Any) -> dict[str, Any]:
    number = str(detail.version)
    return {
        "detail": detail,
        "versions": control.datasets.versions(me, detail.dataset, PageRequest(limit=20)).items,
        "splits": control.datasets.splits(me, detail.dataset, number),
        "graph": control.lineage.of_dataset(me, detail.ref),
        "casts": list(get_args(CastType)),
        "error": None,
    }


@router.post("/datasets/{name}/transform", name="console.dataset_transform")
async def transform(
    request: Request, name: str, control: Control = Depends(get_control)
) -> Response:
    """A new version from the form: columns dropped, anonymised or cast, rows without values or
    repeated removed, images resized; its page shows the result (and its parent in lineage)."""
    me = await writer(request)
    form = await request.form()
    fields = text_fields(form)
    version = fields.get("version") or "latest"
    request.state.audit_resource = f"dataset/{name}@v{version}"
    try:
        body = TransformRequest.model_validate({"steps": transform_steps(fields)})
        made = control.datasets.transform(me, name, version, body)
    except (InvalidRequest, ValidationError) as exc:
        detail = control.datasets.version(me, name, version)
        parts = {**_dataset_parts(control, me, detail), "error": form_error(exc)}
        return render(request, "dataset.html", me, status_code=422, **parts)
    request.state.audit_resource = f"dataset/{made.ref}"
    return RedirectResponse(
        f"/datasets/{quote(made.dataset)}?version={made.version}", status_code=303
    )


def transform_steps(fields: dict[str, str]) -> list[dict[str, Any]]:
    """The transform form as steps, in an order that cannot trip over itself: drop first, then
    anonymise, cast, and the row filters last (so they see the final columns)."""
    actions = {k[4:]: v for k, v in fields.items() if k.startswith("col:")}
    casts = {k[5:]: v for k, v in fields.items() if k.startswith("cast:") and v}
    dropped = [c for c, a in actions.items() if a == "drop"]
    steps: list[dict[str, Any]] = []
    if dropped:
        steps.append({"op": "drop", "columns": dropped})
    for method in ("hash", "mask"):
        chosen = [c for c, a in actions.items() if a == method]
        if chosen:
            steps.append({"op": "anonymize", "columns": chosen, "method": method})
    kept = {c: t for c, t in casts.items() if c not in dropped}
    if kept:
        steps.append({"op": "cast", "types": kept})
    if fields.get("drop_nulls"):
        steps.append({"op": "drop_nulls"})
    if fields.get("deduplicate"):
        steps.append({"op": "deduplicate"})
    if fields.get("width") or fields.get("height"):
        size = {k: fields.get(k, "") for k in ("width", "height")}
        steps.append({"op": "resize_images", **{k: v or None for k, v in size.items()}})
    if not steps:
        raise InvalidRequest(
            "the transform changes nothing",
            fix="drop, anonymise or cast a column, or tick a row filter",
        )
    return steps


@router.post("/datasets/{name}/split", name="console.dataset_split")
async def split(request: Request, name: str, control: Control = Depends(get_control)) -> Response:
    """Store a train/validation/test split with the version (jobs on it can then use it)."""
    me = await writer(request)
    form = await request.form()
    fields = {k: v for k, v in text_fields(form).items() if v}
    version = fields.pop("version", "latest")
    fields.pop(CSRF_FIELD, None)
    request.state.audit_resource = f"dataset/{name}@v{version}"
    try:
        control.datasets.split(me, name, version, SplitSpec.model_validate(fields))
    except (InvalidRequest, ValidationError) as exc:
        detail = control.datasets.version(me, name, version)
        parts = {**_dataset_parts(control, me, detail), "error": form_error(exc)}
        return render(request, "dataset.html", me, status_code=422, **parts)
    return RedirectResponse(f"/datasets/{quote(name)}?version={version}#splits", status_code=303)


@router.post("/datasets/upload", name="console.dataset_upload")
async def upload(
    request: Request,
    name: str,
    source_name: str,
    target: str | None = None,
    control: Control = Depends(get_control),
) -> Response:
    """The file is the raw request body (console.js sends it with a progress bar), as with the
    API's push; the answer is where its page is."""
    me = await writer(request)
    request.state.audit_resource = f"dataset/{name}"
    from lepton.server.transfer import body_chunks

    chunks = body_chunks(request, control.ctx.settings.max_upload_bytes)
    detail = await control.datasets.push(
        me, name, chunks, source_name=source_name, fmt=None, target=target or None
    )
    request.state.audit_resource = f"dataset/{detail.ref}"
    return Response(
        status_code=201,
        headers={"Location": f"/datasets/{quote(detail.dataset)}?version={detail.version}"},
    )
