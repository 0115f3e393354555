"""The replica's ASGI application: exact-path routing, auth, body limits, health and metrics.

It is a plain ASGI callable rather than a framework app: on the hot path a request costs one
dictionary lookup for its route, one pass over its headers (auth and length together), one
read of its body and two ``send`` calls. Starlette supplies the pieces that are not hot:
multipart parsing, streaming and file responses. Errors leave as
``{"error": {"code", "message", "fix"}}``, like the control plane's.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any
from urllib.parse import parse_qsl

import orjson

from lepton.errors import AuthenticationError, LeptonError, NotFound, Overloaded, PayloadTooLarge
from lepton.serving.auth import TokenCheck
from lepton.serving.batcher import Batcher
from lepton.serving.metrics import CONTENT_TYPE, Metrics

__all__ = [
    "JSON",
    "ReplicaApp",
    "Reply",
    "Request",
    "Route",
    "error_reply",
    "json_reply",
    "retry_headers",
]

log = logging.getLogger("lepton.serving")

JSON = b"application/json"

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(slots=True)
class Reply:
    """A whole answer: status, body and media type (plus any extra headers)."""

    status: int
    body: bytes
    media_type: bytes = JSON
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


class Request:
    """What a route sees: the ASGI scope and the whole body, already size-checked."""

    __slots__ = ("body", "content_type", "scope")

    def __init__(self, scope: Scope, body: bytes, content_type: bytes) -> None:
        self.scope = scope
        self.body = body
        self.content_type = content_type

    def header(self, name: bytes) -> bytes | None:
        """A request header by its lower-case name."""
        for key, value in self.scope["headers"]:
            if key == name:
                return bytes(value)
        return None

    @property
    def query(self) -> list[tuple[str, str]]:
        return parse_qsl(self.scope.get("query_string", b"").decode("latin-1"), True)

    def receive_again(self) -> Receive:
        """A ``receive`` that replays the body, for Starlette's form parser."""
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": self.body, "more_body": False}

        return receive


Endpoint = Callable[[Request], Awaitable[Any]]
"""Returns a :class:`Reply` or a Starlette ``Response`` (streaming, files)."""


@dataclass
class Route:
    """One method and exact path. ``public`` routes need no token (probes)."""

    method: str
    path: str
    name: str
    endpoint: Endpoint
    public: bool = False
    batcher: Batcher | None = None
    render_error: Callable[[LeptonError], Reply] | None = None
    """How this route words errors (the V2 protocol has its own form)."""


def json_reply(value: Any, status: int = 200) -> Reply:
    return Reply(status, orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY))


def error_reply(error: LeptonError) -> Reply:
    body = orjson.dumps({"error": error.to_dict()})
    return Reply(error.status_code, body, JSON, retry_headers(error))


def retry_headers(error: LeptonError) -> list[tuple[bytes, bytes]]:
    """``Retry-After`` (whole seconds, as HTTP has it) for an answer the caller may repeat."""
    if isinstance(error, Overloaded) and error.retry_after is not None:
        return [(b"retry-after", str(max(1, math.ceil(error.retry_after))).encode())]
    return []


def _http_error_reply(error: Any) -> Reply:
    detail = error.detail if isinstance(error.detail, str) else orjson.dumps(error.detail).decode()
    body = {"error": {"code": f"http_{error.status_code}", "message": detail, "fix": ""}}
    return Reply(error.status_code, orjson.dumps(body), JSON, list((error.headers or {}).items()))


