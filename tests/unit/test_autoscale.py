"""The autoscaler's decisions and the canary's judgement, on made-up load samples (no clock)."""

from __future__ import annotations

from lepton.control.autoscale import Policy, decide, judge_canary
from lepton.control.load import LoadSample, TrackSample
from lepton.serving.metrics import LATENCY_BUCKETS

POLICY = Policy(
    min_replicas=0, max_replicas=4, target_inflight=2, scale_down_delay_s=10, idle_timeout_s=30
)
NOW = 1000.0


def samples(
    seconds: float, *, inflight: float = 0, waiting: int = 0, requests: int = 0, end: float = NOW
) -> list[LoadSample]:
    """One report a second for the ``seconds`` before ``end``."""
    return [
        LoadSample(
            at=end - seconds + i + 1,
            seconds=1.0,
            inflight=inflight,
            peak=int(inflight),
            waiting=waiting,
            requests=requests,
            errors=0,
        )
        for i in range(int(seconds))
    ]


def test_a_request_held_at_zero_starts_one_replica_at_once() -> None:
    decision = decide(POLICY, 0, samples(1, waiting=1), NOW)
    assert decision is not None and decision.replicas == 1
    assert decision.reason == "scaled up from 0 to 1: 1 request(s) held with no replica"


def test_load_scales_up_to_in_flight_over_target_and_no_further_than_max() -> None:
    up = decide(POLICY, 1, samples(5, inflight=5.0, requests=50), NOW)
    assert up is not None and up.replicas == 3  # ceil(5 / 2)
    assert "5.0 requests in flight over 3 s (target 2 per replica)" in up.reason
    capped = decide(POLICY, 1, samples(5, inflight=40.0, requests=400), NOW)
    assert capped is not None and capped.replicas == 4
    assert decide(POLICY, 3, samples(5, inflight=5.0, requests=50), NOW) is None


def test_scaling_down_waits_for_a_whole_quiet_period_at_the_lower_load() -> None:
    busy_then_quiet = samples(40, inflight=6.0, requests=60, end=NOW - 9) + samples(
        9, inflight=1.0, requests=10
    )
    assert decide(POLICY, 3, busy_then_quiet, NOW) is None  # a report 9 s ago asked for 3
    quiet = samples(40, inflight=6.0, requests=60, end=NOW - 11) + samples(
        11, inflight=1.0, requests=10
    )
    down = decide(POLICY, 3, quiet, NOW)
    assert down is not None and down.replicas == 1
    assert down.reason.startswith("scaled down from 3 to 1: at most 1 replica(s) of load for 10 s")


def test_the_last_replica_goes_only_after_the_idle_timeout_without_any_request() -> None:
    recent_request = samples(31, end=NOW - 20) + samples(20, requests=0)
    recent_request[-25] = LoadSample(
        at=recent_request[-25].at, seconds=1, inflight=0.01, peak=1, waiting=0, requests=1, errors=0
    )
    assert decide(POLICY, 1, recent_request, NOW) is None
    idle = decide(POLICY, 1, samples(40), NOW)
    assert idle is not None and idle.replicas == 0
    assert idle.reason == "scaled to zero: no request for 30 s"
    # An answer straight from a replica's own port keeps it too.
    assert decide(POLICY, 1, samples(40), NOW, last_direct_answer_s=12.0) is None
    # Never below min_replicas.
    floor = Policy(1, 4, 2, 10, 30)
    assert decide(floor, 1, samples(40), NOW) is None


def test_without_reports_covering_a_window_nothing_is_decided() -> None:
    # Just started: 5 s of history cannot show a quiet period of 10 s, nor 30 s idle.
    assert decide(POLICY, 2, samples(5), NOW) is None
    # The gateway went silent: its last report is 6 s old.
    assert decide(POLICY, 2, samples(60, end=NOW - 6), NOW) is None
    assert decide(POLICY, 0, [], NOW) is None


def track(requests: int, errors: int, seconds: float) -> TrackSample:
    buckets = [0] * (len(LATENCY_BUCKETS) + 1)
    index = next((i for i, b in enumerate(LATENCY_BUCKETS) if seconds <= b), len(LATENCY_BUCKETS))
    buckets[index] = requests
    return TrackSample(requests, errors, tuple(buckets))


def judged(stable: TrackSample, canary: TrackSample) -> LoadSample:
    return LoadSample(
        at=NOW,
        seconds=1,
        inflight=1,
        peak=1,
        waiting=0,
        requests=stable.requests + canary.requests,
        errors=stable.errors + canary.errors,
        tracks={"stable": stable, "canary": canary},
    )


def test_a_canary_that_errs_more_than_the_margin_fails_and_one_within_it_passes() -> None:
    failing = judge_canary(
        [judged(track(400, 2, 0.004), track(40, 10, 0.004))], error_margin=0.05, latency_margin=2
    )
    assert failing is not None and failing.failed
    assert "error rate 25.0% (10 of 40)" in failing.reason and "0.5%" in failing.reason
    healthy = judge_canary(
        [judged(track(400, 2, 0.004), track(40, 1, 0.004))], error_margin=0.05, latency_margin=2
    )
    assert healthy is not None and not healthy.failed


def test_a_canary_much_slower_at_p99_fails_and_too_few_answers_tell_nothing() -> None:
    slow = judge_canary(
        [judged(track(400, 0, 0.004), track(40, 0, 0.2))], error_margin=0.05, latency_margin=2
    )
    assert slow is not None and slow.failed and "p99" in slow.reason
    assert (
        judge_canary(
            [judged(track(400, 0, 0.004), track(19, 19, 0.004))],
            error_margin=0.05,
            latency_margin=2,
        )
        is None
    )
