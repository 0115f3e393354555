"""The console's pages: each parses the request, calls the services, and renders a template.

Reads are plain GETs that work without JavaScript; writes are POSTs that need the session's
CSRF token and a role that may write (viewers never see the controls, and get 403 if they
send one anyway). Errors from the services are shown on the page they came from.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any, get_args
from urllib.parse import quote

import numpy as np
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.staticfiles import StaticFiles

from lepton import __version__
from lepton.console import charts
from lepton.console.session import (
    CSRF_FIELD,
    SignInNeeded,
    check_csrf,
    csrf_token,
    message_of,
    principal_of,
    require_write,
    set_cookie,
)
from lepton.control.paging import PageRequest
from lepton.control.plane import Control
from lepton.control.tokens import Principal
from lepton.enums import JobState, Outcome
from lepton.errors import InvalidRequest, LeptonError, NotFound, PermissionDenied
from lepton.schemas import (
    CastType,
    DeploymentCreate,
    DeploymentUpdate,
    JobCreate,
    Role,
    SplitSpec,
    TokenCreate,
    TrainSpec,
    TransformRequest,
)
from lepton.server.state import get_control
from lepton.serving.inputs import InputSpec, decode_image

__all__ = ["CSP", "router", "static_app"]

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)
"""No inline script or style anywhere: an injected string can never run."""

PAGE = 50
"""Rows per list page; the next page follows the keyset cursor."""

_templates = Environment(
    loader=PackageLoader("lepton.console", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
_templates.globals.update(charts=charts, version=__version__, quote=quote)
_templates.filters["zip"] = zip

router = APIRouter(include_in_schema=False)


def static_app() -> StaticFiles:
    return StaticFiles(directory=Path(__file__).parent / "static")


def _render(
    request: Request,
    name: str,
    principal: Principal | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    body = _templates.get_template(name).render(
        request=request,
        me=principal,
        can_write=principal is not None and principal.has("write"),
        csrf=csrf_token(request) if principal is not None else "",
        csrf_field=CSRF_FIELD,
        **context,
    )
    return HTMLResponse(body, status_code=status_code, headers=_headers())


def _headers() -> dict[str, str]:
    return {
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
    }


def _session(request: Request) -> Principal:
    return principal_of(request)


async def _writer(request: Request) -> Principal:
    """The session of a write: its CSRF token checked, its role one that may write."""
    me = _session(request)
    await check_csrf(request)
    require_write(me)
    return me


def _fields(form: Any) -> dict[str, str]:
    """A form's text fields (files left out)."""
    return {k: str(v) for k, v in form.items() if isinstance(v, str)}


def _page(after: str | None) -> PageRequest:
    return PageRequest(limit=PAGE, after=after or None)


# --- signing in --------------------------------------------------------------------------------


@router.get("/signin", name="console.signin_form")
def signin_form(request: Request) -> HTMLResponse:
    return _render(request, "signin.html", None, error=None)


@router.post("/signin", name="console.signin")
async def signin(request: Request, control: Control = Depends(get_control)) -> Response:
    form = await request.form()
    token = str(form.get("token", "")).strip()
    try:
        principal, bearer = control.tokens.open_session(token)
    except LeptonError as exc:
        return _render(
            request, "signin.html", None, status_code=exc.status_code, error=message_of(exc)
        )
    request.state.principal = principal
    response = RedirectResponse("/", status_code=303)
    set_cookie(response, bearer, secure=request.url.scheme == "https")
    return response


@router.post("/signout", name="console.signout")
async def signout(request: Request, control: Control = Depends(get_control)) -> Response:
    principal = _session(request)
    await check_csrf(request)
    control.tokens.close_session(principal)
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie("lepton_session", path="/")
    return response


# --- overview ----------------------------------------------------------------------------------


@router.get("/", name="console.overview")
def overview(request: Request, control: Control = Depends(get_control)) -> HTMLResponse:
    me = _session(request)
    running = control.jobs.list(me, PageRequest(limit=20), state=JobState.running).items
    failed = control.jobs.list(me, PageRequest(limit=5), state=JobState.failed).items
    deployments = control.deployments.list(me, PageRequest(limit=50)).items
    return _render(
        request, "overview.html", me, running=running, failed=failed, deployments=deployments
    )


