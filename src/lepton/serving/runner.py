"""Building a replica's app and serving it: the socket, uvicorn, the ready line, the drain.

Order matters for replicas that share a port: the model (or photon) is loaded and ``init()``
has run *before* the socket is bound, so with ``SO_REUSEPORT`` the kernel never hands a
connection to a replica that is still loading. Then uvicorn (uvloop, httptools, no access log)
serves on that socket, and ``ready http://HOST:PORT`` is printed once it accepts; with a traffic
interval, ``lepton-traffic`` lines of the counters follow (``serving/traffic.py``).

On SIGTERM or SIGINT the replica drains: for ``DRAIN_NOTICE_S`` it keeps serving, with
``/readyz`` at 503 and ``Connection: close`` on every answer so keep-alive clients reconnect
(to the other replicas); then the listening socket closes, requests in flight finish, the last
traffic report is written, and the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import secrets
import signal
import socket
import sys
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from lepton.limits import DEFAULT_MAX_ROWS
from lepton.serving.app import ReplicaApp
from lepton.serving.auth import TokenCheck, token_hash
from lepton.serving.metrics import Metrics
from lepton.serving.traffic import TrafficReporter

if TYPE_CHECKING:
    from lepton.photon.photon import Photon
    from lepton.serving.model import Explainer, ServedModel

__all__ = [
    "ReplicaConfig",
    "bind",
    "launch_photon",
    "model_app",
    "photon_app",
    "serve",
    "served_model_app",
]


@dataclass(frozen=True)
class ReplicaConfig:
    """The knobs of ``python -m lepton.serving`` (``None``: the photon's own setting)."""

    host: str = "127.0.0.1"
    port: int = 8080
    reuse_port: bool = False
    name: str | None = None
    max_batch_size: int | None = None
    max_wait_ms: float | None = None
    timeout_s: float | None = None
    max_queue: int = 1024
    max_body_bytes: int = 64 * 1024**2
    max_rows: int = DEFAULT_MAX_ROWS
    """Most rows one request to a model may carry (413 above)."""
    token_hashes: frozenset[str] | None = None
    """Accepted token hashes; ``None`` serves without auth (``--public``)."""
    drain_s: float = 30.0
    traffic_interval_s: float = 0.0
    """Seconds between traffic reports on stdout, which the supervisor reads
    (``serving/traffic.py``); 0: none, as for a photon served in a terminal."""


# 64: past this a batch of a small tabular model no longer gets cheaper per row on 2 cores
# (158 µs at batch 1 vs 126 µs at 512 for a 32-feature logistic regression: the call overhead
# is what batching amortises, and 64 rows already spread it to ~2.5 µs a row).
DEFAULT_MODEL_BATCH = 64


def model_app(directory: Path, config: ReplicaConfig) -> ReplicaApp:
    """The built-in photon for the model saved in ``directory``."""
    from lepton.serving.model import find_explainer, load_served_model

    model = load_served_model(directory)
    return served_model_app(
        model,
        config,
        name=config.name or directory.resolve().name,
        explainer=lambda served: find_explainer(served, directory),
    )


def served_model_app(
    model: ServedModel,
    config: ReplicaConfig,
    *,
    name: str,
    explainer: Callable[[ServedModel], Explainer | None] | None = None,
) -> ReplicaApp:
    """The built-in photon for a loaded model (``/predict``, ``/explain``, ``/v2``)."""
    from lepton.serving.model import ModelService
    from lepton.serving.v2 import v2_routes

    metrics = Metrics()
    service = ModelService(model, name=name, explainer=explainer, max_rows=config.max_rows)
    service.warm_up()
    timeout = config.timeout_s or 60.0
    batcher = service.batcher(
        metrics=metrics,
        max_batch_size=config.max_batch_size or DEFAULT_MODEL_BATCH,
        max_wait_time=(config.max_wait_ms or 0.0) / 1000,
        timeout=timeout,
        max_queue=config.max_queue,
    )
    holder: list[ReplicaApp] = []
    v2, fallback = v2_routes(service, batcher, lambda: bool(holder) and holder[0].ready)
    app = ReplicaApp(
        [*service.routes(batcher), *v2],
        auth=TokenCheck(config.token_hashes),
        max_body_bytes=config.max_body_bytes,
        metrics=metrics,
        fallback=fallback,
        openapi=service.openapi(),
    )
    holder.append(app)
    return app


def photon_app(photon: Photon, config: ReplicaConfig) -> ReplicaApp:
    """A user's photon, after its ``init()``."""
    from lepton.serving.photon_app import Limits, photon_routes

    photon.init()
    metrics = Metrics()
    limits = Limits(
        max_batch_size=config.max_batch_size,
        max_wait_time=config.max_wait_ms / 1000 if config.max_wait_ms is not None else None,
        timeout=config.timeout_s,
        max_queue=config.max_queue,
    )
    routes, document = photon_routes(photon, limits=limits, metrics=metrics)
    return ReplicaApp(
        routes,
        auth=TokenCheck(config.token_hashes),
        max_body_bytes=config.max_body_bytes,
        metrics=metrics,
        openapi=document,
    )


def bind(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A listening TCP socket; ``reuse_port`` lets several replicas share ``port``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        from lepton.errors import ConfigError

        raise ConfigError(
            f"cannot listen on {host}:{port} ({exc.strerror})",
            fix="pick a free port, or pass --reuse-port to share it with other replicas",
        ) from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock


DRAIN_NOTICE_S = 1.0


def serve(
    app: ReplicaApp,
    sock: socket.socket,
    *,
    own: socket.socket | None = None,
    drain_s: float = 30.0,
    traffic_interval_s: float = 0.0,
) -> None:
    """Serve ``app`` on ``sock`` (and ``own``, this replica's own port, named on the ready line
    as ``ready http://HOST:PORT replica http://HOST:OWN``) until SIGTERM/SIGINT, then drain and
    return; with a ``traffic_interval_s``, report the counters on stdout that often and once
    more at the end."""
    import uvicorn

    host, port = sock.getsockname()[:2]
    own_host, own_port = own.getsockname()[:2] if own is not None else (host, None)
    reporter = TrafficReporter(app.metrics, skip=app.probes) if traffic_interval_s > 0 else None
    # The model, its libraries and their caches live as long as the replica: move them out of
    # the collector's reach, so a full collection no longer walks them. Without this, p99 at
    # 16-64 concurrent callers was 130-520 ms of 56-153 ms collector pauses (benchmarks/serving.py),
    # against 8 ms with it, at the same throughput.
    gc.collect()
    gc.freeze()

    class Server(uvicorn.Server):
        reporting: asyncio.Task[None] | None = None

        @contextlib.contextmanager
        def capture_signals(self) -> Generator[None, None, None]:
            # uvicorn re-raises the signal after shutting down, which would end the process
            # with -SIGTERM; a drained replica exits 0 instead.
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            previous = {
                s: signal.signal(s, self.handle_exit) for s in (signal.SIGINT, signal.SIGTERM)
            }
            try:
                yield
            finally:
                for s, handler in previous.items():
                    signal.signal(s, handler)

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if app.draining:  # a second signal: stop now
                super().handle_exit(sig, frame)
                return
            # First announce the drain: /readyz answers 503 and every answer says
            # "Connection: close", so keep-alive clients move to the other replicas; only then
            # does the socket close. 1 s: a client under load sends many requests in it.
            app.draining = True
            timer = threading.Timer(DRAIN_NOTICE_S, super().handle_exit, (sig, frame))
            timer.daemon = True
            timer.start()

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                shown = f"[{host}]" if ":" in host else host
                mine = f"[{own_host}]" if ":" in own_host else own_host
                alone = f" replica http://{mine}:{own_port}" if own_port is not None else ""
                print(f"ready http://{shown}:{port}{alone}", flush=True)
                if reporter is not None:  # held here: a task nobody refers to may be collected
                    self.reporting = asyncio.create_task(reporter.run(traffic_interval_s))

    config = uvicorn.Config(
        app,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
        server_header=False,
        # X-Forwarded-* rewriting wraps every request in one more ASGI layer (about 3 us at
        # 8k requests/s); a replica is reached directly, and nothing here reads the client IP.
        proxy_headers=False,
        ws="none",
        timeout_graceful_shutdown=int(drain_s),
        backlog=2048,
    )
    Server(config).run(sockets=[sock] if own is None else [sock, own])
    if reporter is not None:  # the loop has ended: what the drain answered is counted
        reporter.report()


def launch_photon(
    photon: Photon,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    token: str | None = None,
    public: bool = False,
    **options: Any,
) -> None:
    """Serve ``photon`` in this process (``Photon.launch`` and ``lepton photon run``)."""
    hashes: frozenset[str] | None = None
    if not public:
        if token is None:
            token = secrets.token_urlsafe(24)
            print(f"token: {token}  (send it as 'Authorization: Bearer <token>')", flush=True)
        hashes = frozenset({token_hash(token)})
    config = ReplicaConfig(host=host, port=port, token_hashes=hashes, **options)
    app = photon_app(photon, config)
    sock = bind(host, port, reuse_port=config.reuse_port)
    serve(app, sock, drain_s=config.drain_s, traffic_interval_s=config.traffic_interval_s)


def fail(message: str, fix: str = "") -> int:
    """Print a load failure to stderr; the exit code for it."""
    print(f"lepton.serving: {message}", file=sys.stderr)
    if fix:
        print(fix, file=sys.stderr)
    return 2
