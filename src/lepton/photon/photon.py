"""The :class:`Photon` base class and its ``@Photon.handler`` decorator.

The API follows leptonai's Photon, so a photon written for it ports by changing its import
line: class attributes ``requirement_dependency`` / ``system_dependency`` /
``deployment_template``, setup in ``init()``, and methods exposed with
``@Photon.handler(path=None, method="POST", max_batch_size=None, max_wait_time=None, ...)``.

Where leptonai was flawed, this one differs on purpose (see docs/serving.md):

* ``handler_max_concurrency`` limits *sync* handlers only (they run on worker threads);
  ``async`` handlers run on the event loop, unthrottled. leptonai's semaphore throttled both.
* ``timeout`` counts from the moment a request is taken for execution; the wait before that has
  its own budget (``queue_timeout``). leptonai counted the queue against the timeout.
* batching is opportunistic: ``max_wait_time`` is optional and defaults to 0, so a lone request
  never waits for a window; leptonai required a window on every batched handler.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar, overload

__all__ = ["HandlerSpec", "Photon", "handler"]

F = TypeVar("F", bound=Callable[..., Any])

_RESERVED_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json"})
_LEPTONAI_IGNORED = frozenset({"cancel_on_disconnect", "example", "examples"})


@dataclass(frozen=True)
class HandlerSpec:
    """How one method is served. Built by :func:`handler`; read by the replica runtime."""

    name: str
    path: str
    method: str
    max_batch_size: int | None = None
    max_wait_time: float | None = None
    timeout: float | None = None
    queue_timeout: float | None = None
    include_in_schema: bool = True
    examples: tuple[Any, ...] = ()

    @property
    def batched(self) -> bool:
        return self.max_batch_size is not None


def _spec_for(
    func: Callable[..., Any],
    path: str | None,
    method: str,
    options: dict[str, Any],
) -> HandlerSpec:
    name = func.__name__
    where = f"handler {name}"
    known = {"include_in_schema", "use_raw_args", "max_batch_size", "max_wait_time", "timeout"}
    unknown = sorted(set(options) - _LEPTONAI_IGNORED - known - {"queue_timeout"})
    if options.get("mount"):
        raise TypeError(
            f"{where}: mount=True is not supported; serve the other app as its own deployment"
        )
    unknown = [k for k in unknown if k != "mount"]
    if unknown:
        raise TypeError(
            f"{where}: unknown option {unknown[0]!r}; options are path, method, max_batch_size, "
            "max_wait_time, timeout, queue_timeout, include_in_schema, example(s)"
        )
    if options.get("use_raw_args"):
        raise TypeError(f"{where}: use_raw_args is not supported; annotate the arguments instead")
    method = method.upper()
    if method not in ("GET", "POST"):
        raise TypeError(f"{where}: method must be 'GET' or 'POST', got {method!r}")
    route = "/" + (name if path is None else path).strip("/")
    if route in _RESERVED_PATHS or route.startswith("/v2/"):
        raise TypeError(f"{where}: path {route} is reserved by the runtime; pick another")
    batch = options.get("max_batch_size")
    wait = options.get("max_wait_time")
    if batch is not None:
        if not isinstance(batch, int) or batch < 1:
            raise TypeError(f"{where}: max_batch_size must be a whole number >= 1, got {batch!r}")
        if inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func):
            raise TypeError(
                f"{where}: a batched handler must be a plain 'def' (it runs on the worker "
                "thread); drop 'async' or drop max_batch_size"
            )
        if method != "POST":
            raise TypeError(f"{where}: a batched handler must use method='POST'")
    if wait is not None and (batch is None or wait < 0):
        raise TypeError(f"{where}: max_wait_time needs max_batch_size and must be >= 0")
    for key in ("timeout", "queue_timeout"):
        value = options.get(key)
        if value is not None and value <= 0:
            raise TypeError(f"{where}: {key} must be a positive number of seconds")
    examples = tuple(options.get("examples") or ())
    if options.get("example") is not None:
        examples = (options["example"], *examples)
    return HandlerSpec(
        name=name,
        path=route,
        method=method,
        max_batch_size=batch,
        max_wait_time=float(wait) if wait is not None else None,
        timeout=options.get("timeout"),
        queue_timeout=options.get("queue_timeout"),
        include_in_schema=bool(options.get("include_in_schema", True)),
        examples=examples,
    )


@overload
def handler(path: F) -> F: ...


@overload
def handler(path: str | None = None, method: str = "POST", **options: Any) -> Callable[[F], F]: ...


def handler(path: Any = None, method: str = "POST", **options: Any) -> Any:
    """Expose a method of a :class:`Photon` over HTTP.

    Usable bare (``@Photon.handler``) or with options (``@Photon.handler("run", method="GET")``).

    Args:
        path: the URL path; defaults to the method's name.
        method: ``"POST"`` (a JSON body or multipart form) or ``"GET"`` (query parameters).
        max_batch_size: batch up to this many requests: each argument arrives as a list and the
            method returns a list as long (as in leptonai).
        max_wait_time: seconds to wait for a batch to fill; 0 (the default) never waits.
        timeout: seconds a call may run once started (default: the class's ``handler_timeout``).
        queue_timeout: seconds a request may wait before it starts (default: ``timeout``).
        include_in_schema: list the handler in ``/openapi.json``.
    """
    if callable(path):
        func = path
        func._photon_handler = _spec_for(func, None, "POST", {})
        return func

    def decorate(func: F) -> F:
        func._photon_handler = _spec_for(func, path, method, options)  # type: ignore[attr-defined]
        return func

    return decorate


class Photon:
    """A service: subclass it, load things in :meth:`init`, expose methods with
    ``@Photon.handler``, and serve it with :meth:`launch` or ``lepton photon run``."""

    requirement_dependency: ClassVar[list[str]] = []
    """pip requirements, recorded in the package manifest (a local run installs nothing)."""
    system_dependency: ClassVar[list[str]] = []
    """System packages, recorded in the manifest."""
    deployment_template: ClassVar[dict[str, Any] | None] = None
    """leptonai's resource/env template; kept in the manifest for the control plane."""
    handler_max_concurrency: ClassVar[int] = 1
    """Worker threads per sync handler. ``async`` handlers are never throttled."""
    handler_timeout: ClassVar[float] = 600.0
    """Seconds a handler may run once started."""
    handler_queue_timeout: ClassVar[float | None] = None
    """Seconds a request may wait before starting; None means ``handler_timeout``."""

    handler = staticmethod(handler)

    def __init__(self, name: str | None = None) -> None:
        self.name = name or type(self).__name__.lower()

    def init(self) -> None:
        """Load models and other state; runs once before the first request is accepted."""

    @classmethod
    def handler_specs(cls) -> list[tuple[str, HandlerSpec]]:
        """``(attribute, spec)`` of every handler, ancestors' included (overrides win)."""
        found: dict[str, HandlerSpec] = {}
        for klass in reversed(cls.__mro__):
            for attr, value in vars(klass).items():
                spec = getattr(value, "_photon_handler", None)
                if isinstance(spec, HandlerSpec):
                    found[attr] = spec
                elif attr in found:
                    del found[attr]  # overridden by a plain method
        routes: dict[tuple[str, str], str] = {}
        for attr, spec in found.items():
            key = (spec.method, spec.path)
            if key in routes:
                raise TypeError(
                    f"{cls.__name__}: handlers {routes[key]} and {attr} both serve "
                    f"{spec.method} {spec.path}"
                )
            routes[key] = attr
        return sorted(found.items(), key=lambda item: item[1].path)

    def launch(
        self,
        host: str = "127.0.0.1",
        port: int = 8080,
        *,
        token: str | None = None,
        public: bool = False,
        **options: Any,
    ) -> None:
        """Serve this photon until SIGTERM or Ctrl-C.

        Args:
            host: address to listen on (loopback by default).
            port: port to listen on.
            token: the bearer token callers must send; a random one is made and printed when
                neither ``token`` nor ``public`` is given.
            public: serve without a token.
            options: ``max_queue``, ``max_body_bytes``, ``timeout_s``, ``max_batch_size``,
                ``max_wait_ms``, ``reuse_port`` (as ``python -m lepton.serving`` takes them).
        """
        from lepton.serving.runner import launch_photon

        launch_photon(self, host=host, port=port, token=token, public=public, **options)
