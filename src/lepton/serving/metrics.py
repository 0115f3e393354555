"""Prometheus metrics of one replica, on a registry of its own.

Hot-path cost is a few dictionary lookups and two lock-protected additions per request: the
labelled children are cached, queue depth is read only when scraped (a callback gauge), and
batch sizes are recorded once per batch on the worker thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# 100 µs to 30 s: a small model answers in well under a millisecond, a big one in seconds.
_LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Metrics:
    """Requests, latency, batch sizes, queue depth and errors, labelled by route."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._requests = Counter(
            "lepton_requests",
            "Requests answered, by route and status.",
            ["route", "status"],
            registry=self.registry,
        )
        self._errors = Counter(
            "lepton_errors",
            "Requests answered with an error, by route and error code.",
            ["route", "code"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "lepton_request_duration_seconds",
            "Time from the request's body being read to its answer being sent.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._batch = Histogram(
            "lepton_batch_size",
            "Requests per handler call.",
            ["route"],
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self._depth = Gauge(
            "lepton_queue_depth",
            "Requests waiting or running, by route.",
            ["route"],
            registry=self.registry,
        )
        self._children: dict[tuple[str, int], Any] = {}
        self._latencies: dict[str, Any] = {}

    def observe(self, route: str, status: int, seconds: float) -> None:
        """One answered request."""
        key = (route, status)
        counter = self._children.get(key)
        if counter is None:
            counter = self._children[key] = self._requests.labels(route, str(status))
        counter.inc()
        latency = self._latencies.get(route)
        if latency is None:
            latency = self._latencies[route] = self._latency.labels(route)
        latency.observe(seconds)

    def error(self, route: str, code: str) -> None:
        """One error answer (rare, so no cache)."""
        self._errors.labels(route, code).inc()

    def batch_recorder(self, route: str) -> Callable[[int], None]:
        """The per-batch callback for ``route``'s batcher."""
        child = self._batch.labels(route)

        def record(size: int) -> None:
            child.observe(size)

        return record

    def watch_depth(self, route: str, depth: Callable[[], int]) -> None:
        """Report ``depth()`` as the route's queue depth at scrape time."""
        self._depth.labels(route).set_function(lambda: float(depth()))

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