# --- datasets ----------------------------------------------------------------------------------


@router.get("/datasets", name="console.datasets")
def datasets(
    request: Request, after: str | None = None, control: Control = Depends(get_control)
) -> HTMLResponse:
    me = _session(request)
    page = control.datasets.list(me, _page(after))
    return _render(request, "datasets.html", me, page=page)


@router.get("/datasets/{name}", name="console.dataset")
def dataset(
    request: Request, name: str, version: str = "latest", control: Control = Depends(get_control)
) -> HTMLResponse:
    me = _session(request)
    detail = control.datasets.version(me, name, version)
    return _render(request, "dataset.html", me, **_dataset_parts(control, me, detail))


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
    me = await _writer(request)
    form = await request.form()
    fields = _fields(form)
    version = fields.get("version") or "latest"
    request.state.audit_resource = f"dataset/{name}@v{version}"
    try:
        body = TransformRequest.model_validate({"steps": transform_steps(fields)})
        made = control.datasets.transform(me, name, version, body)
    except (InvalidRequest, ValidationError) as exc:
        detail = control.datasets.version(me, name, version)
        parts = {**_dataset_parts(control, me, detail), "error": _form_error(exc)}
        return _render(request, "dataset.html", me, status_code=422, **parts)
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
    me = await _writer(request)
    form = await request.form()
    fields = {k: v for k, v in _fields(form).items() if v}
    version = fields.pop("version", "latest")
    fields.pop(CSRF_FIELD, None)
    request.state.audit_resource = f"dataset/{name}@v{version}"
    try:
        control.datasets.split(me, name, version, SplitSpec.model_validate(fields))
    except (InvalidRequest, ValidationError) as exc:
        detail = control.datasets.version(me, name, version)
        parts = {**_dataset_parts(control, me, detail), "error": _form_error(exc)}
        return _render(request, "dataset.html", me, status_code=422, **parts)
    return RedirectResponse(f"/datasets/{quote(name)}?version={version}#splits", status_code=303)


def _form_error(exc: LeptonError | ValidationError) -> str:
    """A refusal as one line for the form: the service's message and fix, or pydantic's first
    complaint with the field it is about."""
    if isinstance(exc, LeptonError):
        return message_of(exc)
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "steps")
    return f"{where}: {first.get('msg', 'not valid')}" if where else str(first.get("msg"))


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
    me = await _writer(request)
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


# --- jobs --------------------------------------------------------------------------------------


@router.get("/jobs", name="console.jobs")
def jobs(
    request: Request,
    state: JobState | None = None,
    after: str | None = None,
    control: Control = Depends(get_control),
) -> HTMLResponse:
    me = _session(request)
    page = control.jobs.list(me, _page(after), state=state)
    return _render(request, "jobs.html", me, page=page, state=state, states=list(JobState))


@router.get("/jobs/{job_id}", name="console.job")
def job(request: Request, job_id: str, control: Control = Depends(get_control)) -> HTMLResponse:
    me = _session(request)
    return _render(request, "job.html", me, **_job_live(control, me, job_id))


@router.get("/jobs/{job_id}/live", name="console.job_live")
def job_live(
    request: Request, job_id: str, control: Control = Depends(get_control)
) -> HTMLResponse:
    """The part of a job's page that changes while it runs; htmx swaps it every 2 s."""
    me = _session(request)
    return _render(request, "job_live.html", me, **_job_live(control, me, job_id))


def _job_live(control: Control, me: Principal, job_id: str) -> dict[str, Any]:
    job = control.jobs.get(me, job_id)
    log = control.jobs.logs(me, job_id, 0)
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for point in control.jobs.metrics(me, job_id):
        series[point.name].append((point.step, point.value))
    return {"job": job, "log": log.text[-20_000:], "series": dict(series)}


@router.post("/jobs/{job_id}/cancel", name="console.job_cancel")
async def cancel(
    request: Request, job_id: str, control: Control = Depends(get_control)
) -> Response:
    me = await _writer(request)
    request.state.audit_resource = f"job/{job_id}"
    control.jobs.cancel(me, job_id)
    return RedirectResponse(f"/jobs/{quote(job_id)}", status_code=303)


