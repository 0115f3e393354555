"""A client with ``reconnect_s`` waits out a control plane that is restarting: a refused
connection is tried again (nothing reached a server), a cut read too, but never a write whose
answer was lost (it may have been applied)."""

from __future__ import annotations

import httpx
import pytest

from lepton.client import Client
from lepton.errors import ConnectionFailed
from lepton.schemas import API_VERSION, API_VERSION_HEADER


def flaky(failures: list[type[httpx.TransportError]]) -> tuple[httpx.Client, list[str]]:
    """Raises each of ``failures`` in turn, then answers 200."""
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        if failures:
            raise failures.pop(0)("down", request=request)
        return httpx.Response(
            200, json={"ok": True}, headers={API_VERSION_HEADER: str(API_VERSION)}
        )

    return httpx.Client(transport=httpx.MockTransport(handle), base_url="http://cp"), seen


def client(http: httpx.Client, reconnect_s: float) -> Client:
    return Client("http://cp", "t", http=http, reconnect_s=reconnect_s)


def test_refused_connections_are_tried_again_for_any_method(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("time.sleep", lambda s: None)
    http, seen = flaky([httpx.ConnectError, httpx.ConnectError, httpx.ConnectError])

    answer = client(http, 60).request("POST", "/api/v1/jobs/j/finish", json={})

    assert answer.json() == {"ok": True}
    assert seen == ["POST"] * 4


def test_a_cut_answer_is_read_again_but_a_write_is_not_sent_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("time.sleep", lambda s: None)
    http, seen = flaky([httpx.ReadError])
    assert client(http, 60).request("GET", "/api/v1/jobs/j").status_code == 200
    assert seen == ["GET", "GET"]

    http, seen = flaky([httpx.ReadError])
    with pytest.raises(ConnectionFailed):
        client(http, 60).request("POST", "/api/v1/jobs/j/model", json={})
    assert seen == ["POST"]

    # A write marked repeatable (a metrics batch: stored twice at worst) is sent again.
    http, seen = flaky([httpx.ReadError])
    answer = client(http, 60).request("POST", "/api/v1/jobs/j/metrics", json={}, repeatable=True)
    assert answer.status_code == 200 and seen == ["POST", "POST"]


def test_without_reconnect_the_first_failure_raises_and_the_wait_is_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    http, seen = flaky([httpx.ConnectError])
    with pytest.raises(ConnectionFailed, match="cannot reach the Lepton server"):
        client(http, 0).request("GET", "/healthz")
    assert seen == ["GET"]

    clock = [0.0]
    monkeypatch.setattr("time.monotonic", lambda: clock[0])
    monkeypatch.setattr("time.sleep", lambda s: clock.__setitem__(0, clock[0] + s))
    http, seen = flaky([httpx.ConnectError] * 100)
    with pytest.raises(ConnectionFailed):
        client(http, 20).request("GET", "/healthz")
    assert 4 <= len(seen) <= 10  # 0.25 + 0.5 + 1 + 2 + 4 + 5 + 5 ... up to 20 s of waiting
    assert clock[0] <= 20
