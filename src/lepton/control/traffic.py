"""Each deployment's request rate, errors and latency, from its replicas' own traffic reports.

A deployment's replicas share one port, so a scrape of ``/metrics`` through it reaches an
arbitrary replica. Instead each replica writes its cumulative counters to its output every few
seconds (``serving/traffic.py``), and the supervisor, which copies that output into the
deployment log, hands those lines here instead. ``TrafficStore`` keeps each replica's last
report, turns consecutive ones into deltas, and sums the deltas of every replica into 10-second
windows, kept for an hour in memory: history starts when the control plane starts.

- A replica's first report counts from zero when it is its process's first (``seq`` 1); a later
  one (the replica ran before this control plane started) is only the baseline, since when its
  counts happened is unknown.
- A sequence number or a counter that went down is a restarted process: that report counts
  from zero.
- A delta lands in the window of the moment it was read: a report covers up to one interval
  (5 s) before it, so a window's counts lag by that much.
- Percentiles are read from the summed latency buckets with linear interpolation within a
  bucket, as Prometheus' ``histogram_quantile`` does.

A report is text that user code can reach: a photon runs in the replica's process and may print
anything, a line that looks like a report included. So a line is at most 64 KiB, every field is
checked, what is kept per window is capped, and a line that is not a well-formed report is left
in the log as output; a forged one can only change its own deployment's charts.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any, TypeVar

import orjson

from lepton.schemas import DeploymentTraffic, TrafficPoint, TrafficTotals
from lepton.serving.traffic import PREFIX

__all__ = ["KEEP_MINUTES", "TrafficStore", "parse_report", "quantile"]

WINDOW_S = 10
KEEP_MINUTES = 60
MAX_LINE = 64 * 1024  # a photon with 50 routes reports ~10 KiB
MAX_ROUTES = 256
MAX_KEYS = 64  # statuses, error codes or latency buckets of one route
MAX_WINDOW_KEYS = 128  # error codes or bucket bounds summed into one window

NOTE = (
    "Summed over the replicas' own reports, which each writes every few seconds when its "
    "counters changed, so the latest window is still filling. Kept in memory for an hour; "
    "history starts when the control plane starts."
)

K = TypeVar("K")


@dataclass
class Counts:
    """One replica's counters, or the change in them: answers by route and status, error
    answers by route and code, latency observations by route and bucket upper bound; ``edges``
    are every bucket's upper bound (+Inf last), the empty ones too."""

    statuses: dict[tuple[str, int], int] = field(default_factory=dict)
    codes: dict[tuple[str, str], int] = field(default_factory=dict)
    buckets: dict[tuple[str, float], int] = field(default_factory=dict)
    edges: tuple[float, ...] = ()

    def minus(self, before: Counts) -> Counts | None:
        """What changed since ``before``; None when a counter went down (a new process)."""
        statuses = _minus(self.statuses, before.statuses)
        codes = _minus(self.codes, before.codes)
        buckets = _minus(self.buckets, before.buckets)
        if statuses is None or codes is None or buckets is None:
            return None
        return Counts(statuses, codes, buckets, self.edges)


def _minus(now: dict[K, int], then: dict[K, int]) -> dict[K, int] | None:
    if any(now.get(key, 0) < count for key, count in then.items()):
        return None
    return {key: count - then.get(key, 0) for key, count in now.items() if count != then.get(key)}


# --- parsing --------------------------------------------------------------------------------