@router.get("/train", name="console.train_form")
def train_form(
    request: Request, dataset: str | None = None, control: Control = Depends(get_control)
) -> HTMLResponse:
    return _train_page(request, _session(request), control, dataset, None)


def _train_page(
    request: Request,
    me: Principal,
    control: Control,
    chosen: str | None,
    error: str | None,
    status_code: int = 200,
) -> HTMLResponse:
    from lepton.algorithms.registry import list_algorithms

    return _render(
        request,
        "train.html",
        me,
        status_code=status_code,
        datasets=control.datasets.list(me, PageRequest(limit=200)).items,
        chosen=chosen,
        algorithms=[a.name for a in list_algorithms()],
        error=error,
    )


@router.post("/train", name="console.train")
async def train(request: Request, control: Control = Depends(get_control)) -> Response:
    """The no-code path: a dataset, a target, AutoML or one algorithm, a time budget."""
    me = await _writer(request)
    form = await request.form()
    fields = _fields(form)
    try:
        spec = TrainSpec(
            dataset=fields.get("dataset", ""),
            target=fields.get("target") or None,
            algorithm=fields.get("algorithm") or "auto",
            time_budget_s=float(fields.get("time_budget_s") or 300),
        )
        job = control.jobs.submit(me, JobCreate(spec=spec))
    except (LeptonError, ValueError) as exc:
        message = message_of(exc) if isinstance(exc, LeptonError) else str(exc).splitlines()[0]
        return _train_page(request, me, control, fields.get("dataset"), message, 422)
    request.state.audit_resource = f"job/{job.id}"
    return RedirectResponse(f"/jobs/{quote(job.id)}", status_code=303)


# --- models ------------------------------------------------------------------------------------


@router.get("/models", name="console.models")
def models(
    request: Request, after: str | None = None, control: Control = Depends(get_control)
) -> HTMLResponse:
    me = _session(request)
    page = control.models.list(me, _page(after))
    return _render(request, "models.html", me, page=page)


