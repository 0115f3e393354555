"""Reading the audit log (admins only)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Depends, Query, Request, Response

from lepton.control.audit import AuditFilter
from lepton.control.paging import PageRequest
from lepton.control.plane import Control
from lepton.errors import InvalidRequest
from lepton.schemas import AuditEvent, Outcome
from lepton.server.auth import Principal, require
from lepton.server.errors import ERROR_RESPONSES
from lepton.server.paging import page_request, page_response
from lepton.server.state import get_control

# A date, or a date and time with optional seconds, fraction and offset; never a bare number,
# which pydantic's datetime reads as Unix time (`since=0.5` was 1970).
ISO_TIME_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,9})?)?(?:Z|[+-][0-9]{2}:?[0-9]{2})?)?$"
)


router = APIRouter(prefix="/api/v1/audit", tags=["audit"], responses=ERROR_RESPONSES)


@router.get("", name="audit.list")
def list_events(
    request: Request,
    response: Response,
    action: str | None = Query(None, description="Only this action, e.g. `token.create`."),
    actor: str | None = Query(None, description="Only this token name or token id."),
    outcome: Outcome | None = Query(None, description="Only this outcome."),
    since: str | None = Query(
        None,
        description="Only events at or after this time, in ISO 8601: `2026-12-01`, "
        "`2026-12-01T09:30:00Z` (UTC when no offset is given). Numbers are not taken.",
        pattern=ISO_TIME_PATTERN,
        json_schema_extra={"format": "date-time"},
    ),
    page: PageRequest = Depends(page_request),
    principal: Principal = Depends(require("admin")),
    control: Control = Depends(get_control),
) -> list[AuditEvent]:
    """Recent audit events of the caller's workspace, newest first.

    Admins of `default` also see requests that failed before a workspace was known
    (missing or invalid tokens).
    """
    where = AuditFilter(action=action, actor=actor, outcome=outcome, since=_time(since))
    return page_response(request, response, control.audit.list(principal, where, page))


def _time(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(
            f"since={text!r} is not a time", fix="write an ISO 8601 time: 2026-12-01T09:30:00Z"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
