"""The gateway's routing table: each deployment's ready replicas, how to pick one, and what the
gateway counts for it (requests, latency, in flight, held).

The control plane sends the table (``GET /api/v1/gateway/routes``); :meth:`Table.update` keeps
each replica's pooled connections and counters across updates, so a new table costs nothing on
the data path. Picking is the power of two choices on requests in flight, among replicas not
ejected: a replica that refused a connection sits out ``EJECT_S`` (passive health checking), and
the next table, which no longer lists a replica that ended, removes it for good.
"""

from __future__ import annotations

import asyncio
import random
import time
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from lepton.serving.auth import TokenCheck
from lepton.serving.metrics import LATENCY_BUCKETS

__all__ = ["EJECT_S", "Counters", "Route", "Table", "Upstream"]

EJECT_S = 2.0
"""How long a replica that refused a connection gets no new request (unless it is the only one
left, which is then tried again: a refusal costs a retry, never an answer)."""

POOL = 64
"""Idle keep-alive connections kept per replica."""


class Upstream:
    """One replica: its address, requests in flight, idle connections, and ejection."""

    __slots__ = ("down_until", "host", "idle", "inflight", "port", "track", "url")

    def __init__(self, url: str, track: str) -> None:
        parts = urlsplit(url)
        self.url = url
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.track = track
        self.inflight = 0
        self.down_until = 0.0
        self.idle: list[Any] = []  # UpstreamConnection, newest last

    def eject(self, now: float) -> None:
        self.down_until = now + EJECT_S

    def close(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()


@dataclass
class Counters:
    """What one deployment (or one of its tracks) answered since the gateway started."""

    status: dict[int, int] = field(default_factory=dict)
    buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    latency_sum: float = 0.0

    def add(self, status: int, seconds: float) -> None:
        self.status[status] = self.status.get(status, 0) + 1
        self.latency_sum += seconds
        self.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1  # first bound >= seconds

    def refuse(self, status: int) -> None:
        """An answer the gateway gave without a replica (401): counted, not timed."""
        self.status[status] = self.status.get(status, 0) + 1

    @property
    def requests(self) -> int:
        return sum(self.status.values())

    @property
    def errors(self) -> int:
        return sum(n for s, n in self.status.items() if s >= 500)

    def snapshot(self) -> dict[str, Any]:
        return {
            "status": {str(s): n for s, n in self.status.items()},
            "counts": list(self.buckets),
            "sum": self.latency_sum,
        }


class Route:
    """One deployment as the gateway serves it."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.id = ""
        self.name = ""
        self.auth = TokenCheck(())
        self.retry_posts = False
        self.hold_s = 60.0
        self.timeout_s = 60.0
        self.error: str | None = None
        self.canary_share = 0.0
        self.upstreams: list[Upstream] = []
        self.changed = asyncio.Event()
        # counters
        self.inflight = 0
        self.waiting = 0
        self.peak = 0
        self.area = 0.0  # integral of requests in flight over time since the last report
        self.last_t = time.monotonic()
        self.retries = 0
        self.held = 0
        self.hold_timeouts = 0
        self.total = Counters()
        self.tracks: dict[str, Counters] = {}

    def configure(self, entry: Mapping[str, Any], known: dict[str, Upstream]) -> None:
        """Take ``entry`` from the control plane, reusing the replicas of ``known`` it lists
        (taken out of it)."""
        self.id = str(entry["id"])
        self.name = str(entry["name"])
        hashes = entry.get("token_hashes")
        self.auth = TokenCheck(None if hashes is None else [str(h) for h in hashes])
        self.retry_posts = bool(entry.get("retry_posts", False))
        self.hold_s = float(entry.get("hold_timeout_s", 60.0))
        self.timeout_s = float(entry.get("timeout_s", 60.0))
        self.error = entry.get("error")
        self.canary_share = float(entry.get("canary_share", 0.0))
        upstreams = []
        for replica in entry.get("replicas", []):
            url, track = str(replica["url"]), str(replica.get("track", "stable"))
            upstream = known.pop(url, None) or Upstream(url, track)
            upstream.track = track
            upstreams.append(upstream)
        self.upstreams = upstreams
        # Wake the requests held for a replica: they look again.
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()

    def pick(self, now: float) -> Upstream | None:
        """A replica for the next request: the canary's share goes to canary replicas; within a
        track, the less busy of two at random, among those not ejected (or, when all are, the
        one ejected longest ago: it is tried again rather than the request refused)."""
        upstreams = self.upstreams
        if not upstreams:
            return None
        if len(upstreams) == 2 and not self.canary_share:  # the common case, without lists
            a, b = upstreams
            if a.down_until <= now and b.down_until <= now:
                if a.inflight != b.inflight:
                    return a if a.inflight < b.inflight else b
                return a if random.random() < 0.5 else b
        if self.canary_share > 0:
            canary = random.random() * 100 < self.canary_share
            track = [u for u in upstreams if (u.track == "canary") == canary]
            if track:
                upstreams = track
        live = [u for u in upstreams if u.down_until <= now]
        if not live:
            return min(upstreams, key=lambda u: u.down_until)
        if len(live) == 1:
            return live[0]
        a, b = random.sample(live, 2)
        return a if a.inflight <= b.inflight else b

    def begin(self, now: float) -> None:
        self._integrate(now)
        self.inflight += 1
        self.peak = max(self.peak, self.inflight)

    def end(self, now: float, status: int, seconds: float, track: str | None) -> None:
        self._integrate(now)
        self.inflight -= 1
        self.total.add(status, seconds)
        if track is not None:
            counters = self.tracks.get(track)
            if counters is None:
                counters = self.tracks[track] = Counters()
            counters.add(status, seconds)

    def _integrate(self, now: float) -> None:
        self.area += self.inflight * (now - self.last_t)
        self.last_t = now

    def load(self, now: float, elapsed: float) -> dict[str, Any]:
        """The report since the last one: requests in flight on average and at most, held
        requests now, and the cumulative counters (the control plane takes differences)."""
        self._integrate(now)
        average = self.area / elapsed if elapsed > 0 else float(self.inflight)
        report = {
            "id": self.id,
            "inflight": round(average, 4),
            "peak": self.peak,
            "waiting": self.waiting,
            "total": self.total.snapshot(),
            "tracks": {name: c.snapshot() for name, c in self.tracks.items()},
        }
        self.area = 0.0
        self.peak = self.inflight
        return report


class Table:
    """Every deployment the gateway serves, by key: ``name`` for the default workspace,
    ``workspace/name`` for every workspace."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.by_id: dict[str, Route] = {}
        self.version = ""

    def get(self, key: str) -> Route | None:
        return self.routes.get(key)

    def close(self) -> None:
        """Close every pooled connection (the gateway stops)."""
        for route in self.by_id.values():
            for upstream in route.upstreams:
                upstream.close()

    def update(self, version: str, entries: Iterable[Mapping[str, Any]]) -> None:
        known = {u.url: u for route in self.by_id.values() for u in route.upstreams}
        by_id: dict[str, Route] = {}
        routes: dict[str, Route] = {}
        for entry in entries:
            route = self.by_id.get(str(entry["id"])) or Route(str(entry["id"]))
            route.configure(entry, known)
            by_id[route.id] = route
            for key in entry.get("keys", []):
                routes[str(key)] = route
        for route in self.by_id.values():
            if route.id not in by_id:  # deleted: its held requests wake and are refused
                gone = {"id": route.id, "name": route.name, "error": "the deployment was deleted"}
                route.configure(gone, {})
        for upstream in known.values():  # listed nowhere now: its connections go
            upstream.close()
        self.by_id, self.routes, self.version = by_id, routes, version