@router.get("/models/{name}", name="console.model")
def model(
    request: Request, name: str, version: str = "latest", control: Control = Depends(get_control)
) -> HTMLResponse:
    me = _session(request)
    chosen = control.models.version(me, name, version)
    versions = control.models.versions(me, name, PageRequest(limit=50)).items
    number = str(chosen.version)
    try:
        explanation: dict[str, Any] | None = control.models.explanation(me, name, number)
    except NotFound:
        explanation = None
    return _render(
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
    me = await _writer(request)
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
    me = _session(request)
    left, right = control.models.version(me, name, a), control.models.version(me, name, b)
    metrics = sorted(set(left.metrics) | set(right.metrics))
    params = sorted(set(left.params) | set(right.params))
    return _render(
        request, "compare.html", me, left=left, right=right, metrics=metrics, params=params
    )


@router.get("/models/{name}/card", name="console.model_card")
def model_card(
    request: Request, name: str, version: str = "latest", control: Control = Depends(get_control)
) -> HTMLResponse:
    """The card as its own page (the registry renders it, with its plots embedded)."""
    me = _session(request)
    page = control.models.card(me, name, version, html=True)
    return HTMLResponse(page, headers={**_headers(), "Content-Security-Policy": _CARD_CSP})


_CARD_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-ancestors 'none'"
"""The card page is static HTML with its own inline style and no script at all."""


@router.post("/models/{name}/deploy", name="console.model_deploy")
async def deploy(request: Request, name: str, control: Control = Depends(get_control)) -> Response:
    """Serve a version; the page that answers shows the inference token, this once."""
    me = await _writer(request)
    form = await request.form()
    version = str(form.get("version") or "latest")
    wanted = str(form.get("deployment") or "").strip() or None
    replicas = int(str(form.get("replicas") or "1"))
    request.state.audit_resource = f"deployment/{wanted or name}"
    created = control.deployments.create(
        me, DeploymentCreate(name=wanted, model=f"{name}@{version}", replicas=replicas)
    )
    request.state.audit_resource = f"deployment/{created.name}"
    parts = {**_deployment_parts(control, me, created.name), "token": created.token}
    return _render(request, "deployment.html", me, status_code=201, **parts)


# --- deployments -------------------------------------------------------------------------------


@router.get("/deployments", name="console.deployments")
def deployments(
    request: Request, after: str | None = None, control: Control = Depends(get_control)
) -> HTMLResponse:
    me = _session(request)
    page = control.deployments.list(me, _page(after))
    return _render(request, "deployments.html", me, page=page)


@router.get("/deployments/{name}", name="console.deployment")
def deployment(
    request: Request, name: str, control: Control = Depends(get_control)
) -> HTMLResponse:
    me = _session(request)
    return _render(request, "deployment.html", me, **_deployment_parts(control, me, name))


@router.get("/deployments/{name}/live", name="console.deployment_live")
def deployment_live(
    request: Request, name: str, control: Control = Depends(get_control)
) -> HTMLResponse:
    me = _session(request)
    return _render(request, "deployment_live.html", me, **_deployment_parts(control, me, name))


def _deployment_parts(control: Control, me: Principal, name: str) -> dict[str, Any]:
    served = control.deployments.get(me, name)
    signature: dict[str, Any] = {}
    versions: list[Any] = []
    if served.model:
        model_name, _, number = served.model.rpartition("@")
        signature = control.models.version(me, model_name, number).signature
        versions = control.models.versions(me, model_name, PageRequest(limit=50)).items
    log = control.deployments.logs(me, name, 0).text[-8_000:]
    inputs = signature.get("inputs")
    columns = [c for c in inputs if isinstance(c, dict)] if isinstance(inputs, list) else None
    spec = InputSpec.from_signature(signature)
    return {
        "deployment": served,
        "columns": columns,
        "spec": spec if spec.shape is not None and len(spec.shape) in (2, 3) else None,
        "revisions": control.deployments.revisions(me, name, PageRequest(limit=20)).items,
        "deployment_name": name,
        **_traffic_charts(control.deployments.traffic(me, name, 30)),
        "versions": versions,
        "log": log,
        "answer": None,
        "token": None,
    }


@router.get("/deployments/{name}/traffic", name="console.deployment_traffic")
def deployment_traffic(
    request: Request, name: str, minutes: int = 30, control: Control = Depends(get_control)
) -> HTMLResponse:
    """Request rate, latency and errors from the replicas' own reports; htmx redraws it every
    10 s while the page is open."""
    me = _session(request)
    traffic = control.deployments.traffic(me, name, minutes)
    parts = _traffic_charts(traffic)
    return _render(request, "deployment_traffic.html", me, deployment_name=name, **parts)


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
    me = await _writer(request)
    form = await request.form()
    request.state.audit_resource = f"deployment/{name}"
    replicas = int(str(form.get("replicas") or "1"))
    control.deployments.update(me, name, DeploymentUpdate(replicas=replicas))
    return RedirectResponse(f"/deployments/{quote(name)}", status_code=303)


@router.post("/deployments/{name}/update", name="console.deployment_update")
async def update(request: Request, name: str, control: Control = Depends(get_control)) -> Response:
    """Roll to another model version: a new replica is ready before an old one drains."""
    me = await _writer(request)
    form = _fields(await request.form())
    request.state.audit_resource = f"deployment/{name}"
    control.deployments.update(me, name, DeploymentUpdate(model=form.get("model") or None))
    return RedirectResponse(f"/deployments/{quote(name)}", status_code=303)


@router.post("/deployments/{name}/rollback", name="console.deployment_rollback")
async def rollback(
    request: Request, name: str, control: Control = Depends(get_control)
) -> Response:
    """Serve again what an earlier generation served (the one before the current by default)."""
    me = await _writer(request)
    form = _fields(await request.form())
    request.state.audit_resource = f"deployment/{name}"
    wanted = form.get("generation", "")
    control.deployments.rollback(me, name, int(wanted) if wanted.isdigit() else None)
    return RedirectResponse(f"/deployments/{quote(name)}", status_code=303)


@router.post("/deployments/{name}/delete", name="console.deployment_delete")
async def delete_deployment(
    request: Request, name: str, control: Control = Depends(get_control)
) -> Response:
    me = await _writer(request)
    request.state.audit_resource = f"deployment/{name}"
    control.deployments.delete(me, name)
    return RedirectResponse("/deployments", status_code=303)


@router.post("/deployments/{name}/try", name="console.deployment_try")
async def try_it(request: Request, name: str, control: Control = Depends(get_control)) -> Response:
    """One row from the form through the deployment's ``/predict`` and ``/explain``; the
    answer and the attributions are drawn on its page. Needs a role that may write: it uses
    the deployment as the control plane, which a viewer's token could not."""
    me = await _writer(request)
    parts = _deployment_parts(control, me, name)
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
    return _render(request, "deployment.html", me, **parts)


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


# --- the audit log -----------------------------------------------------------------------------


@router.get("/audit", name="console.audit")
def audit(
    request: Request,
    action: str | None = None,
    actor: str | None = None,
    outcome: Outcome | None = None,
    after: str | None = None,
    control: Control = Depends(get_control),
) -> HTMLResponse:
    from lepton.control.audit import AuditFilter

    me = _session(request)
    where = AuditFilter(action=action or None, actor=actor or None, outcome=outcome)
    page = control.audit.list(me, where, _page(after))
    query = "&".join(
        f"{k}={quote(str(v))}"
        for k, v in (("action", action), ("actor", actor), ("outcome", outcome))
        if v
    )
    return _render(
        request, "audit.html", me, page=page, where=where, query=query, outcomes=list(Outcome)
    )


# --- tokens (admins) ---------------------------------------------------------------------------


def _admin(me: Principal) -> None:
    if not me.has("admin"):
        raise PermissionDenied(
            f"{me.describe()} may not manage tokens", fix="sign in with an admin token"
        )


@router.get("/tokens", name="console.tokens")
def tokens(request: Request, control: Control = Depends(get_control)) -> HTMLResponse:
    me = _session(request)
    _admin(me)
    listed = control.tokens.list(me, PageRequest(limit=200)).items
    return _render(request, "tokens.html", me, tokens=listed, created=None, roles=list(Role))


@router.post("/tokens", name="console.token_create")
async def token_create(request: Request, control: Control = Depends(get_control)) -> Response:
    """A new token; the page that answers shows its secret, this once."""
    me = _session(request)
    await check_csrf(request)
    _admin(me)
    form = await request.form()
    days = str(form.get("expires_days") or "").strip()
    try:
        body = TokenCreate(
            name=str(form.get("name", "")),
            role=Role(str(form.get("role") or "viewer")),
            expires_in=int(float(days) * 86400) if days else None,
        )
    except (ValueError, ValidationError) as exc:
        raise InvalidRequest(
            f"the token form is not valid: {str(exc).splitlines()[0]}",
            fix="names are letters, digits and . _ @ -; expiry in days",
        ) from None
    created = control.tokens.create(me, body)
    request.state.audit_resource = f"token/{created.id}"
    listed = control.tokens.list(me, PageRequest(limit=200)).items
    return _render(
        request,
        "tokens.html",
        me,
        status_code=201,
        tokens=listed,
        created=created,
        roles=list(Role),
    )


@router.post("/tokens/{token_id}/revoke", name="console.token_revoke")
async def token_revoke(
    request: Request, token_id: str, control: Control = Depends(get_control)
) -> Response:
    me = _session(request)
    await check_csrf(request)
    _admin(me)
    request.state.audit_resource = f"token/{token_id}"
    control.tokens.revoke(me, token_id)
    return RedirectResponse("/tokens", status_code=303)


def sign_in_redirect(request: Request, exc: SignInNeeded) -> Response:
    """A page asked for without a session goes to the sign-in page (htmx: a full reload)."""
    if request.headers.get("hx-request"):
        return Response(status_code=401, headers={"HX-Redirect": "/signin"})
    return RedirectResponse("/signin", status_code=303)


def error_page(request: Request, exc: LeptonError) -> HTMLResponse:
    """A service's refusal on a console page: the message and the fix, with its status."""
    try:
        me = principal_of(request)
    except SignInNeeded:
        me = None
    return _render(
        request, "error.html", me, status_code=exc.status_code, message=exc.message, fix=exc.fix
    )
