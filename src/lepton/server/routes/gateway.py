"""The gateway's routes: the routing table it follows and the load it reports, for the gateway
process the control plane started (its secret, never a workspace token); and where it listens,
for anyone with a token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from lepton.control.plane import Control
from lepton.errors import AuthenticationError, PermissionDenied
from lepton.schemas.gateway import Gateway, GatewayReport, GatewayRoutes
from lepton.server.auth import Principal, authenticate
from lepton.server.errors import ERROR_RESPONSES
from lepton.server.state import get_control

GATEWAY_FIX = "these routes are for the gateway process the control plane starts"

router = APIRouter(prefix="/api/v1/gateway", tags=["gateway"], responses=ERROR_RESPONSES)


def gateway_caller(request: Request, control: Control = Depends(get_control)) -> None:
    """Lets through the gateway this control plane started, by its secret; a workspace token
    is refused (403), anything else is not authenticated (401)."""
    header = request.headers.get("authorization", "")
    bearer = header[7:].strip() if header[:7].lower() == "bearer " else None
    if control.gateway.is_gateway(bearer):
        return
    if bearer is None:
        raise AuthenticationError("this request needs the gateway's secret", fix=GATEWAY_FIX)
    principal = control.tokens.verify(bearer)  # 401 for what is no token at all
    request.state.principal = principal  # the refusal is audited under its name
    raise PermissionDenied(
        f"{principal.describe()} may not {request.method} {request.url.path}: only the gateway may",
        fix=GATEWAY_FIX,
    )


@router.get("", name="gateway.get")
def gateway(
    principal: Principal = Depends(authenticate),
    control: Control = Depends(get_control),
) -> Gateway:
    """Where the gateway listens: every deployment answers at ``{url}/d/<name>/``."""
    return Gateway(url=control.gateway.url)


@router.get("/routes", name="gateway.routes", dependencies=[Depends(gateway_caller)])
async def routes(
    after: Annotated[str, Query(max_length=64, description="The version the gateway has.")] = "",
    wait_s: Annotated[float, Query(ge=0, le=60, description="Longest to wait for a change.")] = 0,
    control: Control = Depends(get_control),
) -> GatewayRoutes:
    """The routing table, as soon as its version is not ``after`` (or after ``wait_s``)."""
    return GatewayRoutes(**await control.gateway.wait_for_change(after, wait_s))


@router.post("/load", name="gateway.load", status_code=204, dependencies=[Depends(gateway_caller)])
def load(body: GatewayReport, control: Control = Depends(get_control)) -> None:
    """Each deployment's load since the last report; the autoscaler reads it."""
    control.gateway.report(body.model_dump())
