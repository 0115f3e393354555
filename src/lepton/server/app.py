"""The control-plane application factory."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from lepton._version import __version__
from lepton.errors import APIVersionMismatch
from lepton.schemas import API_VERSION, API_VERSION_HEADER
from lepton.server.audit import AuditMiddleware
from lepton.server.bootstrap import FirstStart, bootstrap
from lepton.server.errors import error_response, install_error_handlers
from lepton.server.routes import ROUTERS, deployments, photons
from lepton.server.state import ServerState
from lepton.settings import Settings
from lepton.store.blobs import BlobStore
from lepton.store.db import make_engine, make_sessionmaker, migrate

__all__ = ["create_app", "open_state"]


def open_state(settings: Settings) -> ServerState:
    """Open the stores: apply migrations, clean up after a crash, and return the state."""
    settings.home.mkdir(mode=0o700, parents=True, exist_ok=True)  # holds the key and tokens
    engine = make_engine(settings.database)
    migrate(engine)
    blobs = BlobStore.from_settings(settings)
    blobs.clean_temp()  # temporary objects left by a crash mid-upload are never referenced
    return ServerState(
        settings=settings, engine=engine, sessions=make_sessionmaker(engine), blobs=blobs
    )


def create_app(
    settings: Settings,
    on_start: Callable[[ServerState, FirstStart | None], None] | None = None,
    *,
    state: ServerState | None = None,
    run_jobs: bool = True,
) -> FastAPI:
    """The FastAPI app. Its lifespan opens the stores (unless ``state`` is already open), on
    first start bootstraps, and starts the job scheduler and the deployment supervisor (unless
    ``run_jobs`` is False, as in in-process tests); ``on_start`` then hears what was opened and
    created."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal state
        if state is None:
            state = await run_in_threadpool(open_state, settings)
        first = await run_in_threadpool(bootstrap, settings, state.sessions)
        app.state.lepton = state
        tasks = []
        if run_jobs:
            from lepton.deploy.supervisor import Supervisor
            from lepton.executors.local import LocalExecutor
            from lepton.jobs.scheduler import Scheduler

            executor = LocalExecutor(cpu_slots=settings.job_slots)
            state.scheduler = Scheduler(state, executor)
            # Replicas keep serving when the control plane stops; the next start re-attaches.
            app.state.supervisor = Supervisor(state, executor)
            tasks = [
                asyncio.create_task(state.scheduler.run()),
                asyncio.create_task(app.state.supervisor.run()),
            ]
        if on_start is not None:
            on_start(state, first)
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            state.engine.dispose()

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
    for router in (*ROUTERS, deployments.router, photons.router):
        app.include_router(router)
    app.add_middleware(APIVersionMiddleware)
    app.add_middleware(AuditMiddleware)  # outermost: even a refused API version is audited
    app.add_api_route("/", _root, include_in_schema=False)
    return app


def _operation_id(route: APIRoute) -> str:
    return route.name.replace(".", "_")


async def _root(request: Request) -> Response:
    return Response(
        f"Lepton {__version__}: API under /api/v1, docs at /api/v1/docs\n", media_type="text/plain"
    )


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
