"""The console's audit log (filtered, paged) and, for admins, the workspace's tokens."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from lepton.console.render import page_request, render, signed_in
from lepton.console.session import check_csrf
from lepton.control.paging import PageRequest
from lepton.control.plane import Control
from lepton.control.tokens import Principal
from lepton.enums import Outcome
from lepton.errors import InvalidRequest, PermissionDenied
from lepton.schemas import Role, TokenCreate
from lepton.server.state import get_control

router = APIRouter(include_in_schema=False)


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

    me = signed_in(request)
    where = AuditFilter(action=action or None, actor=actor or None, outcome=outcome)
    page = control.audit.list(me, where, page_request(after))
    query = "&".join(
        f"{k}={quote(str(v))}"
        for k, v in (("action", action), ("actor", actor), ("outcome", outcome))
        if v
    )
    return render(
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
    me = signed_in(request)
    _admin(me)
    listed = control.tokens.list(me, PageRequest(limit=200)).items
    return render(request, "tokens.html", me, tokens=listed, created=None, roles=list(Role))


@router.post("/tokens", name="console.token_create")
async def token_create(request: Request, control: Control = Depends(get_control)) -> Response:
    """A new token; the page that answers shows its secret, this once."""
    me = signed_in(request)
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
    return render(
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
    me = signed_in(request)
    await check_csrf(request)
    _admin(me)
    request.state.audit_resource = f"token/{token_id}"
    control.tokens.revoke(me, token_id)
    return RedirectResponse("/tokens", status_code=303)
