"""The console's deployment pages: replicas, traffic, history, the log; scale, roll out, roll
back, delete; and the try-it form (a row or an image through /predict and /explain)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import numpy as np
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import UploadFile

from lepton.console.render import page_request, render, signed_in, text_fields, writer
from lepton.console.session import message_of
from lepton.control.paging import PageRequest
from lepton.control.plane import Control
from lepton.control.tokens import Principal
from lepton.errors import InvalidRequest, LeptonError
from lepton.schemas import DeploymentUpdate
from lepton.server.state import get_control
from lepton.serving.inputs import InputSpec, decode_image

router = APIRouter(include_in_schema=False)


@router.get("/deployments", name="console.deployments")
def deployments(
    request: Request, after: str | None = None, control: Control = Depends(get_control)
) -> HTMLResponse:
    me = signed_in(request)
    page = control.deployments.list(me, page_request(after))
    return render(request, "deployments.html", me, page=page)


@router.get("/deployments/{name}", name="console.deployment")
def deployment(
    request: Request, name: str, control: Control = Depends(get_control)
) -> HTMLResponse:
    me = signed_in(request)
    return render(request, "deployment.html", me, **deployment_parts(control, me, name))


@router.get("/deployments/{name}/live", name="console.deployment_live")
def deployment_live(
    request: Request, name: str, control: Control = Depends(get_control)
) -> HTMLResponse:
    me = signed_in(request)
    return render(request, "deployment_live.html", me, **_live_parts(control, me, name))


def _live_parts(control: Control, me: Principal, name: str) -> dict[str, Any]:
    """What the part redrawn every 2 s while replicas settle needs: the state and the log."""
    return {
        "deployment": control.deployments.get(me, name),
        "log": control.deployments.logs(me, name, 0).text[-8_000:],
    }


def deployment_parts(control: Control, me: Principal, name: str) -> dict[str, Any]:
    """The whole page: the live part, the try-it form's inputs, history, traffic, versions."""
    live = _live_parts(control, me, name)
    served = live["deployment"]
    signature: dict[str, Any] = {}
    versions: list[Any] = []
    if served.model:
        model_name, _, number = served.model.rpartition("@")
        signature = control.models.version(me, model_name, number).signature
        versions = control.models.versions(me, model_name, PageRequest(limit=50)).items
    inputs = signature.get("inputs")
    columns = [c for c in inputs if isinstance(c, dict)] if isinstance(inputs, list) else None
    spec = InputSpec.from_signature(signature)
    return {
        **live,
        "columns": columns,
        "spec": spec if spec.shape is not None and len(spec.shape) in (2, 3) else None,
        "revisions": control.deployments.revisions(me, name, PageRequest(limit=20)).items,
        "deployment_name": name,
        **_traffic_charts(control.deployments.traffic(me, name, 30)),
        "versions": versions,
        "answer": None,
        "token": None,
    }


@router.get("/deployments/{name}/traffic", name="console.deployment_traffic")
def deployment_traffic(
    request: Request, name: str, minutes: int = 30, control: Control = Depends(get_control)
) -> HTMLResponse:
    """Request rate, latency and errors from the replicas' own reports; htmx redraws it every
    10 s while the page is open."""
    me = signed_in(request)
    traffic = control.deployments.traffic(me, name, minutes)
    parts = _traffic_charts(traffic)
    return render(request, "deployment_traffic.html", me, deployment_name=name, **parts)


def _traffic_charts(traffic: Any) -> dict[str, Any]:
    """The series the charts draw, indexed by window (the x axis is time, oldest left)."""
    rate: dict[str, list[tuple[int, float]]] = {"requests/s": []}
    latency: dict[str, list[tuple[int, float]]] = {"p50 ms": [], "p95 ms": [], "p99 ms": []}
    failures: dict[str, list[tuple[int, float]]] = {"errors (5xx)": [], "rejected (4xx)": []}
    for i, point in enumerate(traffic.points):
        rate["requests/s"].append((i, point.requests_per_s))
        for key, value in (("p50 ms", point.p50_ms), ("p95 ms", point.p95_ms),
                           ("p99 ms", point.p99_ms)):  # fmt: skip
            if value is not None:
                latency[key].append((i, value))
        failures["errors (5xx)"].append((i, float(point.errors)))
        failures["rejected (4xx)"].append((i, float(point.rejected)))
    return {"traffic": traffic, "rate": rate, "latency": latency, "failures": failures}


@router.post("/deployments/{name}/scale", name="console.deployment_scale")
async def scale(request: Request, name: str, control: Control = Depends(get_control)) -> Response:
    me = await writer(request)
    form = await request.form()
    request.state.audit_resource = f"deployment/{name}"
    replicas = int(str(form.get("replicas") or "1"))
    control.deployments.update(me, name, DeploymentUpdate(replicas=replicas))
    return RedirectResponse(f"/deployments/{quote(name)}", status_code=303)


