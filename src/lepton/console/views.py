"""The console's pages, one module per resource (datasets, jobs, models, deployments, admin),
gathered into one router here with signing in, the overview and the error pages.

Each page parses the request, calls the services, and renders a template. Reads are plain GETs
that work without JavaScript; writes are POSTs that need the session's CSRF token and a role
that may write (viewers never see the controls, and get 403 if they send one anyway). Errors
from the services are shown on the page they came from.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from lepton.console import admin, datasets, deployments, jobs, models
from lepton.console.render import CSP, render, signed_in
from lepton.console.session import SignInNeeded, check_csrf, message_of, principal_of, set_cookie
from lepton.control.paging import PageRequest
from lepton.control.plane import Control
from lepton.enums import JobState
from lepton.errors import LeptonError
from lepton.server.state import get_control

__all__ = ["CSP", "error_page", "router", "sign_in_redirect", "static_app"]

router = APIRouter(include_in_schema=False)


def static_app() -> StaticFiles:
    return StaticFiles(directory=Path(__file__).parent / "static")


# --- signing in --------------------------------------------------------------------------------


@router.get("/signin", name="console.signin_form")
def signin_form(request: Request) -> HTMLResponse:
    return render(request, "signin.html", None, error=None)


@router.post("/signin", name="console.signin")
async def signin(request: Request, control: Control = Depends(get_control)) -> Response:
    form = await request.form()
    token = str(form.get("token", "")).strip()
    try:
        principal, bearer = control.tokens.open_session(token)
    except LeptonError as exc:
        return render(
            request, "signin.html", None, status_code=exc.status_code, error=message_of(exc)
        )
    request.state.principal = principal
    response = RedirectResponse("/", status_code=303)
    set_cookie(response, bearer, secure=request.url.scheme == "https")
    return response


@router.post("/signout", name="console.signout")
async def signout(request: Request, control: Control = Depends(get_control)) -> Response:
    principal = signed_in(request)
    await check_csrf(request)
    control.tokens.close_session(principal)
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie("lepton_session", path="/")
    return response


# --- overview ----------------------------------------------------------------------------------


@router.get("/", name="console.overview")
def overview(request: Request, control: Control = Depends(get_control)) -> HTMLResponse:
    me = signed_in(request)
    running = control.jobs.list(me, PageRequest(limit=20), state=JobState.running).items
    failed = control.jobs.list(me, PageRequest(limit=5), state=JobState.failed).items
    deployments = control.deployments.list(me, PageRequest(limit=50)).items
    return render(
        request, "overview.html", me, running=running, failed=failed, deployments=deployments
    )


for part in (datasets, jobs, models, deployments, admin):
    router.include_router(part.router)


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
    return render(
        request, "error.html", me, status_code=exc.status_code, message=exc.message, fix=exc.fix
    )
