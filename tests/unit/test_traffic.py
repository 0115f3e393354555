"""Traffic reports: a replica's reporter writes its counters as one line when they changed, and
the control plane's ``TrafficStore`` turns consecutive reports into windows of deltas summed
over the replicas. Times are the test's; nothing sleeps, no process starts."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from lepton.control.traffic import Counts, TrafficStore, parse_report, quantile
from lepton.schemas import DeploymentTraffic
from lepton.serving.metrics import Metrics
from lepton.serving.traffic import PREFIX, TrafficReporter

T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)  # a window boundary
BOUNDS = [0.001, 0.005, 0.01]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def line(seq: Any, routes: dict[str, Any], le: list[Any] = BOUNDS) -> bytes:
    return PREFIX + orjson.dumps({"v": 1, "seq": seq, "le": le, "routes": routes})


def route(statuses: dict[int, Any], counts: list[int] | None = None, **errors: int) -> Any:
    entry: dict[str, Any] = {
        "status": {str(s): n for s, n in statuses.items()},
        "errors": errors,
        "depth": 0,
    }
    if counts is not None:
        entry.update(counts=counts, sum=0.0)
    return entry


@pytest.fixture
def store() -> TrafficStore:
    return TrafficStore(started=T0)


def take(store: TrafficStore, replica: str, report: bytes, seconds: float) -> bytes | None:
    return store.take("dep", replica, report, at(seconds))


def view(store: TrafficStore, seconds: float, minutes: int = 60) -> DeploymentTraffic:
    return store.traffic("dep", "heart", minutes=minutes, now=at(seconds))


# --- deltas and restarts ------------------------------------------------------------------------


def test_consecutive_reports_count_what_changed_between_them(store: TrafficStore) -> None:
    assert take(store, "r1", line(1, {"predict": route({200: 3})}), 1) is None
    take(store, "r1", line(2, {"predict": route({200: 5})}), 6)
    take(store, "r1", line(3, {"predict": route({200: 9})}), 12)

    traffic = view(store, 15)
    assert [p.requests for p in traffic.points] == [5, 4]  # 3 + 2, then 4: not 3 + 5 + 9
    assert traffic.points[0].requests_per_s == 0.5
    assert traffic.totals.requests == 9 and traffic.totals.seconds == 15
    assert traffic.totals.requests_per_s == pytest.approx(9 / 15, abs=1e-3)
    assert traffic.replicas_reporting == 1


def test_a_restarted_replica_counts_from_zero(store: TrafficStore) -> None:
    take(store, "r1", line(1, {"predict": route({200: 10})}), 1)
    take(store, "r1", line(1, {"predict": route({200: 2})}), 3)  # a new process: seq 1 again
    take(store, "r1", line(2, {"predict": route({200: 12})}), 5)  # up from 2: +10
    # A later sequence but a counter that went down (a route gone): also a new process.
    take(store, "r1", line(3, {"explain": route({200: 1})}), 7)

    assert view(store, 8).totals.requests == 10 + 2 + 10 + 1


def test_a_replica_first_heard_mid_life_is_a_baseline(store: TrafficStore) -> None:
    # It served before this control plane started: when those 500 happened is unknown.
    take(store, "r1", line(40, {"predict": route({200: 500})}), 1)
    take(store, "r1", line(41, {"predict": route({200: 507})}), 6)

    assert view(store, 8).totals.requests == 7


def test_two_replicas_are_summed_with_their_latency_buckets(store: TrafficStore) -> None:
    # Buckets (0, 1 ms], (1, 5 ms], (5, 10 ms], (10 ms, +Inf): the two replicas together
    # observed 2, 6, 2 and 0 requests.
    take(store, "a", line(1, {"predict": route({200: 4}, [1, 3, 0, 0])}), 1)
    take(store, "b", line(1, {"predict": route({200: 6}, [1, 3, 2, 0])}), 2)

    (point,) = view(store, 5).points
    assert point.requests == 10
    # Hand-computed as histogram_quantile does: p50's rank is 5 of 10, in the second bucket
    # (cumulative 2, 8), 3 of its 6: 1 + (5 - 1) * 3/6 = 3 ms. p95: rank 9.5 in the third
    # (cumulative 8, 10), 1.5 of 2: 5 + 5 * 0.75 = 8.75 ms. p99: 5 + 5 * 0.95 = 9.75 ms.
    assert (point.p50_ms, point.p95_ms, point.p99_ms) == (3.0, 8.75, 9.75)
    assert view(store, 5).replicas_reporting == 2


def test_quantiles_follow_histogram_quantile_at_the_edges() -> None:
    inf = float("inf")
    assert quantile(0.5, {0.001: 0, 0.005: 0, inf: 0}) is None
    # The first bucket starts at 0; an empty bucket below still bounds the next one.
    assert quantile(0.5, {0.002: 4, inf: 0}) == pytest.approx(0.001)
    assert quantile(0.5, {0.001: 0, 0.003: 2, inf: 0}) == pytest.approx(0.002)
    # A rank in the +Inf bucket answers the highest finite bound.
    assert quantile(0.99, {0.001: 1, 0.01: 1, inf: 8}) == 0.01


def test_answers_split_into_errors_rejected_and_codes(store: TrafficStore) -> None:
    statuses = {200: 5, 401: 1, 422: 2, 500: 1, 503: 3}
    take(store, "r1", line(1, {"predict": route(statuses, invalid_input=2, overloaded=3)}), 1)

    totals = view(store, 5).totals
    assert (totals.requests, totals.errors, totals.rejected) == (12, 4, 3)
    assert totals.codes == {"invalid_input": 2, "overloaded": 3}
    assert totals.p50_ms is None  # no latency was reported


# --- windows --------------------------------------------------------------------------------------


def test_windows_older_than_the_span_or_an_hour_are_gone(store: TrafficStore) -> None:
    take(store, "r1", line(1, {"predict": route({200: 1})}), 1)
    take(store, "r1", line(2, {"predict": route({200: 3})}), 30 * 60)

    assert view(store, 30 * 60, minutes=60).totals.requests == 3
    assert view(store, 30 * 60, minutes=1).totals.requests == 2
    later = view(store, 61 * 60)
    assert later.totals.requests == 2 and len(later.points) == 360
    assert later.points[0].start == at(60 + 10)  # the last hour's windows, the current included


def test_an_hour_of_windows_is_all_that_is_kept(store: TrafficStore) -> None:
    for seq in range(1, 2 * 360):  # two hours of reports, one a window
        take(store, "r1", line(seq, {"predict": route({200: seq})}), seq * 10)

    assert len(store._deployments["dep"].windows) == 360


def test_points_start_when_the_control_plane_started(store: TrafficStore) -> None:
    traffic = view(store, 25)

    assert [p.start for p in traffic.points] == [at(0), at(10), at(20)]
    assert all(p.requests == 0 and p.p95_ms is None for p in traffic.points)
    assert traffic.replicas_reporting == 0 and "hour" in traffic.note


def test_a_forgotten_deployment_has_no_traffic(store: TrafficStore) -> None:
    take(store, "r1", line(1, {"predict": route({200: 1})}), 1)
    store.forget_replica("dep", "r1")
    assert (view(store, 5).totals.requests, view(store, 5).replicas_reporting) == (1, 0)

    store.forget("dep")

    assert view(store, 5).totals.requests == 0


# --- what is not a report -------------------------------------------------------------------------

GOOD = {"predict": route({200: 1}, [1, 0, 0, 0])}


@pytest.mark.parametrize(
    "text",
    [
        PREFIX + b"{not json",
        PREFIX + b"[1, 2]",
        PREFIX + orjson.dumps({"seq": 1, "le": BOUNDS}),  # no routes
        line(0, GOOD),
        line(True, GOOD),
        line(1, {"predict": route({200: -1})}),
        line(1, {"predict": route({200: 1.5})}),
        line(1, {"predict": route({200: "1"})}),
        line(1, {"predict": route({99: 1})}),
        line(1, {"predict": {"status": {"ok": 1}}}),
        line(1, {"predict": route({200: 1}, [1, 0])}),  # a count short
        line(1, GOOD, le=[0.01, 0.005, 0.001]),
        line(1, GOOD, le=["1"]),
        line(1, {f"r{i}": route({200: 1}) for i in range(300)}),
        line(1, {"predict": route({200: 1}, **{"x" * 65: 1})}),
        line(1, {"predict": "200"}),
        line(1, {"predict": route({200: 1}) | {"padding": "x" * 70_000}}),
    ],
)
def test_a_malformed_report_is_ignored_and_left_in_the_log(
    store: TrafficStore, text: bytes
) -> None:
    assert parse_report(text) is None
    assert take(store, "r1", text, 1) == text
    assert view(store, 5).totals.requests == 0


def test_a_report_after_the_replicas_own_text_leaves_the_text(store: TrafficStore) -> None:
    report = line(1, GOOD)

    assert take(store, "r1", b"half a print" + report, 1) == b"half a print"
    assert take(store, "r1", b"loading the model", 2) == b"loading the model"
    assert take(store, "r1", b"", 3) == b""  # an empty line is output too
    assert view(store, 5).totals.requests == 1


# --- the replica's reporter -----------------------------------------------------------------------


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    read, write = os.pipe()
    os.set_blocking(read, False)
    yield read, write
    os.close(read)
    os.close(write)


def written(fd: int) -> bytes:
    try:
        return os.read(fd, 1 << 20)
    except BlockingIOError:
        return b""


def test_the_reporter_writes_one_parseable_line_only_when_counters_changed(
    pipe: tuple[int, int],
) -> None:
    read, write = pipe
    metrics = Metrics()
    reporter = TrafficReporter(metrics, skip={"healthz", "metrics"}, fd=write)

    assert not reporter.report() and written(read) == b""  # nothing served yet
    metrics.observe("healthz", 200, 0.0001)  # a probe is not traffic
    assert not reporter.report()

    metrics.observe("predict", 200, 0.003)
    metrics.observe("predict", 422, 0.0004)
    metrics.error("predict", "invalid_input")
    metrics.refused("predict", 401, "unauthenticated")
    assert reporter.report()
    first = written(read)
    assert first.startswith(PREFIX) and first.endswith(b"\n") and first.count(b"\n") == 1
    parsed = parse_report(first.rstrip(b"\n"))
    assert parsed is not None
    seq, counts = parsed
    assert seq == 1
    assert counts.statuses == {("predict", 200): 1, ("predict", 422): 1, ("predict", 401): 1}
    assert counts.codes == {("predict", "invalid_input"): 1, ("predict", "unauthenticated"): 1}
    assert counts.buckets == {("predict", 0.0005): 1, ("predict", 0.005): 1}
    assert "healthz" not in first.decode()

    assert not reporter.report() and written(read) == b""  # unchanged: no line
    metrics.observe("predict", 200, 0.002)
    assert reporter.report()
    second = parse_report(written(read).rstrip(b"\n"))
    assert second is not None and second[0] == 2
    assert second[1].minus(counts) == Counts(
        {("predict", 200): 1}, {}, {("predict", 0.0025): 1}, counts.edges
    )


def test_the_reporter_survives_a_closed_stdout() -> None:
    read, write = os.pipe()
    os.close(read)
    metrics = Metrics()
    metrics.observe("predict", 200, 0.001)
    reporter = TrafficReporter(metrics, fd=write)
    try:
        assert not reporter.report()  # EPIPE: the replica serves on
    finally:
        os.close(write)
