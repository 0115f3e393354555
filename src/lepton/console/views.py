"""The console's pages: each parses the request, calls the services, and renders a template.

Reads are plain GETs that work without JavaScript; writes are POSTs that need the session's
CSRF token and a role that may write (viewers never see the controls, and get 403 if they
send one anyway). Errors from the services are shown on the page they came from.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from pydantic import ValidationError
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
from lepton.errors import InvalidRequest, LeptonError, PermissionDenied
from lepton.schemas import (
    DeploymentCreate,
    DeploymentUpdate,
    JobCreate,
    Role,
    TokenCreate,
    TrainSpec,
)
from lepton.server.state import get_control

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
    versions = control.datasets.versions(me, name, PageRequest(limit=20)).items
    return _render(request, "dataset.html", me, detail=detail, versions=versions)


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
    me = _session(request)
    await check_csrf(request)
    require_write(me)
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
    me = _session(request)
    await check_csrf(request)
    require_write(me)
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
    me = _session(request)
    await check_csrf(request)
    require_write(me)
    form = await request.form()
    fields = {k: str(v) for k, v in form.items() if isinstance(v, str)}
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
    card = control.models.card(me, name, str(chosen.version), html=False)
    graph = control.lineage.of_model(me, chosen.ref)
    return _render(
        request, "model.html", me, model=chosen, versions=versions, card=card, graph=graph
    )


@router.post("/models/{name}/alias", name="console.model_alias")
async def alias(request: Request, name: str, control: Control = Depends(get_control)) -> Response:
    me = _session(request)
    await check_csrf(request)
    require_write(me)
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
    me = _session(request)
    await check_csrf(request)
    require_write(me)
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
    if served.model:
        model_name, _, number = served.model.rpartition("@")
        signature = control.models.version(me, model_name, number).signature
    log = control.deployments.logs(me, name, 0).text[-8_000:]
    inputs = signature.get("inputs")
    columns = [c for c in inputs if isinstance(c, dict)] if isinstance(inputs, list) else None
    return {"deployment": served, "columns": columns, "log": log, "answer": None, "token": None}


@router.post("/deployments/{name}/scale", name="console.deployment_scale")
async def scale(request: Request, name: str, control: Control = Depends(get_control)) -> Response:
    me = _session(request)
    await check_csrf(request)
    require_write(me)
    form = await request.form()
    request.state.audit_resource = f"deployment/{name}"
    replicas = int(str(form.get("replicas") or "1"))
    control.deployments.update(me, name, DeploymentUpdate(replicas=replicas))
    return RedirectResponse(f"/deployments/{quote(name)}", status_code=303)


@router.post("/deployments/{name}/delete", name="console.deployment_delete")
async def delete_deployment(
    request: Request, name: str, control: Control = Depends(get_control)
) -> Response:
    me = _session(request)
    await check_csrf(request)
    require_write(me)
    request.state.audit_resource = f"deployment/{name}"
    control.deployments.delete(me, name)
    return RedirectResponse("/deployments", status_code=303)


@router.post("/deployments/{name}/try", name="console.deployment_try")
async def try_it(request: Request, name: str, control: Control = Depends(get_control)) -> Response:
    """One row from the form through the deployment's ``/predict`` and ``/explain``; the
    answer and the attributions are drawn on its page. Needs a role that may write: it uses
    the deployment as the control plane, which a viewer's token could not."""
    me = _session(request)
    await check_csrf(request)
    require_write(me)
    parts = _deployment_parts(control, me, name)
    form = await request.form()
    row = {
        str(c["name"]): _value(str(form.get(f"col:{c['name']}", "")), str(c.get("dtype", "")))
        for c in parts["columns"] or []
    }
    answer: dict[str, Any] = {"row": row}
    try:
        answer["predict"] = control.deployments.call(me, name, "/predict", {"rows": [row]})
        answer["explain"] = control.deployments.call(me, name, "/explain", {"rows": [row]})
        first = answer["explain"]["rows"][0]
        ranked = sorted(
            zip(first["names"], first["attributions"], strict=True), key=lambda kv: -abs(kv[1])
        )
        answer["ranked"] = ranked[:15]
    except LeptonError as exc:
        answer["error"] = message_of(exc)
    parts["answer"] = answer
    return _render(request, "deployment.html", me, **parts)


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
