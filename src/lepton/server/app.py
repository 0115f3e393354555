"""The control-plane application factory."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from lepton._version import __version__
from lepton.control.context import open_context
from lepton.control.plane import Control
from lepton.control.workspaces import FirstStart
from lepton.errors import APIVersionMismatch
from lepton.sandbox import Sandbox
from lepton.schemas import API_VERSION, API_VERSION_HEADER
from lepton.server.audit import AuditMiddleware
from lepton.server.errors import error_response, install_error_handlers
from lepton.server.routes import ROUTERS
from lepton.settings import Settings

if TYPE_CHECKING:
    from lepton.executors.local import LocalExecutor
    from lepton.executors.ray import RayExecutor

__all__ = ["create_app", "open_control"]


def open_control(settings: Settings) -> Control:
    """Open the stores (migrating, cleaning up after a crash) and the services over them."""
    return Control(open_context(settings))


def create_app(
    settings: Settings,
    on_start: Callable[[Control, FirstStart | None], None] | None = None,
    *,
    control: Control | None = None,
    run_jobs: bool = True,
    sandbox: Sandbox | None = None,
    executor: LocalExecutor | RayExecutor | None = None,
) -> FastAPI:
    """The FastAPI app. Its lifespan opens the services (unless ``control`` is already open), on
    first start bootstraps, and starts the reconcilers: job scheduler, deployment supervisor and
    content sweeper (unless ``run_jobs`` is False, as in in-process tests); ``on_start`` then
    hears what was opened and created."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal control
        if control is None:
            control = await run_in_threadpool(open_control, settings)
        first = await run_in_threadpool(control.workspaces.bootstrap)
        app.state.lepton = control
        tasks = []
        if run_jobs:
            from lepton.control.scheduler import Scheduler
            from lepton.control.supervisor import Supervisor
            from lepton.control.sweeper import Sweeper
            from lepton.executors import open_executor

            runs = executor
            if runs is None:
                contained = (
                    sandbox
                    if sandbox is not None
                    else await run_in_threadpool(Sandbox.detect, settings)
                )
                runs = await run_in_threadpool(open_executor, settings, contained)
            # Replicas keep serving when the control plane stops; the next start re-attaches.
            reconcilers = [
                Scheduler(control, runs),
                Supervisor(control, runs),
                Sweeper(control),
            ]
            tasks = [asyncio.create_task(r.run()) for r in reconcilers]
            from lepton.control.gateway import keep_gateway

            tasks.append(asyncio.create_task(keep_gateway(control.ctx, control.gateway)))
        if on_start is not None:
            on_start(control, first)
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            control.ctx.engine.dispose()

    app = FastAPI(
        title="Lepton",
        version=__version__,
        summary="Self-hosted AI platform: datasets, training, registry, serving, explanations.",
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
    )
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    app.add_middleware(APIVersionMiddleware)
    app.add_middleware(AuditMiddleware)  # outermost: even a refused API version is audited
    from lepton.console.views import router as console
    from lepton.console.views import static_app

    app.include_router(console)  # the web console, at /
    app.mount("/static", static_app(), name="static")
    return app


def _operation_id(route: APIRoute) -> str:
    return route.name.replace(".", "_")


class APIVersionMiddleware:
    """Refuses calls from a client of another API version and names the version on every answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = API_VERSION_HEADER.lower().encode()
        sent = dict(scope["headers"]).get(header)
        if sent is not None and sent != str(API_VERSION).encode():
            error = APIVersionMismatch(
                f"this client speaks API version {sent.decode(errors='replace')}, "
                f"the server speaks version {API_VERSION}",
                fix="install the lepton package version that matches the server",
            )
            response = error_response(error)
            response.headers[API_VERSION_HEADER] = str(API_VERSION)
            await response(scope, receive, send)
            return

        async def send_with_version(message: dict[str, object]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))  # type: ignore[call-overload]
                headers.append((header, str(API_VERSION).encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_version)  # type: ignore[arg-type]
