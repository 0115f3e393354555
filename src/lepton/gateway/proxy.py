"""The gateway's data path: an HTTP/1.1 reverse proxy on asyncio protocols and httptools.

A client connection's requests are parsed with httptools and answered in order (pipelining
included). Each request is read whole (at most ``max_body_bytes``), its path stripped of
``/d/<name>`` (or ``/w/<workspace>/d/<name>``), and sent to a replica over a pooled keep-alive
connection; the answer's bytes go back to the client as they arrive, untouched (a streamed
answer streams), while a response parser finds where it ends so the connection can be reused.

Failures the client never sees:

- a refused (or timed-out) connection: the replica is ejected for ``EJECT_S`` and another is
  tried. Nothing was sent, so any request may go again.
- a pooled connection closed under the request before any byte of the answer came back (the
  replica was killed, or closed an idle connection as it drained): tried again on another
  replica when the request is idempotent by its method, or the deployment serves a registered
  model (``/predict`` and ``/explain`` change nothing). A photon's ``POST`` is not repeated: its
  handler may have run.

A deployment with no ready replica holds the request (``waiting``), tells the process (which
asks the control plane to start one), and goes on once the table lists a replica, or answers
503 after the deployment's hold timeout. Tokens are checked here before anything is held or
sent, and again by the replica.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections import deque
from collections.abc import Callable

import httptools
import orjson

from lepton.gateway.table import EJECT_S, POOL, Route, Table, Upstream

__all__ = ["ClientConnection", "Gateway"]

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
        b"expect",
    }
)
IDEMPOTENT = frozenset({b"GET", b"HEAD", b"PUT", b"DELETE", b"OPTIONS"})
CONNECT_TIMEOUT_S = 2.0
MAX_ATTEMPTS = 8
MAX_PIPELINED = 32
ANSWER_SLACK_S = 30.0
"""How long past the deployment's own timeout (the replica answers 504 then) the gateway waits
for an answer before it gives up on the replica."""


class Reset(Exception):
    """The replica's connection ended before any byte of its answer."""


class Truncated(Exception):
    """The replica's connection ended partway through its answer."""