class ReplicaApp:
    """The ASGI app of a replica.

    Args:
        routes: the served routes; batchers found on them are started and stopped with the app.
        auth: which bearer tokens are let in.
        max_body_bytes: the largest request body; larger ones get 413 before being read.
        fallback: resolves paths no exact route has (``/v2/models/<other>/...``), or None.
        openapi: the document served at ``/openapi.json``.
    """

    def __init__(
        self,
        routes: Iterable[Route],
        *,
        auth: TokenCheck,
        max_body_bytes: int = 64 * 1024**2,
        metrics: Metrics | None = None,
        fallback: Callable[[str, str], Route | None] | None = None,
        openapi: dict[str, Any] | None = None,
        on_shutdown: Callable[[], None] | None = None,
    ) -> None:
        self.auth = auth
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics or Metrics()
        self.fallback = fallback
        self.openapi = openapi or {"openapi": "3.1.0", "info": {"title": "replica"}, "paths": {}}
        self.on_shutdown = on_shutdown
        self.ready = False
        self.draining = False
        self.routes: dict[tuple[str, str], Route] = {}
        self.paths: set[str] = set()
        for route in [*routes, *self._system_routes()]:
            self.add(route)

    def add(self, route: Route) -> None:
        self.routes[(route.method, route.path)] = route
        self.paths.add(route.path)
        batcher = route.batcher
        if batcher is not None:
            self.metrics.watch_depth(route.name, lambda: batcher.depth)

    @property
    def probes(self) -> frozenset[str]:
        """Routes that probes and scrapers call (health, readiness, metrics): not traffic."""
        return frozenset(r.name for r in self.routes.values() if r.public) | {"metrics"}

    @property
    def batchers(self) -> list[Batcher]:
        return [r.batcher for r in self.routes.values() if r.batcher is not None]

    def _system_routes(self) -> list[Route]:
        async def healthz(request: Request) -> Reply:
            return Reply(200, b'{"status":"ok"}')

        async def readyz(request: Request) -> Reply:
            if self.ready and not self.draining:
                return Reply(200, b'{"status":"ready"}')
            state = "draining" if self.draining else "starting"
            return Reply(503, orjson.dumps({"status": state}))

        async def metrics(request: Request) -> Reply:
            return Reply(200, self.metrics.render(), CONTENT_TYPE.encode())

        async def openapi(request: Request) -> Reply:
            return json_reply(self.openapi)

        return [
            Route("GET", "/healthz", "healthz", healthz, public=True),
            Route("GET", "/readyz", "readyz", readyz, public=True),
            Route("GET", "/metrics", "metrics", metrics),
            Route("GET", "/openapi.json", "openapi", openapi),
        ]

    # -- ASGI ----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, _closing(send) if self.draining else send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                loop = asyncio.get_running_loop()
                for batcher in self.batchers:
                    batcher.start(loop)
                self.ready = True
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.ready = False
                await asyncio.to_thread(self.stop)
                await send({"type": "lifespan.shutdown.complete"})
                return

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the batchers without a lifespan (in-process test clients)."""
        for batcher in self.batchers:
            batcher.start(loop)
        self.ready = True

    def stop(self) -> None:
        """Stop the batchers (their workers finish the batch they hold)."""
        for batcher in self.batchers:
            batcher.stop()
        if self.on_shutdown is not None:
            self.on_shutdown()

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method: str = scope["method"]
        path: str = scope["path"]
        route = self.routes.get((method, path))
        if route is None:
            route = self.fallback(method, path) if self.fallback is not None else None
            if route is None:
                await _send(send, self._missing(method, path))
                return
        authorization = None
        content_type = b""
        length = -1
        for key, value in scope["headers"]:
            if key == b"authorization":
                authorization = value
            elif key == b"content-length":
                length = int(value) if value.isdigit() else -1
            elif key == b"content-type":
                content_type = value
        render = route.render_error or error_reply
        if not route.public and not self.auth.allows(authorization):
            self.metrics.refused(route.name, 401, "unauthenticated")
            await _send(send, self._unauthenticated(authorization, render))
            return
        if length > self.max_body_bytes:
            await _send(send, self._refused(route, self._too_large(length), render))
            return
        # The chunks are joined once at the end: adding each to the body so far copied that
        # body again, so n chunks cost O(n^2) bytes copied (a 64 MiB upload in 64 KiB chunks
        # copied 32 GiB). A body in one chunk, the common case, is not copied at all.
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await _send(send, self._refused(route, self._too_large(size), render))
                return
            if chunk:
                chunks.append(chunk)
            more = message.get("more_body", False)
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        started = perf_counter()
        try:
            answer = await route.endpoint(Request(scope, body, content_type))
        except LeptonError as exc:
            answer = render(exc)
            self.metrics.error(route.name, exc.code)
        except Exception as exc:
            from starlette.exceptions import HTTPException

            if isinstance(exc, HTTPException):
                answer = _http_error_reply(exc)
            else:
                log.exception("route %s failed", route.name)
                answer = error_reply(
                    LeptonError(
                        f"the replica failed on {method} {path}: {type(exc).__name__}",
                        fix="this is a bug; see the replica's log",
                    )
                )
                answer.status = 500
            self.metrics.error(route.name, f"http_{answer.status}")
        if type(answer) is Reply:
            await _send(send, answer)
        else:
            await answer(scope, receive, send)
        self.metrics.observe(
            route.name, getattr(answer, "status", 0) or 200, perf_counter() - started
        )

    def _missing(self, method: str, path: str) -> Reply:
        if path in self.paths:
            allowed = sorted(m for m, p in self.routes if p == path)
            reply = error_reply(
                LeptonError(f"{method} is not allowed on {path}", fix=f"use {' or '.join(allowed)}")
            )
            reply.status = 405
            reply.headers.append((b"allow", ", ".join(allowed).encode()))
            return reply
        served = sorted(p for p in self.paths if not p.startswith("/v2"))
        return error_reply(
            NotFound(f"this replica serves no {path}", fix=f"paths are: {', '.join(served)}")
        )

    def _unauthenticated(
        self, authorization: bytes | None, render: Callable[[LeptonError], Reply]
    ) -> Reply:
        what = "needs a bearer token" if not authorization else "does not accept this token"
        reply = render(
            AuthenticationError(
                f"this deployment {what}",
                fix="send 'Authorization: Bearer <token>' with a token of this deployment",
            )
        )
        reply.headers.append((b"www-authenticate", b"Bearer"))
        return reply

    def _refused(
        self, route: Route, error: LeptonError, render: Callable[[LeptonError], Reply]
    ) -> Reply:
        """The answer to a request refused before its handler ran, counted as such."""
        self.metrics.refused(route.name, error.status_code, error.code)
        return render(error)

    def _too_large(self, size: int) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"the request body has {size} bytes; this replica takes at most {self.max_body_bytes}",
            fix="send smaller batches, or start the replica with a larger --max-body-bytes",
        )


def _closing(send: Send) -> Send:
    """``send`` that asks the client to close the connection after this answer: a draining
    replica sends its keep-alive clients to reconnect (to the other replicas) before it stops,
    rather than closing idle connections under a request just sent on one."""

    async def closing(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            message = {
                **message,
                "headers": [*message.get("headers", []), (b"connection", b"close")],
            }
        await send(message)

    return closing


async def _send(send: Send, reply: Reply) -> None:
    headers = [
        (b"content-type", reply.media_type),
        (b"content-length", str(len(reply.body)).encode()),
        *reply.headers,
    ]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})
