"""Deployments with real processes: ``lepton up`` supervising ``python -m lepton.serving``
replicas of a registered scikit-learn model, called over loopback.

Every test removes its deployments through the API and then kills, by pid, any replica that
is somehow still there, so no process outlives the test that started it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import pytest

from lepton import Client
from lepton.errors import AuthenticationError
from lepton.schemas import Deployment
from lepton.settings import Settings

if TYPE_CHECKING:
    from conftest import ServerFactory, ServerProcess

# Replicas start in seconds, but several per test on a loaded 2-core machine outlast the
# suite's 120 s default.
pytestmark = pytest.mark.timeout(600)

FEATURES = 10  # more than fit on one line, so a printed example must not cut columns


def client_for(server: ServerProcess) -> Client:
    return Client(server.url, server.token, settings=Settings(home=Path("/nonexistent")))


def register_model(client: Client, name: str = "clf", *, flip: bool = False) -> str:
    """A logistic regression on FEATURES features, saved with skops; ``flip`` swaps its classes, so a
    caller can tell which version answered."""
    import skops.io
    from sklearn.linear_model import LogisticRegression

    from lepton.registry.artifacts import pack

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, FEATURES))
    y = (X[:, 0] > 0).astype(int) ^ int(flip)
    estimator = LogisticRegression().fit(X, y)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "model"
        folder.mkdir()
        skops.io.dump(estimator, folder / "model.skops")
        (folder / "config.json").write_text(json.dumps({"flavour": "sklearn"}))
        pack(folder, Path(tmp) / "model.zip")
        blob = client.blobs.upload(Path(tmp) / "model.zip")
    body = {
        "artifact_digest": blob.digest,
        "flavour": "sklearn",
        "algorithm": "logistic_regression",
        "task": "classification",
        "signature": {
            "inputs": [{"name": f"x{i}", "dtype": "float64"} for i in range(FEATURES)],
            "outputs": {"task": "classification", "classes": [0, 1]},
        },
    }
    data = client.request("POST", f"/api/v1/models/{name}/versions", json=body).json()
    return str(data["ref"])


# clearly class 1 (class 0 when flipped)
ROW = {"x0": 2.0, **{f"x{i}": 0.0 for i in range(1, FEATURES)}}


def predicted(answer: Any) -> Any:
    """The class of the first row, whatever the exact shape of the answer."""
    value = answer.get("predictions", answer) if isinstance(answer, dict) else answer
    while isinstance(value, list):
        value = value[0]
    return value.get("label", value) if isinstance(value, dict) else value


def pids(deployment: Deployment) -> list[int]:
    return [r.pid for r in deployment.replica_states if r.pid is not None]


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


# A bound on waits, not a measurement: on a loaded 2-core machine a replica takes up to ~30 s to
# import scikit-learn and load, and a rolling update of two replicas starts two of them.
WAIT_S = 240.0


def wait_for(check: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)


@contextlib.contextmanager
def cleanup(client: Client) -> Iterator[list[int]]:
    """Remove every deployment afterwards; kill any replica pid that outlives that."""
    seen: list[int] = []
    try:
        yield seen
    finally:
        with contextlib.suppress(Exception):
            for deployment in client.deployments.list():
                seen += pids(deployment)
                client.deployments.delete(deployment.name, timeout_s=60)
        for pid in set(seen):
            if alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def client(module_server: ServerProcess) -> Iterator[Client]:
    client = client_for(module_server)
    register_model(client)
    register_model(client, flip=True)
    with cleanup(client):
        yield client
    client.close()


@pytest.fixture
def deployed(client: Client) -> Iterator[tuple[Deployment, str]]:
    created = client.deployments.create("clf@1", name="clf", replicas=2)
    assert created.token is not None
    yield created, created.token
    seen = pids(client.deployments.get("clf"))
    client.deployments.delete("clf")
    for pid in seen:
        assert not alive(pid), f"replica {pid} still runs after the deployment was removed"


def test_a_deployed_model_answers_with_its_token_and_refuses_without(
    client: Client, deployed: tuple[Deployment, str]
) -> None:
    deployment, token = deployed
    assert deployment.state == "ready" and len(pids(deployment)) == 2

    assert predicted(client.deployments.predict("clf", [ROW], token=token)) == 1
    r = httpx.post(f"{deployment.url}/predict", json={"rows": [ROW]})
    assert r.status_code == 401
    wrong = httpx.post(
        f"{deployment.url}/predict",
        json={"rows": [ROW]},
        headers={"Authorization": f"Bearer {token[:-4]}abcd"},
    )
    assert wrong.status_code == 401
    log = client.deployments.logs("clf").text
    assert "ready http://" in log and f"[{deployment.replica_states[0].id}]" in log


def test_a_replica_runs_within_the_memory_and_threads_its_deployment_asks_for(
    client: Client,
) -> None:
    client.deployments.create("clf@1", name="sized", cpus=1, memory_mb=1536)
    try:
        [pid] = pids(client.deployments.get("sized"))
        limits = Path(f"/proc/{pid}/limits").read_text()
        data = next(line for line in limits.splitlines() if line.startswith("Max data size"))
        assert data.split()[3:5] == [str(1536 * 1024 * 1024)] * 2, data
        assert predicted(client.deployments.predict("sized", [ROW])) == 1
    finally:
        client.deployments.delete("sized")


def test_a_killed_replica_is_restarted_and_reported(
    client: Client, deployed: tuple[Deployment, str]
) -> None:
    deployment, token = deployed
    victim = pids(deployment)[0]

    os.kill(victim, signal.SIGKILL)

    def restarted() -> bool:
        d = client.deployments.get("clf")
        return d.state == "ready" and victim not in pids(d)

    wait_for(restarted, "the killed replica to be restarted")
    replica = next(r for r in client.deployments.get("clf").replica_states if r.restarts == 1)
    assert replica.last_error is not None and "exited with code -9" in replica.last_error
    assert predicted(client.deployments.predict("clf", [ROW], token=token)) == 1


def test_a_rolling_update_under_load_fails_no_request(
    client: Client, deployed: tuple[Deployment, str]
) -> None:
    deployment, token = deployed
    old = set(pids(deployment))
    answers: list[Any] = []
    failures: list[str] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
            while not stop.is_set():
                try:
                    r = http.post(f"{deployment.url}/predict", json={"rows": [ROW]})
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    continue
                if r.status_code != 200:
                    failures.append(f"{r.status_code} {r.text[:200]}")
                else:
                    answers.append(predicted(r.json()))

    workers = [threading.Thread(target=load) for _ in range(2)]
    for worker in workers:
        worker.start()
    try:
        wait_for(lambda: len(answers) > 20, "answers before the update")
        client.deployments.update("clf", model="clf@2")

        def rolled() -> bool:
            d = client.deployments.get("clf")
            return d.state == "ready" and d.generation == 2 and not old & set(pids(d))

        wait_for(rolled, "the update to roll")
        count = len(answers)
        wait_for(lambda: len(answers) > count + 20, "answers after the update")
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=30)

    assert failures == [], (
        f"{len(failures)} of {len(answers) + len(failures)} failed: {failures[:3]}"
    )
    assert answers[0] == 1 and answers[-1] == 0  # version 1 before, the flipped version 2 after
    for pid in old:
        assert not alive(pid)


def test_a_rollback_serves_the_earlier_version_again(client: Client) -> None:
    client.deployments.create("clf@1", name="undo", public=True)
    try:
        client.deployments.update("undo", model="clf@2")
        rolled = client.deployments.wait("undo")
        assert predicted(client.deployments.predict("undo", [ROW])) == 0  # clf@2 flips

        back = client.deployments.rollback("undo")
        assert (back.generation, back.model, back.replicas) == (3, "clf@1", 1)
        ready = client.deployments.wait("undo")

        assert [r.generation for r in ready.replica_states] == [3]
        assert not set(pids(rolled)) & set(pids(ready))  # new replicas serve it
        assert predicted(client.deployments.predict("undo", [ROW])) == 1
        assert [(r.generation, r.reason) for r in client.deployments.revisions("undo")] == [
            (3, "rolled back to generation 1"),
            (2, "updated model"),
            (1, "created"),
        ]
    finally:
        client.deployments.delete("undo")


def test_deleting_stops_the_replicas_and_revokes_the_token(client: Client) -> None:
    created = client.deployments.create("clf", name="short-lived", public=False)
    assert created.token is not None
    running = pids(client.deployments.get("short-lived"))

    client.deployments.delete("short-lived")

    assert running and not any(alive(pid) for pid in running)
    revoked = Client(client.url, created.token, settings=Settings(home=Path("/nonexistent")))
    with revoked, pytest.raises(AuthenticationError, match="revoked"):
        revoked.status()
    with pytest.raises(httpx.TransportError):
        httpx.post(f"{created.url}/predict", json={"rows": [ROW]}, timeout=5)


def test_replicas_keep_serving_across_a_control_plane_restart(servers: ServerFactory) -> None:
    server = servers("restart")
    client = client_for(server)
    register_model(client)
    with cleanup(client) as seen:
        created = client.deployments.create("clf", replicas=2, public=True)
        before = pids(client.deployments.get("clf"))
        seen += before

        server.stop()
        r = httpx.post(f"{created.url}/predict", json={"rows": [ROW]}, timeout=10)
        assert r.status_code == 200 and predicted(r.json()) == 1

        server.start()  # same URL and token: the client goes on
        after = client.deployments.get("clf")
        assert sorted(pids(after)) == sorted(before) and after.state == "ready"

        os.kill(before[0], signal.SIGKILL)  # the new control plane restarts what it found
        wait_for(
            lambda: (
                before[0] not in pids(client.deployments.get("clf"))
                and client.deployments.get("clf").state == "ready"
            ),
            "the re-attached deployment to restart its killed replica",
        )
        seen += pids(client.deployments.get("clf"))
        client.deployments.delete("clf")
        assert not any(alive(pid) for pid in set(seen))
    client.close()
