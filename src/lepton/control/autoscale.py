"""The autoscaler's decision and the canary's judgement: pure functions of a deployment's
settings and the gateway's load samples (``control/load.py``), so tests drive them with made-up
samples and no clock.

Scaling (per pass of the supervisor, for a deployment with ``max_replicas``):

- **up** at once when the load over the last ``UP_WINDOW_S`` asks for more: requests in flight
  (time-averaged, as the gateway integrates them) plus those held, over ``target_inflight``,
  rounded up. A request held for a deployment at zero asks for one replica by itself.
- **down** only when every report of the last ``scale_down_delay_s`` asked for fewer: to the
  most any of them asked for (never below ``min_replicas``, nor below one while a request came
  in the last ``idle_timeout_s``).
- **to zero** with ``min_replicas`` 0, after ``idle_timeout_s`` without a request through the
  gateway or straight to a replica.

No report, no decision: with the gateway silent for ``STALE_S`` (it stopped, or it restarts)
the count stays, and a window counts only once reports cover it, so a control plane that just
started does not scale down on the history it does not have.

A canary is rolled back when, over ``canary_window_s`` and with at least ``CANARY_MIN_REQUESTS``
answered by each track, its error rate passes the stable track's by more than
``canary_error_margin``, or its p99 passes the stable p99 times ``canary_latency_margin``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from lepton.control.load import LoadSample
from lepton.control.traffic import quantile
from lepton.serving.metrics import LATENCY_BUCKETS

__all__ = ["Decision", "Policy", "decide", "judge_canary"]

UP_WINDOW_S = 3.0
STALE_S = 5.0
CANARY_MIN_REQUESTS = 20


@dataclass(frozen=True)
class Policy:
    min_replicas: int
    max_replicas: int
    target_inflight: float
    scale_down_delay_s: float
    idle_timeout_s: float


@dataclass(frozen=True)
class Decision:
    replicas: int
    reason: str


def _want(load: float, target: float) -> int:
    return math.ceil(load / target - 1e-9) if load > 0 else 0


def _covers(samples: Sequence[LoadSample], now: float, seconds: float) -> bool:
    """Whether reports span the last ``seconds`` (the oldest starts near its beginning)."""
    if not samples:
        return False
    first = samples[0]
    return first.at - first.seconds <= now - seconds + 1.5


def decide(
    policy: Policy,
    current: int,
    samples: Sequence[LoadSample],
    now: float,
    *,
    last_direct_answer_s: float | None = None,
) -> Decision | None:
    """What ``current`` replicas should become, and why; None to leave it. ``samples`` are the
    deployment's reports (oldest first; those of the longest window are enough), ``now`` on
    their clock; ``last_direct_answer_s``: seconds since a replica last reported an answer."""
    if not samples or now - samples[-1].at > STALE_S:
        return None
    recent = [s for s in samples if s.at >= now - UP_WINDOW_S] or [samples[-1]]
    seconds = sum(s.seconds for s in recent)
    inflight = (
        sum(s.inflight * s.seconds for s in recent) / seconds
        if seconds > 0
        else recent[-1].inflight
    )
    waiting = recent[-1].waiting
    want = _want(inflight + waiting, policy.target_inflight)
    if waiting and current == 0:
        want = max(want, 1)
    want = min(policy.max_replicas, max(policy.min_replicas, want))
    if want > current:
        cause = (
            f"{waiting} request(s) held with no replica"
            if current == 0
            else f"{inflight + waiting:.1f} requests in flight over {UP_WINDOW_S:g} s "
            f"(target {policy.target_inflight:g} per replica)"
        )
        return Decision(want, f"scaled up from {current} to {want}: {cause}")
    if current <= policy.min_replicas:
        return None
    # Down: every report of the quiet period must have asked for fewer.
    delay = policy.scale_down_delay_s
    if not _covers(samples, now, delay):
        return None
    quiet = [s for s in samples if s.at >= now - delay]
    asked = max((_want(s.inflight + s.waiting, policy.target_inflight) for s in quiet), default=0)
    floor = max(policy.min_replicas, asked)
    if floor == 0:
        idle = policy.idle_timeout_s
        window = [s for s in samples if s.at >= now - idle]
        answered = any(s.requests or s.waiting or s.peak for s in window)
        direct = last_direct_answer_s is not None and last_direct_answer_s < idle
        if answered or direct or not _covers(samples, now, idle):
            floor = 1
    want = min(policy.max_replicas, floor)
    if want >= current:
        return None
    if want == 0:
        return Decision(0, f"scaled to zero: no request for {policy.idle_timeout_s:g} s")
    return Decision(
        want,
        f"scaled down from {current} to {want}: at most {asked} replica(s) of load for "
        f"{delay:g} s (target {policy.target_inflight:g} in flight per replica)",
    )


@dataclass(frozen=True)
class Verdict:
    failed: bool
    reason: str


def _rates(samples: Sequence[LoadSample], track: str) -> tuple[int, int, dict[float, int]]:
    requests = errors = 0
    buckets: dict[float, int] = {}
    bounds = [*LATENCY_BUCKETS, math.inf]
    for sample in samples:
        tally = sample.tracks.get(track)
        if tally is None:
            continue
        requests += tally.requests
        errors += tally.errors
        for bound, n in zip(bounds, tally.buckets, strict=False):
            buckets[bound] = buckets.get(bound, 0) + n
    return requests, errors, buckets


def judge_canary(
    samples: Sequence[LoadSample], *, error_margin: float, latency_margin: float
) -> Verdict | None:
    """Whether the canary does worse than stable over ``samples``; None until both tracks
    have answered enough to tell."""
    c_requests, c_errors, c_buckets = _rates(samples, "canary")
    s_requests, s_errors, s_buckets = _rates(samples, "stable")
    if c_requests < CANARY_MIN_REQUESTS:
        return None
    c_rate = c_errors / c_requests
    s_rate = s_errors / s_requests if s_requests else 0.0
    if c_rate > s_rate + error_margin:
        return Verdict(
            True,
            f"the canary's error rate {c_rate:.1%} ({c_errors} of {c_requests}) passes the "
            f"stable version's {s_rate:.1%} by more than {error_margin:.1%}",
        )
    if s_requests >= CANARY_MIN_REQUESTS:
        c_p99 = quantile(0.99, c_buckets)
        s_p99 = quantile(0.99, s_buckets)
        if c_p99 is not None and s_p99 is not None and 0 < s_p99 * latency_margin < c_p99:
            return Verdict(
                True,
                f"the canary's p99 {c_p99 * 1000:.1f} ms passes the stable version's "
                f"{s_p99 * 1000:.1f} ms times {latency_margin:g}",
            )
    return Verdict(False, f"healthy: error rate {c_rate:.1%} over {c_requests} requests")
