"""The audit log: every mutating request is recorded with its actor, action, resource and outcome.

The event is written when the response starts, before the client sees the status, so an
acknowledged change always has its audit event.
"""

from __future__ import annotations

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lepton.control.plane import Control
from lepton.control.tokens import Principal
from lepton.schemas import Outcome

__all__ = ["ROUTINE", "AuditMiddleware", "outcome_for"]

_MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# A running job's telemetry: a metrics batch every 2 s and a checkpoint every few minutes are
# progress of a change already recorded (job.submit, job.started, job.finish), not changes of
# their own, and would bury the rest; so would the gateway's load report every second. Refused
# ones (401/403/4xx) are still recorded.
ROUTINE = frozenset({"job.log_metrics", "job.checkpoint_put", "gateway.load"})
_API_PREFIX = "/api/v1/"


def outcome_for(status_code: int) -> Outcome:
    if status_code < 400:
        return Outcome.success
    if status_code in (401, 403):
        return Outcome.denied
    if status_code < 500:
        return Outcome.rejected
    return Outcome.failed


class AuditMiddleware:
    """Pure ASGI middleware (no per-request task or body buffering)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _MUTATING:
            await self.app(scope, receive, send)
            return

        recorded = False

        async def send_and_record(message: Message) -> None:
            nonlocal recorded
            if message["type"] == "http.response.start" and not recorded:
                recorded = True
                await anyio.to_thread.run_sync(_record, scope, message["status"])
            await send(message)

        await self.app(scope, receive, send_and_record)


def _record(scope: Scope, status_code: int) -> None:
    control: Control | None = getattr(scope["app"].state, "lepton", None)
    if control is None:
        return
    request_state = scope.get("state", {})
    principal: Principal | None = request_state.get("principal")
    route = scope.get("route")
    action = getattr(route, "name", None) or "unknown"
    if action in ROUTINE and status_code < 400:
        return
    path: str = scope["path"]
    resource = request_state.get("audit_resource") or (
        path[len(_API_PREFIX) :] if path.startswith(_API_PREFIX) else path
    )
    control.audit.record(
        principal,
        action=action,
        method=scope["method"],
        resource=resource,
        outcome=outcome_for(status_code),
        status_code=status_code,
    )
