"""How every console page is answered: templates, security headers, the session of a read
or a write, paging and form errors."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape
from pydantic import ValidationError

from lepton import __version__
from lepton.console import charts
from lepton.console.session import (
    CSRF_FIELD,
    check_csrf,
    csrf_token,
    message_of,
    principal_of,
    require_write,
)
from lepton.control.paging import PageRequest
from lepton.control.tokens import Principal
from lepton.errors import LeptonError

__all__ = [
    "CSP",
    "PAGE",
    "form_error",
    "page_request",
    "render",
    "secure_headers",
    "signed_in",
    "text_fields",
    "writer",
]

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


def render(
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
    return HTMLResponse(body, status_code=status_code, headers=secure_headers())


def secure_headers() -> dict[str, str]:
    return {
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
    }


def signed_in(request: Request) -> Principal:
    return principal_of(request)


async def writer(request: Request) -> Principal:
    """The session of a write: its CSRF token checked, its role one that may write."""
    me = signed_in(request)
    await check_csrf(request)
    require_write(me)
    return me


def text_fields(form: Any) -> dict[str, str]:
    """A form's text fields (files left out)."""
    return {k: str(v) for k, v in form.items() if isinstance(v, str)}


def page_request(after: str | None) -> PageRequest:
    return PageRequest(limit=PAGE, after=after or None)


def form_error(exc: LeptonError | ValidationError) -> str:
    """A refusal as one line for the form: the service's message and fix, or pydantic's first
    complaint with the field it is about."""
    if isinstance(exc, LeptonError):
        return message_of(exc)
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "steps")
    return f"{where}: {first.get('msg', 'not valid')}" if where else str(first.get("msg"))