@router.post("/deployments/{name}/update", name="console.deployment_update")
async def update(request: Request, name: str, control: Control = Depends(get_control)) -> Response:
    """Roll to another model version: a new replica is ready before an old one drains."""
    me = await writer(request)
    form = text_fields(await request.form())
    request.state.audit_resource = f"deployment/{name}"
    control.deployments.update(me, name, DeploymentUpdate(model=form.get("model") or None))
    return RedirectResponse(f"/deployments/{quote(name)}", status_code=303)


@router.post("/deployments/{name}/rollback", name="console.deployment_rollback")
async def rollback(
    request: Request, name: str, control: Control = Depends(get_control)
) -> Response:
    """Serve again what an earlier generation served (the one before the current by default)."""
    me = await writer(request)
    form = text_fields(await request.form())
    request.state.audit_resource = f"deployment/{name}"
    wanted = form.get("generation", "")
    control.deployments.rollback(me, name, int(wanted) if wanted.isdigit() else None)
    return RedirectResponse(f"/deployments/{quote(name)}", status_code=303)


@router.post("/deployments/{name}/delete", name="console.deployment_delete")
async def delete_deployment(
    request: Request, name: str, control: Control = Depends(get_control)
) -> Response:
    me = await writer(request)
    request.state.audit_resource = f"deployment/{name}"
    control.deployments.delete(me, name)
    return RedirectResponse("/deployments", status_code=303)


@router.post("/deployments/{name}/try", name="console.deployment_try")
async def try_it(request: Request, name: str, control: Control = Depends(get_control)) -> Response:
    """One row from the form through the deployment's ``/predict`` and ``/explain``; the
    answer and the attributions are drawn on its page. Needs a role that may write: it uses
    the deployment as the control plane, which a viewer's token could not."""
    me = await writer(request)
    parts = deployment_parts(control, me, name)
    form = await request.form()
    answer: dict[str, Any] = {"row": {}}
    try:
        upload = form.get("image")
        if parts["spec"] is not None and isinstance(upload, UploadFile):
            body, answer["image"] = await _image_body(parts["spec"], upload)
        else:
            row = {
                str(c["name"]): _value(str(form.get(f"col:{c['name']}", "")), str(c.get("dtype")))
                for c in parts["columns"] or []
            }
            answer["row"], body = row, {"rows": [row]}
        answer["predict"] = control.deployments.call(me, name, "/predict", body)
        overlay = {"overlay": "true"} if "image" in answer else None
        answer["explain"] = control.deployments.call(me, name, "/explain", body, query=overlay)
        first = answer["explain"]["rows"][0]
        if first.get("names"):
            ranked = sorted(
                zip(first["names"], first["attributions"], strict=True), key=lambda kv: -abs(kv[1])
            )
            answer["ranked"] = ranked[:15]
        else:  # an image: where the attributions are, summed over colour channels
            grid = np.abs(np.asarray(first["attributions"], dtype=np.float64))
            answer["saliency"] = (grid.sum(axis=-1) if grid.ndim == 3 else grid).tolist()
    except LeptonError as exc:
        answer["error"] = message_of(exc)
    finally:
        await form.close()
    parts["answer"] = answer
    return render(request, "deployment.html", me, **parts)


MAX_TRY_IMAGE = 20 << 20
"""The largest image the try-it form takes (bytes): a photo, not a dataset."""


async def _image_body(spec: InputSpec, upload: UploadFile) -> tuple[dict[str, Any], str]:
    """An uploaded image as the model takes it (as the replica itself would convert an upload),
    and a PNG of what was sent, to show beside the answer."""
    import base64
    import io

    from PIL import Image

    content = await upload.read(MAX_TRY_IMAGE + 1)
    if len(content) > MAX_TRY_IMAGE:
        raise InvalidRequest("the image is over 20 MiB", fix="try a smaller image")
    if not content:
        raise InvalidRequest("no image was chosen", fix="choose a PNG or JPEG file")
    array = decode_image(spec, content, upload.filename or "image")
    shown = io.BytesIO()
    with Image.open(io.BytesIO(content)) as opened:  # decode_image has read it already
        preview = opened.convert("RGB")
        preview.thumbnail((224, 224))
        preview.save(shown, format="PNG")
    return {"inputs": [array.tolist()]}, base64.b64encode(shown.getvalue()).decode("ascii")


def _value(text: str, dtype: str) -> Any:
    """A form field as the column's type: numbers for numeric columns, else the text."""
    if dtype in ("string", "object", "str", "category"):
        return text
    try:
        return float(text)
    except ValueError:
        return text
