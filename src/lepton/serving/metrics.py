"""Prometheus metrics of one replica, kept as plain counters and rendered when scraped.

prometheus_client's own Counter and Histogram take a lock and walk the buckets in Python on
every observation: about 8 µs a request here, a tenth of what the whole HTTP exchange costs.
So requests are counted in dictionaries and lists touched only by the event loop, batch sizes
under one lock per batch, and a collector turns them into the exposition format at scrape time.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Callable, Collection, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# 100 µs to 30 s: a small model answers in well under a millisecond, a big one in seconds.
LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class _Histogram:
    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def buckets(self) -> list[tuple[str, float]]:
        out = []
        running = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            out.append(("+Inf" if bound == float("inf") else repr(float(bound)), float(running)))
        return out


class Metrics:
    """Requests, latency, batch sizes, queue depth and errors, labelled by route."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._requests: dict[tuple[str, int], int] = {}
        self._errors: dict[tuple[str, str], int] = {}
        self._latency: dict[str, _Histogram] = {}
        self._batches: dict[str, _Histogram] = {}
        self._depths: dict[str, Callable[[], int]] = {}
        self._lock = threading.Lock()
        self.registry.register(self)

    def observe(self, route: str, status: int, seconds: float) -> None:
        """One answered request (event loop only)."""
        key = (route, status)
        self._requests[key] = self._requests.get(key, 0) + 1
        histogram = self._latency.get(route)
        if histogram is None:
            histogram = self._latency[route] = _Histogram(LATENCY_BUCKETS)
        histogram.observe(seconds)

    def error(self, route: str, code: str) -> None:
        """One error answer (event loop only)."""
        key = (route, code)
        self._errors[key] = self._errors.get(key, 0) + 1

    def refused(self, route: str, status: int, code: str) -> None:
        """One request answered before its handler ran (401, 413): counted, with its error,
        but not timed, so a flood of them does not drag the latency down (event loop only)."""
        key = (route, status)
        self._requests[key] = self._requests.get(key, 0) + 1
        self.error(route, code)

    def batch_recorder(self, route: str) -> Callable[[int], None]:
        """The per-batch callback for ``route``'s batcher (worker threads)."""
        histogram = self._batches.setdefault(route, _Histogram(BATCH_BUCKETS))
        lock = self._lock

        def record(size: int) -> None:
            with lock:
                histogram.observe(size)

        return record

    def watch_depth(self, route: str, depth: Callable[[], int]) -> None:
        """Report ``depth()`` as the route's queue depth at scrape time."""
        self._depths[route] = depth

    def traffic(self, skip: Collection[str] = ()) -> dict[str, dict[str, Any]]:
        """The cumulative counters of each route but ``skip``, as JSON values: what a traffic
        report carries (``serving/traffic.py``; event loop only)."""
        routes: dict[str, dict[str, Any]] = {}

        def entry(route: str) -> dict[str, Any]:
            return routes.setdefault(route, {"status": {}, "errors": {}})

        for (route, status), count in self._requests.items():
            if route not in skip:
                entry(route)["status"][str(status)] = count
        for (route, code), count in self._errors.items():
            if route not in skip:
                entry(route)["errors"][code] = count
        for route, histogram in self._latency.items():
            if route not in skip:
                entry(route).update(counts=list(histogram.counts), sum=histogram.total)
        for route, read in self._depths.items():
            depth = read()
            if route not in skip and (depth or route in routes):
                entry(route)["depth"] = depth
        return routes

    def collect(self) -> Iterator[Any]:
        """The metric families (called by prometheus_client when rendering)."""
        requests = CounterMetricFamily(
            "lepton_requests", "Requests answered, by route and status.", labels=["route", "status"]
        )
        for (route, status), count in sorted(self._requests.items()):
            requests.add_metric([route, str(status)], count)
        yield requests
        errors = CounterMetricFamily(
            "lepton_errors", "Error answers, by route and error code.", labels=["route", "code"]
        )
        for (route, code), count in sorted(self._errors.items()):
            errors.add_metric([route, code], count)
        yield errors
        latency = HistogramMetricFamily(
            "lepton_request_duration_seconds",
            "Time from the request's body being read to its answer being sent.",
            labels=["route"],
        )
        for route, histogram in sorted(self._latency.items()):
            latency.add_metric([route], histogram.buckets(), histogram.total)
        yield latency
        batches = HistogramMetricFamily(
            "lepton_batch_size", "Requests per handler call.", labels=["route"]
        )
        with self._lock:
            for route, histogram in sorted(self._batches.items()):
                batches.add_metric([route], histogram.buckets(), histogram.total)
        yield batches
        depth = GaugeMetricFamily(
            "lepton_queue_depth", "Requests waiting or running, by route.", labels=["route"]
        )
        for route, read in sorted(self._depths.items()):
            depth.add_metric([route], float(read()))
        yield depth

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
