"""The HTTP API as a caller meets it: error bodies, workspaces, the audit log, API versions,
the SDK's exceptions, and blobs through the SDK."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

from lepton import (
    APIVersionMismatch,
    AuthenticationError,
    Client,
    Conflict,
    InvalidRequest,
    LeptonError,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
)
from lepton.schemas import API_VERSION, API_VERSION_HEADER
from lepton.settings import Settings

if TYPE_CHECKING:
    from conftest import Platform, Started


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error_of(response: httpx.Response) -> dict[str, str]:
    assert response.headers["content-type"] == "application/json"
    detail: dict[str, str] = response.json()["error"]
    assert set(detail) == {"code", "message", "fix"}
    return detail


# --- error bodies --------------------------------------------------------------------------


def test_unknown_route_is_404_json_naming_the_path(api: TestClient) -> None:
    r = api.get("/api/v1/no-such-thing")

    assert r.status_code == 404
    error = error_of(r)
    assert error["code"] == "not_found"
    assert "/api/v1/no-such-thing" in error["message"]
    assert "/api/v1/openapi.json" in error["fix"]


def test_wrong_method_is_405_json_with_allow_header(api: TestClient, admin_token: str) -> None:
    r = api.put("/api/v1/tokens", headers=bearer(admin_token))

    assert r.status_code == 405
    error = error_of(r)
    assert error["code"] == "method_not_allowed"
    assert "PUT" in error["message"] and "/api/v1/tokens" in error["message"]
    # Allow lists every method the path takes, not just the first route Starlette tried.
    assert {"GET", "POST"} <= {m.strip() for m in r.headers["allow"].split(",")}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "bot", "role": "boss"}, "'role'"),
        ({"name": "bot", "colour": "red"}, "'colour'"),
        ({"role": "viewer"}, "'name'"),
        ({"name": "has space"}, "'name'"),
        ({"name": "bot", "scope": "cluster:all"}, "'scope'"),
        ({"name": "bot", "expires_in": 0}, "'expires_in'"),
    ],
)
def test_invalid_body_is_422_naming_the_field(
    api: TestClient, admin_token: str, body: dict[str, Any], field: str
) -> None:
    r = api.post("/api/v1/tokens", json=body, headers=bearer(admin_token))

    assert r.status_code == 422
    error = error_of(r)
    assert error["code"] == "invalid_request"
    assert field in error["message"]
    assert error["fix"]


def test_invalid_query_parameter_is_422_naming_it(api: TestClient, admin_token: str) -> None:
    r = api.get("/api/v1/audit", params={"limit": "0"}, headers=bearer(admin_token))

    assert r.status_code == 422
    assert "query parameter 'limit'" in error_of(r)["message"]


def test_malformed_json_is_422_json(api: TestClient, admin_token: str) -> None:
    r = api.post(
        "/api/v1/tokens",
        content=b'{"name": ',
        headers=bearer(admin_token) | {"Content-Type": "application/json"},
    )

    assert r.status_code == 422
    assert error_of(r)["code"] == "invalid_request"


def test_role_and_scope_together_is_422_saying_pick_one(api: TestClient, admin_token: str) -> None:
    body = {"name": "bot", "role": "editor", "scope": "job:abc"}
    r = api.post("/api/v1/tokens", json=body, headers=bearer(admin_token))

    assert r.status_code == 422
    assert "either a role or a scope" in error_of(r)["message"]


def test_revoking_twice_is_409(api: TestClient, platform: Platform) -> None:
    info = platform.token_info(platform.admin, role="viewer", name="once")
    path = f"/api/v1/tokens/{info['id']}"

    assert api.delete(path, headers=bearer(platform.admin)).status_code == 200
    r = api.delete(path, headers=bearer(platform.admin))

    assert r.status_code == 409
    error = error_of(r)
    assert error["code"] == "conflict"
    assert "already revoked" in error["message"]


def test_revoked_token_stays_listed_with_include_revoked(
    api: TestClient, platform: Platform
) -> None:
    info = platform.token_info(platform.admin, role="viewer")
    api.delete(f"/api/v1/tokens/{info['id']}", headers=bearer(platform.admin))

    active = api.get("/api/v1/tokens", headers=bearer(platform.admin)).json()
    everything = api.get(
        "/api/v1/tokens", params={"include_revoked": "true"}, headers=bearer(platform.admin)
    ).json()

    assert info["id"] not in [t["id"] for t in active]
    [revoked] = [t for t in everything if t["id"] == info["id"]]
    assert revoked["revoked_at"] is not None


# --- workspaces ----------------------------------------------------------------------------


def test_default_admin_creates_a_workspace_with_a_working_admin_token(
    api: TestClient, admin_token: str
) -> None:
    r = api.post("/api/v1/workspaces", json={"name": "team-a"}, headers=bearer(admin_token))

    assert r.status_code == 201
    body = r.json()
    assert body["workspace"]["name"] == "team-a"
    token = body["admin_token"]
    assert (token["role"], token["workspace"], token["name"]) == ("admin", "team-a", "team-a-admin")

    status = api.get("/api/v1/status", headers=bearer(token["token"]))
    assert status.status_code == 200
    assert status.json()["workspace"] == "team-a"
    assert status.json()["token"]["role"] == "admin"
    made = api.post("/api/v1/tokens", json={"name": "bot"}, headers=bearer(token["token"]))
    assert made.status_code == 201
    assert made.json()["workspace"] == "team-a"


def test_only_admins_of_default_create_workspaces(api: TestClient, platform: Platform) -> None:
    team_admin = platform.workspace("team-a")
    default_editor = platform.token(platform.admin, role="editor")

    by_team_admin = api.post(
        "/api/v1/workspaces", json={"name": "team-b"}, headers=bearer(team_admin)
    )
    by_editor = api.post(
        "/api/v1/workspaces", json={"name": "team-b"}, headers=bearer(default_editor)
    )

    assert by_team_admin.status_code == 403
    error = error_of(by_team_admin)
    assert "'default'" in error["message"] and "'team-a'" in error["message"]
    assert "default" in error["fix"]
    assert by_editor.status_code == 403
    names = [
        w["name"] for w in api.get("/api/v1/workspaces", headers=bearer(platform.admin)).json()
    ]
    assert "team-b" not in names


@pytest.mark.parametrize("name", ["default", "team-a"])
def test_creating_an_existing_workspace_is_409(
    api: TestClient, platform: Platform, name: str
) -> None:
    platform.workspace("team-a")

    r = api.post("/api/v1/workspaces", json={"name": name}, headers=bearer(platform.admin))

    assert r.status_code == 409
    assert f"'{name}' already exists" in error_of(r)["message"]


@pytest.mark.parametrize("name", ["Team-A", "-team", "team_a", "", "a" * 64])
def test_invalid_workspace_name_is_422_naming_the_field(
    api: TestClient, admin_token: str, name: str
) -> None:
    r = api.post("/api/v1/workspaces", json={"name": name}, headers=bearer(admin_token))

    assert r.status_code == 422
    assert "'name'" in error_of(r)["message"]


def test_workspace_list_shows_only_what_the_token_may_see(
    api: TestClient, platform: Platform
) -> None:
    team_a = platform.workspace("team-a")
    platform.workspace("team-b")
    default_viewer = platform.token(platform.admin, role="viewer")
    team_a_viewer = platform.token(team_a, role="viewer")

    def names(token: str) -> list[str]:
        r = api.get("/api/v1/workspaces", headers=bearer(token))
        assert r.status_code == 200
        return [w["name"] for w in r.json()]

    assert names(platform.admin) == ["default", "team-a", "team-b"]
    assert names(team_a) == ["team-a"]
    assert names(team_a_viewer) == ["team-a"]
    assert names(default_viewer) == ["default"]  # running the instance needs the admin role


def test_workspace_get_hides_other_workspaces(api: TestClient, platform: Platform) -> None:
    team_a = platform.workspace("team-a")

    assert api.get("/api/v1/workspaces/team-a", headers=bearer(team_a)).status_code == 200
    assert api.get("/api/v1/workspaces/team-a", headers=bearer(platform.admin)).status_code == 200
    other = api.get("/api/v1/workspaces/default", headers=bearer(team_a))
    missing = api.get("/api/v1/workspaces/nowhere", headers=bearer(team_a))

    assert other.status_code == missing.status_code == 404
    assert "not visible" in error_of(other)["message"]


# --- audit ---------------------------------------------------------------------------------


def audit(api: TestClient, token: str, **params: Any) -> list[dict[str, Any]]:
    r = api.get("/api/v1/audit", params=params, headers=bearer(token))
    assert r.status_code == 200, r.text
    events: list[dict[str, Any]] = r.json()
    return events


def test_every_mutating_request_is_audited_including_refused_ones(
    api: TestClient, platform: Platform
) -> None:
    admin_id = platform.admin.split("_")[1]
    reader = platform.token_info(platform.admin, role="viewer", name="reader")
    created = api.post(
        "/api/v1/tokens", json={"name": "bot", "role": "editor"}, headers=bearer(platform.admin)
    ).json()
    api.post("/api/v1/tokens", json={"name": "sneaky"}, headers=bearer(reader["token"]))  # 403
    api.post("/api/v1/tokens", json={"name": "x", "role": "boss"}, headers=bearer(platform.admin))
    api.post("/api/v1/blobs", content=b"anonymous")  # 401
    api.delete(f"/api/v1/tokens/{created['id']}", headers=bearer(platform.admin))
    api.get("/api/v1/blobs", headers=bearer(platform.admin))  # reads are not audited

    rows = {
        (e["action"], e["outcome"], e["status_code"], e["actor_name"], e["method"])
        for e in audit(api, platform.admin)
    }

    assert ("token.create", "success", 201, "admin", "POST") in rows
    assert ("token.create", "denied", 403, "reader", "POST") in rows
    assert ("token.create", "rejected", 422, "admin", "POST") in rows
    assert ("blob.upload", "denied", 401, None, "POST") in rows
    assert ("token.revoke", "success", 200, "admin", "DELETE") in rows
    assert all(method != "GET" for *_, method in rows)

    events = audit(api, platform.admin)
    [create] = [
        e
        for e in events
        if e["action"] == "token.create"
        and e["status_code"] == 201
        and created["id"] in e["resource"]
    ]
    assert create["actor_token_id"] == admin_id
    [denied] = [e for e in events if e["outcome"] == "denied" and e["status_code"] == 403]
    assert denied["actor_token_id"] == reader["id"]


def test_audit_names_a_token_the_same_way_when_created_and_revoked(
    api: TestClient, platform: Platform
) -> None:
    # Someone tracing one token through the log filters on one resource name.
    info = platform.token_info(platform.admin, role="viewer")
    api.delete(f"/api/v1/tokens/{info['id']}", headers=bearer(platform.admin))

    events = audit(api, platform.admin)
    by_action = {e["action"]: e["resource"] for e in events if info["id"] in e["resource"]}

    assert by_action == {
        "token.create": f"token/{info['id']}",
        "token.revoke": f"token/{info['id']}",
    }


def test_workspace_and_blob_creation_are_audited_with_their_resource(
    api: TestClient, platform: Platform
) -> None:
    platform.workspace("team-a")
    digest = api.post("/api/v1/blobs", content=b"abc", headers=bearer(platform.admin)).json()

    resources = {e["action"]: e["resource"] for e in audit(api, platform.admin)}

    assert resources["workspace.create"] == "workspace/team-a"
    assert resources["blob.upload"] == f"blob/{digest['digest']}"


def test_audit_shows_only_the_callers_workspace(api: TestClient, platform: Platform) -> None:
    team_a = platform.workspace("team-a")
    platform.token(team_a, role="viewer", name="team-a-reader")
    platform.token(platform.admin, role="viewer", name="default-reader")
    api.post("/api/v1/blobs", content=b"anonymous")  # 401: no workspace known

    team_events = audit(api, team_a)
    default_events = audit(api, platform.admin)

    assert {e["actor_name"] for e in team_events} == {"team-a-admin"}
    assert "default-reader" not in str(team_events)
    assert "team-a-reader" not in str(default_events)
    # Failures before a workspace is known are shown to the instance's admins only.
    assert any(e["status_code"] == 401 for e in default_events)
    assert all(e["status_code"] != 401 for e in team_events)


@pytest.fixture
def timeline(
    api: TestClient, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """Audit events at two known times: a token created and a refusal early, more later."""
    early = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    late = early + timedelta(hours=1)
    # Services (the audit log among them) read the time from the context's one clock.
    ctx = api.app.state.lepton.ctx  # type: ignore[attr-defined]
    monkeypatch.setattr(ctx, "clock", lambda: early)
    reader = platform.token_info(platform.admin, role="viewer", name="reader")
    api.post("/api/v1/tokens", json={"name": "nope"}, headers=bearer(reader["token"]))
    monkeypatch.setattr(ctx, "clock", lambda: late)
    api.post("/api/v1/blobs", content=b"late blob", headers=bearer(platform.admin))
    api.post(
        "/api/v1/tokens", json={"name": "late", "role": "boss"}, headers=bearer(platform.admin)
    )
    return {"early": early, "late": late, "reader": reader}


def test_audit_filters_by_action(api: TestClient, platform: Platform, timeline: Any) -> None:
    events = audit(api, platform.admin, action="token.create")

    assert len(events) == 3
    assert {e["action"] for e in events} == {"token.create"}


@pytest.mark.parametrize("key", ["name", "id"])
def test_audit_filters_by_actor_name_or_token_id(
    api: TestClient, platform: Platform, timeline: Any, key: str
) -> None:
    events = audit(api, platform.admin, actor=timeline["reader"][key])

    assert [(e["actor_name"], e["outcome"]) for e in events] == [("reader", "denied")]


def test_audit_filters_by_outcome(api: TestClient, platform: Platform, timeline: Any) -> None:
    assert [e["status_code"] for e in audit(api, platform.admin, outcome="denied")] == [403]
    assert [e["status_code"] for e in audit(api, platform.admin, outcome="rejected")] == [422]


def test_audit_filters_by_since(api: TestClient, platform: Platform, timeline: Any) -> None:
    since = timeline["late"].isoformat()

    events = audit(api, platform.admin, since=since)

    assert sorted(e["action"] for e in events) == ["blob.upload", "token.create"]
    assert all(datetime.fromisoformat(e["time"]) >= timeline["late"] for e in events)


def test_audit_since_takes_a_naive_time_as_utc_and_refuses_numbers_and_non_dates(
    api: TestClient, platform: Platform, timeline: Any
) -> None:
    naive = timeline["late"].replace(tzinfo=None).isoformat()
    answers = [
        api.get("/api/v1/audit", params={"since": since}, headers=bearer(platform.admin))
        for since in ("0.5", "1700000000", "2030-02-30", "yesterday")
    ]

    assert sorted(e["action"] for e in audit(api, platform.admin, since=naive)) == [
        "blob.upload",
        "token.create",
    ]
    assert [a.status_code for a in answers] == [422] * 4
    assert all(a.json()["error"]["fix"] for a in answers)
    assert "not a time" in answers[2].json()["error"]["message"]


def test_an_upload_with_no_body_is_refused_and_stores_nothing(
    api: TestClient, platform: Platform
) -> None:
    answer = api.post("/api/v1/blobs", content=b"", headers=bearer(platform.admin))
    listed = api.get("/api/v1/blobs", headers=bearer(platform.admin)).json()

    assert answer.status_code == 422
    assert answer.json()["error"]["message"].startswith("the request body is empty")
    assert listed == []


def test_audit_is_newest_first_and_limited(
    api: TestClient, platform: Platform, timeline: Any
) -> None:
    everything = audit(api, platform.admin)
    newest = audit(api, platform.admin, limit=2)

    assert [e["id"] for e in everything] == sorted((e["id"] for e in everything), reverse=True)
    assert newest == everything[:2]


@pytest.mark.parametrize("role", ["viewer", "editor"])
def test_audit_is_for_admins_only(api: TestClient, platform: Platform, role: str) -> None:
    token = platform.token(platform.admin, role=role)

    r = api.get("/api/v1/audit", headers=bearer(token))

    assert r.status_code == 403
    assert "admin role" in error_of(r)["message"]


def test_audit_rejects_an_unknown_outcome(api: TestClient, admin_token: str) -> None:
    r = api.get("/api/v1/audit", params={"outcome": "maybe"}, headers=bearer(admin_token))

    assert r.status_code == 422
    assert "query parameter 'outcome'" in error_of(r)["message"]


# --- API version ---------------------------------------------------------------------------


def test_other_api_version_is_400_api_version_mismatch(api: TestClient, admin_token: str) -> None:
    headers = bearer(admin_token) | {API_VERSION_HEADER: "999"}

    r = api.get("/api/v1/workspaces", headers=headers)

    assert r.status_code == 400
    error = error_of(r)
    assert error["code"] == "api_version_mismatch"
    assert "999" in error["message"] and f"version {API_VERSION}" in error["message"]
    assert "lepton package" in error["fix"]


def test_same_api_version_header_is_accepted(api: TestClient, admin_token: str) -> None:
    headers = bearer(admin_token) | {API_VERSION_HEADER: str(API_VERSION)}

    assert api.get("/api/v1/workspaces", headers=headers).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "authorised", "status"),
    [
        ("GET", "/healthz", False, 200),
        ("GET", "/api/v1/openapi.json", False, 200),
        ("GET", "/api/v1/status", True, 200),
        ("GET", "/api/v1/status", False, 401),
        ("GET", "/api/v1/nowhere", True, 404),
        ("PUT", "/api/v1/tokens", True, 405),
        ("POST", "/api/v1/tokens", True, 422),
        ("POST", "/api/v1/blobs", True, 201),
    ],
)
def test_every_answer_names_the_api_version(
    api: TestClient, admin_token: str, method: str, path: str, authorised: bool, status: int
) -> None:
    headers = bearer(admin_token) if authorised else {}

    r = api.request(method, path, headers=headers, content=b"x" if path.endswith("blobs") else None)

    assert r.status_code == status
    assert r.headers[API_VERSION_HEADER] == str(API_VERSION)


def test_streamed_download_names_the_api_version(api: TestClient, admin_token: str) -> None:
    digest = api.post("/api/v1/blobs", content=b"x", headers=bearer(admin_token)).json()["digest"]

    r = api.get(f"/api/v1/blobs/{digest}", headers=bearer(admin_token))

    assert r.status_code == 200
    assert r.headers[API_VERSION_HEADER] == str(API_VERSION)


def test_version_mismatch_answer_names_the_servers_version(api: TestClient) -> None:
    # The refusal is exactly the answer where a client most needs to learn the server's version.
    r = api.get("/healthz", headers={API_VERSION_HEADER: "999"})

    assert r.status_code == 400
    assert r.headers.get(API_VERSION_HEADER) == str(API_VERSION)


# --- public endpoints ----------------------------------------------------------------------


def test_healthz_needs_no_token(api: TestClient) -> None:
    r = api.get("/healthz")

    assert r.status_code == 200
    assert r.json() == {"status": "ok", "api_version": API_VERSION}


def test_openapi_document_and_docs_are_public(api: TestClient) -> None:
    # The schema is what error messages point callers to, so it is readable without a token.
    doc = api.get("/api/v1/openapi.json")
    docs = api.get("/api/v1/docs")

    assert doc.status_code == 200
    assert "/api/v1/tokens" in doc.json()["paths"]
    assert docs.status_code == 200
    assert "/api/v1/openapi.json" in docs.text


# --- the SDK -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SdkCase:
    """An SDK call that fails, and the same request sent by hand."""

    exc: type[LeptonError]
    caller: str  # admin, viewer, bogus or none
    call: Callable[[Client], object]
    method: str
    path: str
    body: dict[str, Any] | None = None


SDK_CASES = [
    SdkCase(NotFound, "admin", lambda c: c.tokens.get("nope"), "GET", "/api/v1/tokens/nope"),
    SdkCase(
        PermissionDenied,
        "viewer",
        lambda c: c.tokens.create("bot"),
        "POST",
        "/api/v1/tokens",
        {"name": "bot"},
    ),
    SdkCase(
        AuthenticationError, "bogus", lambda c: c.workspaces.list(), "GET", "/api/v1/workspaces"
    ),
    SdkCase(
        AuthenticationError, "none", lambda c: c.workspaces.list(), "GET", "/api/v1/workspaces"
    ),
    SdkCase(
        Conflict,
        "admin",
        lambda c: c.workspaces.create("default"),
        "POST",
        "/api/v1/workspaces",
        {"name": "default"},
    ),
    SdkCase(
        InvalidRequest,
        "admin",
        lambda c: c.tokens.create("bot", role="editor", scope="job:abc"),
        "POST",
        "/api/v1/tokens",
        {"name": "bot", "role": "editor", "scope": "job:abc"},
    ),
]


@pytest.mark.parametrize("case", SDK_CASES, ids=[f"{c.exc.__name__}-{c.caller}" for c in SDK_CASES])
def test_sdk_raises_the_matching_exception_with_the_servers_message_and_fix(
    api: TestClient, platform: Platform, case: SdkCase
) -> None:
    token = {
        "admin": lambda: platform.admin,
        "viewer": lambda: platform.token(platform.admin, role="viewer", name="reader"),
        "bogus": lambda: "lep_0000000000000000_bogus",
        "none": lambda: None,
    }[case.caller]()

    with pytest.raises(case.exc) as caught:
        case.call(platform.client(token))

    by_hand = api.request(
        case.method, case.path, json=case.body, headers=bearer(token) if token else {}
    )
    error = error_of(by_hand)
    assert type(caught.value) is case.exc
    assert (caught.value.code, caught.value.message, caught.value.fix) == (
        error["code"],
        error["message"],
        error["fix"],
    )
    assert error["fix"] in str(caught.value)


def test_sdk_sends_its_api_version_and_token(settings: Settings) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200,
            json={"status": "ok", "api_version": API_VERSION},
            headers={API_VERSION_HEADER: "1"},
        )

    with httpx.Client(transport=httpx.MockTransport(handler)) as http:
        Client(url="http://lepton.test", token="lep_a_b", http=http, settings=settings).health()

    assert seen[0].headers[API_VERSION_HEADER] == str(API_VERSION)
    assert seen[0].headers["Authorization"] == "Bearer lep_a_b"


@pytest.mark.parametrize(
    ("call", "said"),
    [
        (
            lambda c: c.tokens.create("x", expires_in=8_639_999_913_600),
            "invalid token: 'expires_in'",
        ),
        (lambda c: c.workspaces.create("Team A"), "invalid workspace name: 'name'"),
        (lambda c: c.datasets.split("heart", train=2), "invalid split: 'train'"),
        (lambda c: c.datasets.transform("heart", [{"op": "nope"}]), "invalid transform"),
    ],
    ids=["token-expiry", "workspace-name", "split-share", "transform-op"],
)
def test_sdk_refuses_a_body_it_builds_before_sending_it(
    settings: Settings, call: Callable[[Client], object], said: str
) -> None:
    # A pydantic ValidationError is not a LeptonError: it reached the CLI as a traceback.
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"sent {request.method} {request.url}")

    with httpx.Client(transport=httpx.MockTransport(handler)) as http:
        client = Client(url="http://lepton.test", token="lep_a_b", http=http, settings=settings)
        with pytest.raises(InvalidRequest) as caught:
            call(client)

    assert caught.value.message.startswith(said)
    assert caught.value.fix


def test_sdk_raises_api_version_mismatch_when_the_server_speaks_another(
    settings: Settings,
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        other = str(API_VERSION + 1)
        return httpx.Response(
            200,
            json={"status": "ok", "api_version": API_VERSION + 1},
            headers={API_VERSION_HEADER: other},
        )

    with httpx.Client(transport=httpx.MockTransport(handler)) as http:
        client = Client(url="http://lepton.test", token="lep_a_b", http=http, settings=settings)
        with pytest.raises(APIVersionMismatch) as caught:
            client.health()

    assert f"version {API_VERSION + 1}" in caught.value.message
    assert "install the lepton package" in caught.value.fix


def test_sdk_turns_the_servers_version_refusal_into_api_version_mismatch(
    api: TestClient, platform: Platform
) -> None:
    client = platform.client(platform.admin)

    with pytest.raises(APIVersionMismatch) as caught:
        client.request("GET", "/api/v1/status", headers={API_VERSION_HEADER: "999"})

    assert "999" in caught.value.message


# --- blobs through the SDK -----------------------------------------------------------------


def test_blob_round_trip_through_the_sdk(platform: Platform, tmp_path: Path) -> None:
    client = platform.client(platform.admin)
    data = os.urandom(2 * 1024 * 1024 + 123)  # past the 1 MiB chunk, so several chunks move

    blob = client.blobs.upload(data)

    assert blob.digest == hashlib.sha256(data).hexdigest()
    assert blob.size == len(data)
    assert [b.digest for b in client.blobs.list()] == [blob.digest]
    assert client.blobs.read(blob.digest) == data
    target = client.blobs.download(blob.digest, tmp_path / "out.bin")
    assert target.read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "out.bin"]  # no temp file left


def test_uploading_the_same_content_again_returns_the_same_blob(
    platform: Platform, tmp_path: Path
) -> None:
    client = platform.client(platform.admin)
    data = b"the same bytes " * 1000
    source = tmp_path / "data.bin"
    source.write_bytes(data)

    first = client.blobs.upload(data)
    from_file = client.blobs.upload(source)
    from_chunks = client.blobs.upload(iter([data[:100], data[100:]]))

    assert first == from_file == from_chunks
    assert len(client.blobs.list()) == 1


def test_download_of_unknown_or_malformed_digest(platform: Platform, tmp_path: Path) -> None:
    client = platform.client(platform.admin)

    with pytest.raises(NotFound, match="does not exist in workspace 'default'"):
        client.blobs.read("0" * 64)
    with pytest.raises(InvalidRequest, match="not a blob digest"):
        client.blobs.read("not-a-digest")
    with pytest.raises(NotFound):
        client.blobs.download("0" * 64, tmp_path / "never.bin")
    assert not (tmp_path / "never.bin").exists()


@pytest.fixture
def small_limit(
    make_app: Callable[[Settings], FastAPI], settings: Settings, started: Started
) -> Iterator[tuple[TestClient, str, Settings]]:
    """A server that takes uploads of at most 1000 bytes."""
    limited = replace(settings, max_upload_bytes=1000)
    with TestClient(make_app(limited)) as tc:
        assert started.first is not None
        yield tc, started.first.token, limited


def stored_files(settings: Settings) -> list[Path]:
    return sorted(p for p in Path(settings.storage).rglob("*") if p.is_file())


@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
def test_upload_over_the_limit_is_413_naming_it_and_stores_nothing(
    small_limit: tuple[TestClient, str, Settings], streamed: bool
) -> None:
    tc, token, limited = small_limit
    data = b"x" * 1001
    content: bytes | Iterator[bytes] = iter([data[:600], data[600:]]) if streamed else data

    r = tc.post("/api/v1/blobs", content=content, headers=bearer(token))

    assert r.status_code == 413
    error = error_of(r)
    assert error["code"] == "payload_too_large"
    assert "1000 bytes" in error["message"]
    assert "LEPTON_MAX_UPLOAD_BYTES" in error["fix"]
    assert tc.get("/api/v1/blobs", headers=bearer(token)).json() == []
    assert stored_files(limited) == []


def test_upload_at_the_limit_is_accepted(small_limit: tuple[TestClient, str, Settings]) -> None:
    tc, token, limited = small_limit

    r = tc.post("/api/v1/blobs", content=b"y" * 1000, headers=bearer(token))

    assert r.status_code == 201
    assert r.json()["size"] == 1000
    assert len(stored_files(limited)) == 1


def test_sdk_raises_payload_too_large(small_limit: tuple[TestClient, str, Settings]) -> None:
    tc, token, limited = small_limit
    client = Client(url=str(tc.base_url), token=token, http=tc, settings=limited)

    with pytest.raises(PayloadTooLarge, match="1000 bytes"):
        client.blobs.upload(b"z" * 5000)