class UpstreamConnection(asyncio.Protocol):
    """One keep-alive connection to a replica, carrying one request at a time."""

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.sink: Callable[[bytes], None] | None = None
        self.done: asyncio.Future[None] | None = None
        self.got_bytes = False
        self.keep_alive = True
        self.closed = False
        self.status = 0

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.done is None or self.done.done() or self.sink is None:
            self.close()  # an answer nobody asked for: the connection cannot be trusted
            return
        self.got_bytes = True
        self.sink(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.close()
            self.done.set_exception(Truncated(f"the replica's answer is not HTTP: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        done = self.done
        if done is not None and not done.done():
            error = Truncated if self.got_bytes else Reset
            done.set_exception(error("the replica closed the connection"))

    # httptools callbacks
    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()

    def on_message_complete(self) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result(None)

    def send(self, data: bytes, sink: Callable[[bytes], None]) -> asyncio.Future[None]:
        assert self.transport is not None
        self.sink = sink  # the parser goes on to the connection's next answer by itself
        self.got_bytes = False
        self.status = 0
        self.done = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self.done

    def expire(self) -> None:
        """The answer took far past the deployment's timeout: give up on this connection."""
        if self.done is not None and not self.done.done():
            self.done.set_exception(TimeoutError("the replica did not answer in time"))
        self.close()

    def release(self) -> None:
        self.sink = None
        self.done = None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Request:
    __slots__ = ("body", "expect", "headers", "keep_alive", "method", "url")

    def __init__(self) -> None:
        self.url = bytearray()
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.method = b""
        self.keep_alive = True
        self.expect = False

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


def reply(status: int, code: str, message: str, fix: str = "", retry_after: int = 0) -> bytes:
    """A complete answer with the replicas' error body."""
    body = orjson.dumps({"error": {"code": code, "message": message, "fix": fix}})
    reason = {
        400: "Bad Request",
        401: "Unauthorized",
        404: "Not Found",
        413: "Payload Too Large",
        502: "Bad Gateway",
        503: "Service Unavailable",
        504: "Gateway Timeout",
    }.get(status, "")
    extra = f"retry-after: {retry_after}\r\n" if retry_after else ""
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n{extra}\r\n"
    )
    return head.encode() + body


class Gateway:
    """What every client connection shares: the table, the limits, and ``demand``, called when a
    request is held for a deployment with no ready replica."""

    def __init__(
        self,
        table: Table,
        *,
        demand: Callable[[Route], None],
        max_body_bytes: int = 64 * 1024**2,
        metrics: Callable[[list[Route] | None], bytes] | None = None,
        metrics_token: str = "",
    ) -> None:
        self.table = table
        self.demand = demand
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics
        self.metrics_token = metrics_token.encode()
        self.clients = 0

    def resolve(self, url: bytes) -> tuple[Route | None, bytes, bytes]:
        """The route for ``url``, the path to send the replica, and the prefix taken off."""
        parts = url.split(b"/", 5)
        # b"/d/name/rest" -> ["", "d", "name", "rest..."]
        if len(parts) >= 3 and parts[1] == b"d":
            key, prefix_len = parts[2], 2
        elif len(parts) >= 5 and parts[1] == b"w" and parts[3] == b"d":
            key, prefix_len = parts[2] + b"/" + parts[4], 4
        else:
            return None, b"", b""
        name, _, query = key.partition(b"?")
        rest = b"/".join(parts[prefix_len + 1 :])
        prefix = b"/".join(parts[: prefix_len + 1])
        if query:  # "/d/name?x=1": the root, with its query
            prefix = prefix[: -len(query) - 1]
            rest = b"?" + query
        path = b"/" + rest
        route = self.table.get(name.decode("latin-1"))
        return route, path, prefix


class ClientConnection(asyncio.Protocol):
    """One client's connection to the gateway."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.request = Request()
        self.size = 0
        self.pending: deque[Request] = deque()
        self.busy = False
        self.closing = False
        self.peer = b""
        self.writable = asyncio.Event()
        self.writable.set()
        self.upstream_conn: UpstreamConnection | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer = str(peer[0]).encode() if peer else b""
        self.gateway.clients += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.gateway.clients -= 1
        self.writable.set()

    def pause_writing(self) -> None:
        self.writable.clear()
        conn = self.upstream_conn
        if conn is not None and conn.transport is not None:
            conn.transport.pause_reading()  # a slow client slows its replica's answer down

    def resume_writing(self) -> None:
        self.writable.set()
        conn = self.upstream_conn
        if conn is not None and conn.transport is not None and not conn.closed:
            conn.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.fail(400, "upgrade_unsupported", "the gateway does not upgrade connections")
        except httptools.HttpParserError as exc:
            self.fail(400, "bad_request", f"the request is not valid HTTP/1.1: {exc}")

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.request = Request()
        self.size = 0

    def on_url(self, url: bytes) -> None:
        self.request.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.request.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        request = self.request
        request.method = self.parser.get_method()
        request.keep_alive = self.parser.should_keep_alive()
        length = request.header(b"content-length")
        too_long = length is not None and length.strip().isdigit()
        if too_long and int(length or 0) > self.gateway.max_body_bytes:
            self.too_large()
            return
        expect = request.header(b"expect")
        if expect is not None and expect.lower() == b"100-continue" and self.transport:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > self.gateway.max_body_bytes:
            self.too_large()
            return
        self.request.body.append(body)

    def on_message_complete(self) -> None:
        if self.closing:
            return
        self.pending.append(self.request)
        if len(self.pending) > MAX_PIPELINED and self.transport is not None:
            self.transport.pause_reading()
        if not self.busy:
            self.busy = True
            asyncio.get_running_loop().create_task(self.serve())

    # answering
    def too_large(self) -> None:
        limit = self.gateway.max_body_bytes
        self.fail(
            413,
            "payload_too_large",
            f"the request body is over the gateway's limit of {limit} bytes",
            "send less per request",
        )

    def fail(self, status: int, code: str, message: str, fix: str = "") -> None:
        """Answer and close: the rest of the connection cannot be read."""
        if self.transport is not None and not self.closing:
            self.closing = True
            self.transport.write(reply(status, code, message, fix))
            self.transport.close()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closing:
            self.transport.write(data)

    async def serve(self) -> None:
        try:
            while self.pending and not self.closing:
                request = self.pending.popleft()
                if self.transport is not None and len(self.pending) == MAX_PIPELINED // 2:
                    self.transport.resume_reading()
                keep = await self.answer(request)
                if not (keep and request.keep_alive) and self.transport is not None:
                    self.closing = True
                    self.transport.close()
        finally:
            self.busy = False

    async def answer(self, request: Request) -> bool:
        """Answer one request; False when the connection must close after it."""
        url = bytes(request.url)
        if url == b"/healthz":
            return self.own(b'{"status":"ok"}', b"application/json")
        if url == b"/metrics" or url.startswith(b"/metrics/"):
            return self.scrape(request, url)
        route, path, prefix = self.gateway.resolve(url)
        if route is None:
            self.write(
                reply(
                    404,
                    "not_found",
                    f"no deployment answers at {url.decode('latin-1')[:200]}",
                    "call /d/<deployment>/... (or /w/<workspace>/d/<deployment>/...); "
                    "lepton deployment list shows the names",
                )
            )
            return True
        if not route.auth.allows(request.header(b"authorization")):
            route.total.refuse(401)
            self.write(
                reply(
                    401,
                    "unauthorized",
                    f"deployment '{route.name}' needs its inference token",
                    "send 'Authorization: Bearer <token>' (printed by lepton deploy)",
                )
            )
            return True
        started = time.monotonic()
        route.begin(started)
        status, track = 502, None
        try:
            status, track = await self.forward(route, request, path, prefix, started)
        finally:
            now = time.monotonic()
            route.end(now, status, now - started, track)
        return status > 0

    def scrape(self, request: Request, url: bytes) -> bool:
        """``/metrics``: every deployment, for the operator's scraper (its token is
        ``LEPTON_GATEWAY_METRICS_TOKEN``); ``/metrics/d/<name>``: one deployment, for its own
        token. Deployment names and traffic are not told to whoever can reach the port."""
        authorization = request.header(b"authorization") or b""
        if url == b"/metrics":
            token = self.gateway.metrics_token
            given = authorization[7:].strip() if authorization[:7].lower() == b"bearer " else b""
            if not token or not hmac.compare_digest(given, token):
                self.write(
                    reply(
                        401,
                        "unauthorized",
                        "the gateway's /metrics (every deployment) needs the operator's token",
                        "set LEPTON_GATEWAY_METRICS_TOKEN where lepton up runs and send it as "
                        "a bearer; or read one deployment's at /metrics/d/<name> with its token",
                    )
                )
                return True
            routes = None
        else:
            route, _, _ = self.gateway.resolve(url[len(b"/metrics") :])
            if route is None or not route.auth.allows(authorization):
                self.write(
                    reply(
                        404 if route is None else 401,
                        "not_found" if route is None else "unauthorized",
                        f"no deployment's metrics at {url.decode('latin-1')[:200]}"
                        if route is None
                        else f"deployment '{route.name}' needs its inference token",
                        "/metrics/d/<deployment> with its token",
                    )
                )
                return True
            routes = [route]
        body = self.gateway.metrics(routes) if self.gateway.metrics else b""
        return self.own(body, b"text/plain; version=0.0.4")

    def own(self, body: bytes, kind: bytes) -> bool:
        self.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: "
            + kind
            + b"\r\ncontent-length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        return True

    async def forward(
        self, route: Route, request: Request, path: bytes, prefix: bytes, started: float
    ) -> tuple[int, str | None]:
        """Send ``request`` to a replica and relay its answer; (status, track). A status of 0
        means the client connection must close (the answer was cut)."""
        body = b"".join(request.body)
        head = [request.method, b" ", path, b" HTTP/1.1\r\n"]
        for name, value in request.headers:
            if name not in HOP_BY_HOP:
                head += [name, b": ", value, b"\r\n"]
        forwarded = request.header(b"x-forwarded-for")
        client = (forwarded + b", " + self.peer) if forwarded else self.peer
        head += [b"x-forwarded-for: ", client, b"\r\nx-forwarded-prefix: ", prefix, b"\r\n"]
        head += [b"content-length: ", str(len(body)).encode(), b"\r\n\r\n", body]
        data = b"".join(head)
        retry_reset = request.method in IDEMPOTENT or route.retry_posts
        attempts = 0
        deadline = started + route.hold_s
        while True:
            now = time.monotonic()
            upstream = route.pick(now)
            if upstream is not None and upstream.down_until > now and attempts:
                # Every replica refused: wait for the table to change (a restarted or new
                # replica) or the ejection to end, rather than spin.
                await self.hold(route, min(deadline, now + EJECT_S), wake=False)
                if time.monotonic() >= deadline:
                    return self.bad_gateway(route, "refused the connection"), None
                upstream = route.pick(time.monotonic())
            if upstream is None:
                if route.error:
                    self.write(
                        reply(
                            503,
                            "unavailable",
                            f"deployment '{route.name}' has no replica to answer: {route.error}",
                            f"see lepton deployment show {route.name}",
                            retry_after=5,
                        )
                    )
                    return 503, None
                if not await self.hold(route, deadline):
                    self.write(
                        reply(
                            503,
                            "cold_start_timeout",
                            f"deployment '{route.name}' had no ready replica within "
                            f"{route.hold_s:g} s",
                            f"try again; lepton deployment logs {route.name} shows why its "
                            "replicas are slow to start",
                            retry_after=5,
                        )
                    )
                    return 503, None
                continue
            conn = await self.connect(upstream, now)
            if conn is None:
                attempts += 1
                route.retries += 1
                continue
            upstream.inflight += 1
            self.upstream_conn = conn
            # A timer rather than asyncio.wait_for: no wrapper per request on the hot path.
            done = conn.send(data, self.write)
            timer = asyncio.get_running_loop().call_later(
                route.timeout_s + ANSWER_SLACK_S, conn.expire
            )
            try:
                await done
            except Reset:
                conn.close()
                attempts += 1
                if retry_reset and attempts < MAX_ATTEMPTS:
                    route.retries += 1
                    continue
                return self.bad_gateway(route, "closed the connection before answering"), None
            except (Truncated, TimeoutError):
                conn.close()
                if not conn.got_bytes:  # nothing reached the client yet: say what happened
                    self.write(
                        reply(
                            504,
                            "gateway_timeout",
                            f"a replica of deployment '{route.name}' did not answer within "
                            f"{route.timeout_s + ANSWER_SLACK_S:g} s",
                            "the deployment's --timeout bounds a request; see lepton "
                            f"deployment logs {route.name}",
                        )
                    )
                    return 504, upstream.track
                return 0, upstream.track  # the client has part of an answer: it must close
            finally:
                timer.cancel()
                upstream.inflight -= 1
                self.upstream_conn = None
                if not self.writable.is_set():
                    await self.writable.wait()
            status = conn.status
            conn.release()
            if conn.keep_alive and not conn.closed and len(upstream.idle) < POOL:
                upstream.idle.append(conn)
            else:
                conn.close()
            return status, upstream.track

    async def hold(self, route: Route, deadline: float, *, wake: bool = True) -> bool:
        """Wait for the table to change (with ``wake``, asking for a replica first); False at
        the deadline."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        route.waiting += 1
        if wake:
            route.held += 1
            self.gateway.demand(route)
        try:
            await asyncio.wait_for(route.changed.wait(), remaining)
        except TimeoutError:
            if wake:
                route.hold_timeouts += 1
            return False
        finally:
            route.waiting -= 1
        return True

    async def connect(self, upstream: Upstream, now: float) -> UpstreamConnection | None:
        while upstream.idle:
            idle: UpstreamConnection = upstream.idle.pop()
            if not idle.closed:
                return idle
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(
                    lambda: UpstreamConnection(upstream), upstream.host, upstream.port
                ),
                CONNECT_TIMEOUT_S,
            )
        except (OSError, TimeoutError):
            upstream.eject(now)
            return None
        return conn

    def bad_gateway(self, route: Route, what: str) -> int:
        self.write(
            reply(
                502,
                "bad_gateway",
                f"a replica of deployment '{route.name}' {what}",
                "try again; lepton deployment show shows its replicas",
            )
        )
        return 502
