"""The gateway with real processes: a control plane (``lepton up``), its gateway, and replicas
of a scikit-learn model. Every deployment answers at ``{gateway}/d/<name>/``; the gateway
checks tokens, holds a request while a scaled-to-zero deployment starts a replica, retries a
refused or dropped connection on another replica, splits traffic for a canary, and the
supervisor scales and rolls canaries back on what it reports."""

from __future__ import annotations

import os
import signal
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from test_deployments_process import (
    ROW,
    alive,
    cleanup,
    client_for,
    pids,
    predicted,
    register_model,
    wait_for,
)

from lepton import Client
from lepton.schemas import Deployment

if TYPE_CHECKING:
    from conftest import ServerProcess


@pytest.fixture(scope="module")
def client(module_server: ServerProcess) -> Iterator[Client]:
    client = client_for(module_server)
    register_model(client)  # clf@1 answers class 1 for ROW
    register_model(client, flip=True)  # clf@2 answers class 0
    with cleanup(client):
        yield client
    client.close()


def gateway_url(client: Client, name: str) -> str:
    url = client.deployments.get(name).gateway_url
    assert url is not None, "the control plane started no gateway"
    return url


class Load:
    """``threads`` callers sending ``/predict`` through the gateway until stopped (or until
    ``total`` requests); every answer's status and class kept, in order."""

    def __init__(self, url: str, token: str | None, *, threads: int, total: int = 0) -> None:
        self.url = f"{url}/predict"
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.total = total
        self.answers: list[tuple[float, int, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sent = 0
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _next(self) -> bool:
        with self._lock:
            if self._stop.is_set() or (self.total and self._sent >= self.total):
                return False
            self._sent += 1
            return True

    def _run(self) -> None:
        with httpx.Client(timeout=60) as http:
            while self._next():
                try:
                    r = http.post(self.url, json={"rows": [ROW]}, headers=self.headers)
                    status = r.status_code
                    value = predicted(r.json()) if status == 200 else r.text[:200]
                except httpx.HTTPError as exc:
                    status, value = 0, repr(exc)
                with self._lock:
                    self.answers.append((time.monotonic(), status, value))

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.join()

    def join(self) -> None:
        for thread in self._threads:
            thread.join(timeout=120)

    def failed(self) -> list[tuple[float, int, Any]]:
        return [a for a in self.answers if a[1] != 200]


def whole_log(client: Client, name: str) -> str:
    text, offset = [], 0
    while True:
        chunk = client.deployments.logs(name, offset)
        if not chunk.text:
            return "".join(text)
        text.append(chunk.text)
        offset = chunk.offset


def ready_replicas(deployment: Deployment) -> int:
    return sum(r.state == "ready" for r in deployment.replica_states)


def test_a_deployment_answers_at_the_gateway_and_the_gateway_checks_its_token(
    client: Client,
) -> None:
    created = client.deployments.create("clf@1", name="front", replicas=2)
    try:
        url = gateway_url(client, "front")
        assert url.endswith("/d/front")
        token = created.token
        r = httpx.post(
            f"{url}/predict", json={"rows": [ROW]}, headers={"Authorization": f"Bearer {token}"}
        )
        assert r.status_code == 200 and predicted(r.json()) == 1
        # Refused by the gateway itself: it names the deployment and how to authenticate
        # (a replica's own 401 says neither).
        for headers in ({}, {"Authorization": f"Bearer {token}x"}):
            refused = httpx.post(f"{url}/predict", json={"rows": [ROW]}, headers=headers)
            assert refused.status_code == 401
            assert (
                "deployment 'front' needs its inference token" in refused.json()["error"]["message"]
            )
        unknown = httpx.get(url.replace("/d/front", "/d/nothing-here") + "/predict")
        assert (
            unknown.status_code == 404
            and "lepton deployment list" in unknown.json()["error"]["fix"]
        )
        # Both replicas answer through it: the gateway balances by replica, not by port.
        for _ in range(40):
            assert (
                httpx.post(
                    f"{url}/predict",
                    json={"rows": [ROW]},
                    headers={"Authorization": f"Bearer {token}"},
                ).status_code
                == 200
            )
        # Its own metrics: one deployment's with that deployment's token; every deployment's
        # only with the operator's scraper token (not set here), so names do not leak.
        auth = {"Authorization": f"Bearer {token}"}
        metrics = httpx.get(url.replace("/d/front", "/metrics/d/front"), headers=auth).text
        assert 'lepton_gateway_requests_total{deployment="front",status="200"} 41' in metrics
        assert 'lepton_gateway_requests_total{deployment="front",status="401"} 2' in metrics
        assert 'lepton_gateway_replicas{deployment="front"} 2' in metrics
        assert httpx.get(url.replace("/d/front", "/metrics/d/front")).status_code == 401
        every = httpx.get(url.replace("/d/front", "/metrics"), headers=auth)
        assert every.status_code == 401 and "LEPTON_GATEWAY_METRICS_TOKEN" in every.text
    finally:
        client.deployments.delete("front")


def test_a_deployment_scaled_to_zero_holds_the_first_request_then_scales_up_and_back_down(
    client: Client,
) -> None:
    created = client.deployments.create(
        "clf@1",
        name="elastic",
        min_replicas=0,
        max_replicas=2,
        target_inflight=2,
        scale_down_delay_s=4,
        idle_timeout_s=5,
        hold_timeout_s=120,
    )
    try:
        url = gateway_url(client, "elastic")
        headers = {"Authorization": f"Bearer {created.token}"}
        # Idle: the last replica goes after the idle timeout, and the deployment says so.
        wait_for(lambda: client.deployments.get("elastic").state == "idle", "scale to zero", 60)
        idle = client.deployments.get("elastic")
        assert idle.replicas == 0 and not pids(idle)
        assert idle.autoscaling is not None
        assert "scaled to zero: no request for 5 s" in (idle.autoscaling.last_decision or "")

        # The first request is held while a replica starts, then answered: never a 503.
        started = time.monotonic()
        r = httpx.post(f"{url}/predict", json={"rows": [ROW]}, headers=headers, timeout=150)
        cold = time.monotonic() - started
        assert r.status_code == 200, r.text
        assert predicted(r.json()) == 1
        print(f"cold start through the gateway: {cold:.2f} s")

        # Sustained concurrency (8 callers, target 2 in flight per replica): a second replica.
        with Load(url, created.token, threads=8) as load:
            wait_for(
                lambda: ready_replicas(client.deployments.get("elastic")) == 2,
                "a second replica under load",
                120,
            )
            time.sleep(1)
        assert load.answers and not load.failed(), load.failed()[:5]
        log = whole_log(client, "elastic")
        assert "scaled up from 0 to 1: 1 request(s) held with no replica" in log
        assert "scaled up from 1 to 2" in log

        # Quiet again: back to one after the quiet period, then to zero after the idle timeout.
        wait_for(lambda: client.deployments.get("elastic").replicas == 1, "scale down to 1", 60)
        wait_for(lambda: client.deployments.get("elastic").state == "idle", "back to zero", 60)
        log = whole_log(client, "elastic")
        assert "scaled down from 2 to 1" in log
        assert log.count("scaled to zero") == 2
    finally:
        client.deployments.delete("elastic")


def test_killing_a_replica_behind_the_gateway_under_load_costs_almost_no_request(
    client: Client,
) -> None:
    created = client.deployments.create("clf@1", name="sturdy", replicas=2)
    try:
        url = gateway_url(client, "sturdy")
        total = 6000
        with Load(url, created.token, threads=16, total=total) as load:
            wait_for(lambda: len(load.answers) > total // 4, "load to get going", 60)
            victim = pids(client.deployments.get("sturdy"))[0]
            os.killpg(victim, signal.SIGKILL)
            load.join()
        failed = load.failed()
        assert len(load.answers) == total
        # Under 0.05% (3 of 6,000): the requests the killed replica held, and the connections
        # it refused afterwards, went to the other replica.
        assert len(failed) <= total * 0.0005, failed[:5]
        print(f"killed replica {victim}: {len(failed)} of {total} requests failed")
        wait_for(lambda: not alive(victim), "the killed replica to be reaped", 30)
    finally:
        client.deployments.delete("sturdy")


def test_a_ten_percent_canary_gets_ten_percent_of_the_gateway_s_requests_and_is_promoted(
    client: Client,
) -> None:
    created = client.deployments.create("clf@1", name="trial", replicas=1)
    try:
        url = gateway_url(client, "trial")
        client.deployments.update("trial", model="clf@2", canary=10)
        wait_for(
            lambda: (
                (c := client.deployments.get("trial").canary) is not None and c.ready_replicas == 1
            ),
            "the canary's replica",
        )
        shown = client.deployments.get("trial")
        assert shown.state == "ready" and shown.model == "clf@1"
        assert shown.canary is not None and shown.canary.model == "clf@2"
        total = 5000
        with Load(url, created.token, threads=8, total=total) as load:
            load.join()
        assert not load.failed(), load.failed()[:5]
        classes = Counter(value for _, _, value in load.answers)
        share = classes[0] / total  # clf@2, the canary, answers class 0
        print(f"canary share of {total} requests: {share:.2%}")
        assert 0.08 <= share <= 0.12, classes

        promoted = client.deployments.promote("trial")
        assert promoted.canary is None and promoted.model == "clf@2"
        client.deployments.wait("trial")
        r = httpx.post(
            f"{url}/predict",
            json={"rows": [ROW]},
            headers={"Authorization": f"Bearer {created.token}"},
        )
        assert predicted(r.json()) == 0
    finally:
        client.deployments.delete("trial")


SCORER = """
from lepton.photon import Photon


class Scorer(Photon):
    @Photon.handler
    def score(self, x: float = 0.0) -> dict:
        if BROKEN:
            raise RuntimeError("this version is broken")
        return {"score": x * 2}
"""


def test_a_canary_that_fails_its_requests_is_rolled_back_by_itself(
    client: Client, tmp_path: Path
) -> None:
    for broken in (False, True):  # scorer@1 answers; scorer@2 raises on every request
        folder = tmp_path / f"scorer-{broken}"
        folder.mkdir()
        (folder / "scorer.py").write_text(f"BROKEN = {broken}\n" + textwrap.dedent(SCORER))
        client.photons.push(folder, entry="scorer.py:Scorer", name="scorer")
    created = client.deployments.create(photon="scorer@1", name="scorer", public=True)
    try:
        url = f"{gateway_url(client, 'scorer')}/score"
        client.deployments.update("scorer", photon="scorer@2", canary=20, canary_window_s=10)
        wait_for(
            lambda: (
                (c := client.deployments.get("scorer").canary) is not None and c.ready_replicas == 1
            ),
            "the canary's replica",
        )
        answers: list[tuple[float, int]] = []
        rolled_back_at = None
        with httpx.Client(timeout=30) as http:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                for _ in range(20):
                    r = http.post(url, json={"x": 1.5})
                    answers.append((time.monotonic(), r.status_code))
                if client.deployments.get("scorer").canary is None:
                    rolled_back_at = time.monotonic()
                    break
            assert rolled_back_at is not None, "the failing canary was not rolled back"
            time.sleep(0.5)  # the gateway's table follows within one long-poll pass (0.1 s)
            after = [http.post(url, json={"x": 1.5}).status_code for _ in range(200)]
        failed = [status for _, status in answers if status != 200]
        print(f"the canary failed {len(failed)} of {len(answers)} requests before its rollback")
        # Only the canary failed requests (a fifth of them, at most, and it needs 20 answers
        # to be judged), and none fail once it is rolled back.
        assert failed and set(failed) == {500}
        assert len(failed) <= len(answers) * 0.4
        assert after == [200] * 200
        log = whole_log(client, "scorer")
        assert "rolled back automatically: the canary's error rate 100.0%" in log
        events = client.request(
            "GET", "/api/v1/audit", params={"action": "deployment.canary_rollback"}
        ).json()
        assert [e["resource"] for e in events] == ["deployment/scorer"]
        assert events[0]["actor_name"] == "lepton"
        assert created.public
    finally:
        client.deployments.delete("scorer")


def test_a_rolling_update_behind_the_gateway_fails_no_request(client: Client) -> None:
    created = client.deployments.create("clf@1", name="rolled", replicas=2)
    try:
        url = gateway_url(client, "rolled")
        with Load(url, created.token, threads=8) as load:
            wait_for(lambda: len(load.answers) > 200, "load to get going", 60)
            client.deployments.update("rolled", model="clf@2")
            client.deployments.wait("rolled")
            time.sleep(0.5)  # the gateway's table follows within one poll
            seen = len(load.answers)
            wait_for(lambda: len(load.answers) > seen + 200, "answers from the new version", 60)
        assert not load.failed(), load.failed()[:5]
        classes = [value for _, _, value in load.answers]
        assert classes[0] == 1 and classes[-1] == 0  # clf@1, then clf@2 only at the end
        assert set(classes[seen:]) == {0}
    finally:
        client.deployments.delete("rolled")
