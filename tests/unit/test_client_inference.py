"""``client.deployments.predict`` / ``explain`` against replicas, in-process: where a deployment
answers is asked of the control plane once, asked again when it seems to have moved; a full
queue is retried after the wait it asks for; a timeout and a failed handler are their own errors.

The control plane is a MockTransport that answers ``GET /api/v1/deployments/NAME`` and counts
it; replicas are real replica apps (``served_model_app``) or handlers, reached by host:port
through one routing transport, so "moved", "gone" and "down" are a dictionary edit. The retry
waits go through the SDK's one clock, replaced here: nothing sleeps.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient
from test_serving_model import Linear

from lepton import (
    AuthenticationError,
    Client,
    ConfigError,
    ConnectionFailed,
    HandlerError,
    HandlerTimeout,
    NotFound,
    Overloaded,
    ServiceUnavailable,
)
from lepton.client.client import retry_after
from lepton.schemas import Deployment
from lepton.serving.auth import token_hash
from lepton.serving.runner import ReplicaConfig, served_model_app
from lepton.settings import Settings

TOKEN = "lep_abc_inference-secret"
ROW = {"a": 1.0, "b": 1}

Handler = Callable[[httpx.Request], httpx.Response]


def deployment(name: str, url: str, *, public: bool = False, id: str = "d1") -> dict[str, Any]:
    now = datetime.now(UTC)
    return Deployment(
        name=name, id=id, url=url, public=public, state="ready", source="model",
        model="heart@1", photon=None, requested="heart", replicas=1, ready_replicas=1,
        generation=1, max_batch_size=64, max_wait_ms=0, timeout_s=30, token_id=None,
        error=None, replica_states=[], created_at=now, updated_at=now,
    ).model_dump(mode="json")  # fmt: skip


class Plane:
    """The control plane's deployment lookups, counted; ``down`` refuses every connection."""

    def __init__(self) -> None:
        self.deployments: dict[str, dict[str, Any]] = {}
        self.gets = 0
        self.down = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        name = request.url.path.rsplit("/", 1)[-1]
        self.gets += 1
        if name not in self.deployments:
            error = {"code": "not_found", "message": f"no deployment {name}", "fix": "list"}
            return httpx.Response(404, json={"error": error})
        return httpx.Response(200, json=self.deployments[name])


class Replicas:
    """Replicas by ``host:port``; a port nobody serves refuses the connection."""

    def __init__(self) -> None:
        self.at: dict[str, Handler] = {}
        self.sent: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        where = request.url.netloc.decode()
        self.sent.append(where)
        handler = self.at.get(where)
        if handler is None:
            raise httpx.ConnectError("connection refused", request=request)
        return handler(request)


def forward(replica: TestClient) -> Handler:
    """A handler that hands the request to an in-process replica app."""

    def handle(request: httpx.Request) -> httpx.Response:
        answer = replica.send(replica.build_request(
            request.method, request.url.path, params=request.url.params,
            headers=request.headers, content=request.content,
        ))  # fmt: skip
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    return handle


def answer(status: int, code: str, headers: dict[str, str] | None = None) -> Handler:
    body = {"error": {"code": code, "message": f"replica says {code}", "fix": "wait"}}
    return lambda request: httpx.Response(status, json=body, headers=headers)


@pytest.fixture
def plane() -> Plane:
    plane = Plane()
    plane.deployments["heart"] = deployment("heart", "http://127.0.0.1:9001")
    return plane


@pytest.fixture
def replicas() -> Replicas:
    return Replicas()