def parse_report(line: bytes) -> tuple[int, Counts] | None:
    """A report line's sequence number and counters; None unless it is a well-formed report."""
    if len(line) > MAX_LINE or not line.startswith(PREFIX):
        return None
    try:
        return _report(orjson.loads(line[len(PREFIX) :]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def _report(data: Any) -> tuple[int, Counts]:
    seq = _count(data["seq"])
    bounds = [_number(b) for b in _sized(data["le"], list, MAX_KEYS)]
    if seq < 1 or any(a >= b for a, b in pairwise(bounds)):
        raise ValueError("sequence from 1, bucket bounds increasing")
    edges = (*bounds, math.inf)
    counts = Counts(edges=edges)
    for route, entry in _sized(data["routes"], dict, MAX_ROUTES).items():
        if not isinstance(entry, dict) or len(route) > 200:
            raise ValueError("a route is a name and an object")
        for status, n in _sized(entry.get("status", {}), dict, MAX_KEYS).items():
            if not (status.isdigit() and 100 <= int(status) <= 599):
                raise ValueError("a status is an HTTP status")
            counts.statuses[(route, int(status))] = _count(n)
        for code, n in _sized(entry.get("errors", {}), dict, MAX_KEYS).items():
            if len(code) > 64:
                raise ValueError("an error code is short")
            counts.codes[(route, code)] = _count(n)
        observed = _sized(entry.get("counts", [0] * len(edges)), list, MAX_KEYS + 1)
        if len(observed) != len(edges):
            raise ValueError("a count per bucket")
        for bound, n in zip(edges, observed, strict=True):
            if _count(n):
                counts.buckets[(route, bound)] = n
        _number(entry.get("sum", 0.0))
        _count(entry.get("depth", 0))
    return seq, counts


def _sized(value: Any, kind: type[list[Any]] | type[dict[str, Any]], limit: int) -> Any:
    if not isinstance(value, kind) or len(value) > limit:
        raise ValueError(f"a {kind.__name__} of at most {limit}")
    return value


def _count(value: Any) -> int:
    if type(value) is not int or value < 0:
        raise ValueError("a count is a whole number from 0")
    return value


def _number(value: Any) -> float:
    if type(value) not in (int, float) or not math.isfinite(value) or value < 0:
        raise ValueError("a finite number from 0")
    return float(value)


# --- percentiles ----------------------------------------------------------------------------


def quantile(q: float, buckets: dict[float, int]) -> float | None:
    """The ``q`` (0 < q < 1) quantile of observations counted per bucket upper bound, as
    Prometheus' ``histogram_quantile``: linear within the first bucket whose cumulative count
    reaches the rank, from the bound below it (0 for the first); in the +Inf bucket, the highest
    finite bound. ``buckets`` holds every bucket, the empty ones too: they are the bounds."""
    total = sum(buckets.values())
    if not total:
        return None
    rank = q * total
    below, lower = 0, 0.0
    for bound in sorted(buckets):
        count = buckets[bound]
        if below + count >= rank:
            if math.isinf(bound):
                return lower
            return lower + (bound - lower) * (rank - below) / count
        below += count
        lower = bound
    return lower


# --- the store ------------------------------------------------------------------------------


@dataclass
class _Window:
    """Every replica's deltas read in one window, summed over the routes."""

    requests: int = 0
    errors: int = 0
    rejected: int = 0
    codes: dict[str, int] = field(default_factory=dict)
    buckets: dict[float, int] = field(default_factory=dict)

    def add(self, delta: Counts) -> None:
        for (_, status), n in delta.statuses.items():
            self._answers(status, n)
        for (_, code), n in delta.codes.items():
            _bump(self.codes, code, n)
        if delta.buckets:
            for edge in delta.edges:  # the empty buckets bound the others
                _bump(self.buckets, edge, 0)
        for (_, bound), n in delta.buckets.items():
            _bump(self.buckets, bound, n)

    def absorb(self, other: _Window) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.rejected += other.rejected
        for code, n in other.codes.items():
            _bump(self.codes, code, n)
        for bound, n in other.buckets.items():
            _bump(self.buckets, bound, n)

    def _answers(self, status: int, n: int) -> None:
        self.requests += n
        if status >= 500:
            self.errors += n
        elif status >= 400:
            self.rejected += n

    def point(self, start: datetime, seconds: float) -> dict[str, Any]:
        ms = {f"p{round(q * 100)}_ms": _ms(quantile(q, self.buckets)) for q in (0.5, 0.95, 0.99)}
        return {
            "start": start,
            "requests": self.requests,
            "requests_per_s": round(self.requests / seconds, 3) if seconds > 0 else 0.0,
            "errors": self.errors,
            "rejected": self.rejected,
            **ms,
        }


def _bump(counts: dict[K, int], key: K, n: int) -> None:
    if key in counts or len(counts) < MAX_WINDOW_KEYS:  # a forged report cannot grow it
        counts[key] = counts.get(key, 0) + n


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


@dataclass
class _Replica:
    seq: int
    counts: Counts
    at: datetime


@dataclass
class _Deployment:
    replicas: dict[str, _Replica] = field(default_factory=dict)
    windows: dict[int, _Window] = field(default_factory=dict)
    answered_at: datetime | None = None
    """When a report last counted an answer."""


class TrafficStore:
    """Per deployment: each replica's last report and an hour of 10-second windows.

    Thread-safe: the supervisor records from its thread, the API and console read from theirs.

    Args:
        started: when history starts (the control plane's start); now by default.
    """

    def __init__(
        self,
        *,
        window_s: int = WINDOW_S,
        keep_minutes: int = KEEP_MINUTES,
        started: datetime | None = None,
    ) -> None:
        self.window_s = window_s
        self.keep_minutes = keep_minutes
        self.started = started or datetime.now(UTC)
        self._lock = threading.Lock()
        self._deployments: dict[str, _Deployment] = {}

    def take(self, deployment_id: str, replica_id: str, line: bytes, at: datetime) -> bytes | None:
        """Record the report ``line`` holds, if it holds one, read at ``at``; what is left of
        the line for the log: all of it when it is not a report, None when it was only one, or
        the replica's own text that a report landed after (a print cut by its buffer)."""
        where = line.find(PREFIX)
        if where < 0:
            return line
        parsed = parse_report(line[where:])
        if parsed is None:
            return line
        self.record(deployment_id, replica_id, *parsed, at=at)
        return line[:where] or None

    def record(
        self, deployment_id: str, replica_id: str, seq: int, counts: Counts, *, at: datetime
    ) -> None:
        """Take one replica's cumulative ``counts`` (its report number ``seq``)."""
        with self._lock:
            deployment = self._deployments.setdefault(deployment_id, _Deployment())
            last = deployment.replicas.get(replica_id)
            delta: Counts | None
            if last is None:  # a process's first report counts; a later one is a baseline
                delta = counts if seq == 1 else Counts()
            else:
                delta = counts.minus(last.counts) if seq > last.seq else None
            deployment.replicas[replica_id] = _Replica(seq, counts, at)
            added = counts if delta is None else delta
            self._window(deployment, at).add(added)
            if any(added.statuses.values()):
                deployment.answered_at = at

    def answered_at(self, deployment_id: str) -> datetime | None:
        """When a replica of the deployment last reported an answer (through any address)."""
        with self._lock:
            deployment = self._deployments.get(deployment_id)
            return deployment.answered_at if deployment is not None else None

    def forget_replica(self, deployment_id: str, replica_id: str) -> None:
        """A replica is gone for good: its traffic stays in the windows."""
        with self._lock:
            deployment = self._deployments.get(deployment_id)
            if deployment is not None:
                deployment.replicas.pop(replica_id, None)

    def forget(self, deployment_id: str) -> None:
        """The deployment is deleted."""
        with self._lock:
            self._deployments.pop(deployment_id, None)

    def traffic(
        self, deployment_id: str, name: str, *, minutes: int, now: datetime
    ) -> DeploymentTraffic:
        """The windows of the last ``minutes`` (the current one included) and their totals."""
        last = self._index(now)
        first = max(last - minutes * 60 // self.window_s + 1, self._index(self.started))
        since = self._start(first)
        total = _Window()
        points = []
        with self._lock:
            deployment = self._deployments.get(deployment_id) or _Deployment()
            for index in range(first, last + 1):
                window = deployment.windows.get(index) or _Window()
                total.absorb(window)
                points.append(TrafficPoint(**window.point(self._start(index), self.window_s)))
            reporting = sum(r.at >= since for r in deployment.replicas.values())
        seconds = max(0.0, (now - since).total_seconds())
        totals = TrafficTotals(
            **total.point(since, seconds), seconds=round(seconds, 3), codes=dict(total.codes)
        )
        return DeploymentTraffic(
            deployment=name,
            window_s=self.window_s,
            points=points,
            totals=totals,
            replicas_reporting=reporting,
            note=NOTE,
        )

    def _window(self, deployment: _Deployment, at: datetime) -> _Window:
        index = self._index(at)
        window = deployment.windows.get(index)
        if window is None:
            window = deployment.windows[index] = _Window()
            oldest = index - self.keep_minutes * 60 // self.window_s
            for old in [i for i in deployment.windows if i <= oldest]:
                del deployment.windows[old]
        return window

    def _index(self, at: datetime) -> int:
        return int(at.timestamp() // self.window_s)

    def _start(self, index: int) -> datetime:
        return datetime.fromtimestamp(index * self.window_s, UTC)
