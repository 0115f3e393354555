"""Console sign-in: an HttpOnly, SameSite=Strict session cookie, and CSRF tokens for writes.

The cookie holds a session token minted at sign-in (``TokenService.open_session``): the same
role and workspace as the token signed in with, 12 hours long, revoked at sign-out or when the
token it came from is revoked. The CSRF token of a session is an HMAC of its cookie, so a page
can carry it and another site, which can neither read the cookie nor send it (SameSite), cannot
forge it; every write checks it.
"""

from __future__ import annotations

import hashlib
import hmac

from fastapi import Request

from lepton.control.tokens import SESSION_S, Principal
from lepton.errors import AuthenticationError, LeptonError, PermissionDenied
from lepton.server.state import get_control

__all__ = ["COOKIE", "SignInNeeded", "check_csrf", "csrf_token", "principal_of", "set_cookie"]

COOKIE = "lepton_session"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"


class SignInNeeded(Exception):
    """No valid session: the page answers with a redirect to the sign-in page."""


def principal_of(request: Request) -> Principal:
    """The signed-in caller, set on the request for the audit log.

    Raises:
        SignInNeeded: no cookie, or its session ended.
    """
    bearer = request.cookies.get(COOKIE)
    if not bearer:
        raise SignInNeeded
    try:
        principal = get_control(request).tokens.verify(bearer)
    except AuthenticationError:
        raise SignInNeeded from None
    request.state.principal = principal
    return principal


def csrf_token(request: Request) -> str:
    bearer = request.cookies.get(COOKIE, "")
    return hmac.new(bearer.encode(), b"lepton-console-csrf", hashlib.sha256).hexdigest()


async def check_csrf(request: Request) -> None:
    """Refuse a write whose CSRF token (form field or header) is not this session's."""
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not sent or not hmac.compare_digest(sent, csrf_token(request)):
        raise PermissionDenied(
            "this form is stale or did not come from the console (its CSRF token is wrong)",
            fix="reload the page and try again",
        )


def require_write(principal: Principal) -> None:
    if not principal.has("write"):
        raise PermissionDenied(
            f"{principal.describe()} may only read", fix="sign in with an editor or admin token"
        )


def set_cookie(response: object, bearer: str, *, secure: bool) -> None:
    response.set_cookie(  # type: ignore[attr-defined]
        COOKIE,
        bearer,
        max_age=SESSION_S,
        httponly=True,
        samesite="strict",
        secure=secure,
        path="/",
    )


def message_of(exc: LeptonError) -> str:
    return f"{exc.message}; {exc.fix}" if exc.fix else exc.message