@pytest.fixture
def client(plane: Plane, replicas: Replicas) -> Iterator[Client]:
    with Client(
        url="http://plane",
        token="admin",
        http=httpx.Client(transport=httpx.MockTransport(plane)),
        replica_http=httpx.Client(transport=httpx.MockTransport(replicas)),
        settings=Settings(home=Path("/nonexistent/lepton-tests")),
    ) as client:
        yield client


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits the SDK asked for, none of them slept."""
    waits: list[float] = []
    monkeypatch.setattr("lepton.client.deployments._sleep", waits.append)
    return waits


def replica(model: Any = None, **config: Any) -> TestClient:
    """A replica app of the Linear model that accepts TOKEN, its lifespan to be entered."""
    app = served_model_app(
        model or Linear(),
        ReplicaConfig(token_hashes=frozenset({token_hash(TOKEN)}), **config),
        name="heart",
    )
    return TestClient(app)


# --- where the deployment answers ------------------------------------------------------------


def test_predict_asks_the_control_plane_once_then_goes_on_while_it_is_down(
    client: Client, plane: Plane, replicas: Replicas
) -> None:
    with replica() as served:
        replicas.at["127.0.0.1:9001"] = forward(served)

        first = client.deployments.predict("heart", [ROW], token=TOKEN)
        again = client.deployments.predict("heart", [ROW], token=TOKEN)
        plane.down = True
        still = client.deployments.predict("heart", columns={"a": [-5], "b": [1]}, token=TOKEN)

    assert first == again and first["predictions"] == ["pos"]
    assert still["predictions"] == ["neg"]
    assert plane.gets == 1


@pytest.mark.parametrize(
    ("old_port", "why"),
    [
        (None, "the old port refuses connections"),
        (answer(401, "unauthenticated"), "another deployment's replica refuses the token"),
        (answer(404, "not_found"), "another photon serves no /predict"),
    ],
    ids=["gone", "401", "404"],
)
def test_a_deployment_that_moved_is_found_again_and_the_call_sent_once_more(
    client: Client, plane: Plane, replicas: Replicas, old_port: Handler | None, why: str
) -> None:
    with replica() as served:
        replicas.at["127.0.0.1:9001"] = forward(served)
        client.deployments.predict("heart", [ROW], token=TOKEN)
        # Deleted and created again under the same name: a new port.
        plane.deployments["heart"] = deployment("heart", "http://127.0.0.1:9002", id="d2")
        del replicas.at["127.0.0.1:9001"]
        if old_port is not None:
            replicas.at["127.0.0.1:9001"] = old_port
        replicas.at["127.0.0.1:9002"] = forward(served)

        moved = client.deployments.predict("heart", [ROW], token=TOKEN)
        after = client.deployments.predict("heart", [ROW], token=TOKEN)

    assert moved == after and moved["predictions"] == ["pos"], why
    assert plane.gets == 2  # asked again once; then the new place is remembered
    assert replicas.sent[1:] == ["127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9002"]


def test_a_dropped_connection_is_sent_once_more_to_the_same_replica_when_the_plane_is_down(
    client: Client, plane: Plane, replicas: Replicas
) -> None:
    with replica() as served:
        healthy = forward(served)
        replicas.at["127.0.0.1:9001"] = healthy
        client.deployments.predict("heart", [ROW], token=TOKEN)
        plane.down = True
        drops = [True]

        def flaky(request: httpx.Request) -> httpx.Response:
            if drops and drops.pop():  # the first connection drops, as a stale keep-alive one
                raise httpx.RemoteProtocolError("server disconnected", request=request)
            return healthy(request)

        replicas.at["127.0.0.1:9001"] = flaky
        answered = client.deployments.predict("heart", [ROW], token=TOKEN)

    assert answered["predictions"] == ["pos"]
    assert replicas.sent.count("127.0.0.1:9001") == 3


def test_a_replica_unreachable_everywhere_fails_after_one_more_try_naming_it(
    client: Client, plane: Plane, replicas: Replicas
) -> None:
    with pytest.raises(ConnectionFailed) as caught:
        client.deployments.predict("heart", [ROW], token=TOKEN)

    assert "cannot reach deployment 'heart' at http://127.0.0.1:9001" in caught.value.message
    assert caught.value.fix == "is it ready? lepton deployment show heart"
    assert replicas.sent == ["127.0.0.1:9001"] * 2 and plane.gets == 2


def test_a_deployment_deleted_meanwhile_is_not_found(
    client: Client, plane: Plane, replicas: Replicas
) -> None:
    with replica() as served:
        replicas.at["127.0.0.1:9001"] = forward(served)
        client.deployments.predict("heart", [ROW], token=TOKEN)
        del plane.deployments["heart"], replicas.at["127.0.0.1:9001"]

        with pytest.raises(NotFound, match="no deployment heart"):
            client.deployments.predict("heart", [ROW], token=TOKEN)


def test_a_wrong_token_is_refused_once_the_plane_says_nothing_moved(
    client: Client, plane: Plane, replicas: Replicas
) -> None:
    with replica() as served:
        replicas.at["127.0.0.1:9001"] = forward(served)

        with pytest.raises(AuthenticationError, match="does not accept this token"):
            client.deployments.predict("heart", [ROW], token="lep_abc_wrong")

    assert replicas.sent == ["127.0.0.1:9001"] and plane.gets == 2


def test_a_private_deployment_without_a_token_is_refused_before_any_call(
    client: Client, replicas: Replicas
) -> None:
    with pytest.raises(ConfigError, match="needs its inference token"):
        client.deployments.predict("heart", [ROW])

    assert replicas.sent == []


# --- what a replica answers ------------------------------------------------------------------


def test_a_full_queue_is_retried_after_the_wait_it_asks_for(
    client: Client, replicas: Replicas, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = Linear()
    with replica(model, max_queue=1) as served:
        replicas.at["127.0.0.1:9001"] = forward(served)
        model.gate.clear()
        model.entered.clear()
        busy: list[Any] = []
        holder = threading.Thread(
            target=lambda: busy.append(client.deployments.predict("heart", [ROW], token=TOKEN))
        )
        holder.start()
        assert model.entered.wait(30)

        sleeps: list[float] = []

        def wait(seconds: float) -> None:  # the queue frees while the SDK waits
            sleeps.append(seconds)
            model.gate.set()
            holder.join(30)

        monkeypatch.setattr("lepton.client.deployments._sleep", wait)
        answered = client.deployments.predict("heart", columns={"a": [-1], "b": [0]}, token=TOKEN)

    assert busy[0]["predictions"] == ["pos"] and answered["predictions"] == ["neg"]
    assert len(sleeps) == 1 and 1.0 <= sleeps[0] <= 1.25  # Retry-After: 1, and some spread


def always_overloaded(client: Client, replicas: Replicas, retry_after: str | None) -> Overloaded:
    """What ``predict`` raises in the end against a replica whose queue is always full."""
    headers = {"Retry-After": retry_after} if retry_after is not None else None
    replicas.at["127.0.0.1:9001"] = answer(503, "overloaded", headers)
    with pytest.raises(Overloaded) as caught:
        client.deployments.predict("heart", [ROW], token=TOKEN)
    return caught.value


def test_a_queue_full_through_every_retry_raises_overloaded(
    client: Client, replicas: Replicas, sleeps: list[float]
) -> None:
    error = always_overloaded(client, replicas, "2")

    assert isinstance(error, ServiceUnavailable) and error.retry_after == 2.0
    assert error.message == "replica says overloaded"
    assert len(replicas.sent) == 4 and len(sleeps) == 3  # 3 retries by default
    assert all(2.0 <= s <= 2.5 for s in sleeps)


def test_retries_are_turned_off_per_call_or_per_client(
    client: Client, replicas: Replicas, sleeps: list[float]
) -> None:
    replicas.at["127.0.0.1:9001"] = answer(503, "overloaded", {"Retry-After": "1"})

    with pytest.raises(Overloaded):
        client.deployments.predict("heart", [ROW], token=TOKEN, retries=0)
    client.deployments.retries = 1
    with pytest.raises(Overloaded):
        client.deployments.explain("heart", [ROW], token=TOKEN)

    assert len(replicas.sent) == 1 + 2 and len(sleeps) == 1


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [(None, [0.5, 1.0, 2.0]), ("0", [0.0, 0.0, 0.0]), ("1.5", [1.5, 1.5, 1.5])],
    ids=["no header: doubling from half a second", "at once", "seconds"],
)
def test_the_wait_is_what_retry_after_says(
    client: Client,
    replicas: Replicas,
    sleeps: list[float],
    retry_after: str | None,
    expected: list[float],
) -> None:
    always_overloaded(client, replicas, retry_after)

    assert len(sleeps) == 3
    for slept, asked in zip(sleeps, expected, strict=True):
        assert asked <= slept <= asked * 1.25


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("7", 7.0), ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0), ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),
     ("soon", None), ("-3", 0.0)],
)  # fmt: skip
def test_retry_after_is_read_as_seconds_or_as_an_http_date(
    header: str, seconds: float | None
) -> None:
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC)
    response = httpx.Response(503, headers={"Retry-After": header})

    assert retry_after(response, now=now) == seconds
    assert retry_after(httpx.Response(503)) is None


def test_a_wait_longer_than_the_cap_is_raised_at_once_with_what_was_asked(
    client: Client, replicas: Replicas, sleeps: list[float]
) -> None:
    error = always_overloaded(client, replicas, "120")

    assert error.retry_after == 120.0
    assert sleeps == [] and len(replicas.sent) == 1


def test_a_model_that_raises_is_a_handler_error_sent_once(
    client: Client, replicas: Replicas, sleeps: list[float]
) -> None:
    with replica() as served:
        replicas.at["127.0.0.1:9001"] = forward(served)

        with pytest.raises(HandlerError) as caught:
            client.deployments.predict("heart", [{"a": None, "b": 1}], token=TOKEN)

    assert "FloatingPointError: NaN reached the model" in caught.value.message
    assert "bug" not in str(caught.value)
    assert len(replicas.sent) == 1 and sleeps == []


def test_a_model_past_its_timeout_is_a_handler_timeout_sent_once(
    client: Client, replicas: Replicas, sleeps: list[float]
) -> None:
    model = Linear()
    with replica(model, timeout_s=0.05) as served:
        replicas.at["127.0.0.1:9001"] = forward(served)
        model.gate.clear()
        try:
            with pytest.raises(HandlerTimeout) as caught:
                client.deployments.predict("heart", [ROW], token=TOKEN)
        finally:
            model.gate.set()

    assert caught.value.status_code == 504 and "0.05 s timeout" in caught.value.message
    assert len(replicas.sent) == 1 and sleeps == []
