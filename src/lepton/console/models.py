"""The console's model pages: the list, a version with its lineage, explanation, evaluations,
leaderboard and card; aliases, comparison, and deploying a version."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from lepton.console.deployments import deployment_parts
from lepton.console.render import page_request, render, secure_headers, signed_in, writer
from lepton.control.paging import PageRequest
from lepton.control.plane import Control
from lepton.errors import NotFound
from lepton.schemas import DeploymentCreate
from lepton.server.state import get_control

router = APIRouter(include_in_schema=False)


@router.get("/models", name="console.models")
def models(
    request: Request, after: str | None = None, control: Control = Depends(get_control)
) -> HTMLResponse:
    me = signed_in(request)
    page = control.models.list(me, page_request(after))
    return render(request, "models.html", me, page=page)


@router.get("/models/{name}", name="console.model")
def model(
    request: Request, name: str, version: str = "latest", control: Control = Depends(get_control)
) -> HTMLResponse:
    me = signed_in(request)
    chosen = control.models.version(me, name, version)
    versions = control.models.versions(me, name, PageRequest(limit=50)).items
    number = str(chosen.version)
    try:
        explanation: dict[str, Any] | None = control.models.explanation(me, name, number)
    except NotFound:
        explanation = None
    return render(
        request,
        "model.html",
        me,
        model=chosen,
        versions=versions,
        card=control.models.card(me, name, number, html=False),
        graph=control.lineage.of_model(me, chosen.ref),
        evaluations=control.models.evaluations(me, name, number),
        explanation=explanation,
    )


@router.post("/models/{name}/alias", name="console.model_alias")
async def alias(request: Request, name: str, control: Control = Depends(get_control)) -> Response:
    me = await writer(request)
    form = await request.form()
    version, label = str(form.get("version", "")), str(form.get("alias", "")).strip()
    request.state.audit_resource = f"model/{name}@{label}"
    control.models.set_alias(me, name, version, label)
    return RedirectResponse(f"/models/{quote(name)}?version={quote(version)}", status_code=303)


@router.get("/models/{name}/compare", name="console.model_compare")
def compare(
    request: Request, name: str, a: str, b: str, control: Control = Depends(get_control)
) -> HTMLResponse:
    """Two versions side by side: metrics (with the difference), parameters, lineage."""
    me = signed_in(request)
    left, right = control.models.version(me, name, a), control.models.version(me, name, b)
    metrics = sorted(set(left.metrics) | set(right.metrics))
    params = sorted(set(left.params) | set(right.params))
    return render(
        request, "compare.html", me, left=left, right=right, metrics=metrics, params=params
    )


@router.get("/models/{name}/card", name="console.model_card")
def model_card(
    request: Request, name: str, version: str = "latest", control: Control = Depends(get_control)
) -> HTMLResponse:
    """The card as its own page (the registry renders it, with its plots embedded)."""
    me = signed_in(request)
    page = control.models.card(me, name, version, html=True)
    return HTMLResponse(page, headers={**secure_headers(), "Content-Security-Policy": _CARD_CSP})


_CARD_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-ancestors 'none'"
"""The card page is static HTML with its own inline style and no script at all."""


@router.post("/models/{name}/deploy", name="console.model_deploy")
async def deploy(request: Request, name: str, control: Control = Depends(get_control)) -> Response:
    """Serve a version; the page that answers shows the inference token, this once."""
    me = await writer(request)
    form = await request.form()
    version = str(form.get("version") or "latest")
    wanted = str(form.get("deployment") or "").strip() or None
    replicas = int(str(form.get("replicas") or "1"))
    request.state.audit_resource = f"deployment/{wanted or name}"
    created = control.deployments.create(
        me, DeploymentCreate(name=wanted, model=f"{name}@{version}", replicas=replicas)
    )
    request.state.audit_resource = f"deployment/{created.name}"
    parts = {**deployment_parts(control, me, created.name), "token": created.token}
    return render(request, "deployment.html", me, status_code=201, **parts)
