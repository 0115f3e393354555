"""What the gateway reports of each deployment's load, kept in memory as samples: when, the
span, requests in flight (time-averaged and peak), requests held for a replica, and answers and
errors since the last report, in total and per track (``stable``, ``canary``). The supervisor's
autoscaler and canary judge read them (``control/autoscale.py``); history starts when the
control plane starts.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["GatewayLoad", "LoadSample", "TrackSample"]

KEEP_SAMPLES = 3600
"""Reports kept per deployment: an hour at one a second."""


@dataclass(frozen=True)
class TrackSample:
    requests: int
    errors: int
    buckets: tuple[int, ...]
    """Answers per latency bucket (the replicas' bounds, then +Inf) since the last report."""


@dataclass(frozen=True)
class LoadSample:
    at: float
    """``time.monotonic()`` when it was heard."""
    seconds: float
    """The span it covers."""
    inflight: float
    peak: int
    waiting: int
    requests: int
    errors: int
    tracks: dict[str, TrackSample] = field(default_factory=dict)


Tally = tuple[int, int, tuple[int, ...]]
"""Answers, errors, and answers per latency bucket."""


def _counts(snapshot: Any) -> Tally:
    status = snapshot.get("status", {}) if isinstance(snapshot, dict) else {}
    # A request the gateway refused (401) is no load, and must not keep a deployment awake.
    requests = sum(int(n) for s, n in status.items() if int(s) != 401)
    errors = sum(int(n) for s, n in status.items() if int(s) >= 500)
    buckets = tuple(int(n) for n in snapshot.get("counts", []))
    return requests, errors, buckets


def _minus(now: Tally, then: Tally | None) -> Tally:
    if then is None or now[0] < then[0] or len(now[2]) != len(then[2]):
        return now  # first heard, or the gateway restarted: its counts start from zero
    buckets = tuple(a - b for a, b in zip(now[2], then[2], strict=True))
    return now[0] - then[0], now[1] - then[1], buckets


class GatewayLoad:
    """What the gateway reported, per deployment id."""

    def __init__(self) -> None:
        self._samples: dict[str, deque[LoadSample]] = {}
        self._last: dict[tuple[str, str], Tally] = {}
        self.heard_at: float | None = None

    def record(self, interval_s: float, entries: Iterable[dict[str, Any]]) -> bool:
        """Take one report; True when a request is held somewhere (wake the supervisor)."""
        now = time.monotonic()
        self.heard_at = now
        held = False
        for entry in entries:
            deployment_id = str(entry.get("id", ""))
            if not deployment_id:
                continue
            total = _counts(entry.get("total", {}))
            key = (deployment_id, "")
            requests, errors, _ = _minus(total, self._last.get(key))
            self._last[key] = total
            tracks = {}
            for name, snapshot in (entry.get("tracks") or {}).items():
                counts = _counts(snapshot)
                track_key = (deployment_id, str(name))
                r, e, b = _minus(counts, self._last.get(track_key))
                self._last[track_key] = counts
                tracks[str(name)] = TrackSample(r, e, b)
            waiting = max(0, int(entry.get("waiting", 0)))
            held |= waiting > 0
            sample = LoadSample(
                at=now,
                seconds=max(0.0, float(interval_s)),
                inflight=max(0.0, float(entry.get("inflight", 0.0))),
                peak=max(0, int(entry.get("peak", 0))),
                waiting=waiting,
                requests=requests,
                errors=errors,
                tracks=tracks,
            )
            self._samples.setdefault(deployment_id, deque(maxlen=KEEP_SAMPLES)).append(sample)
        return held

    def window(self, deployment_id: str, seconds: float) -> list[LoadSample]:
        """The samples heard in the last ``seconds``, oldest first."""
        since = time.monotonic() - seconds
        samples = self._samples.get(deployment_id, ())
        return [s for s in samples if s.at >= since]

    def forget(self, deployment_id: str) -> None:
        self._samples.pop(deployment_id, None)
        for key in [k for k in self._last if k[0] == deployment_id]:
            del self._last[key]
