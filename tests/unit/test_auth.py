"""Bearer tokens: what a caller is told when a token is missing or bad, roles, narrow scopes,
and that secrets are never stored or shown again."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from fastapi import APIRouter, Depends, FastAPI
from sqlalchemy import select
from starlette.testclient import TestClient

from lepton.control.plane import Control
from lepton.control.tokens import hash_secret
from lepton.server.auth import Principal, require
from lepton.store.models import TokenRow, utcnow

if TYPE_CHECKING:
    from conftest import Platform


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error_of(response: Any) -> dict[str, str]:
    detail: dict[str, str] = response.json()["error"]
    assert set(detail) == {"code", "message", "fix"}
    return detail


# --- 401: the message says what is wrong with the token -------------------------------------


def test_missing_token_is_401_saying_a_token_is_needed(api: TestClient) -> None:
    r = api.get("/api/v1/workspaces")

    assert r.status_code == 401
    error = error_of(r)
    assert error["code"] == "unauthenticated"
    assert "needs a bearer token" in error["message"]
    assert "Authorization: Bearer" in error["fix"]


def test_other_auth_scheme_counts_as_no_bearer_token(api: TestClient) -> None:
    r = api.get("/api/v1/workspaces", headers={"Authorization": "Basic dXNlcjpwYXNz"})

    assert r.status_code == 401
    assert "needs a bearer token" in error_of(r)["message"]


@pytest.mark.parametrize("token", ["garbage", "lep_only-two", "ghp_abc_def"])
def test_malformed_token_is_401_naming_the_expected_shape(api: TestClient, token: str) -> None:
    r = api.get("/api/v1/workspaces", headers=bearer(token))

    assert r.status_code == 401
    assert "lep_<id>_<secret>" in error_of(r)["message"]


def test_unknown_token_is_401(api: TestClient) -> None:
    r = api.get("/api/v1/workspaces", headers=bearer("lep_0123456789abcdef_not-a-secret"))

    assert r.status_code == 401
    assert "not known" in error_of(r)["message"]


def test_known_id_with_wrong_secret_is_just_unknown(api: TestClient, admin_token: str) -> None:
    token_id = admin_token.split("_")[1]

    r = api.get("/api/v1/workspaces", headers=bearer(f"lep_{token_id}_wrong-secret"))

    assert r.status_code == 401
    message = error_of(r)["message"]
    assert "not known" in message
    assert "admin" not in message  # a guessed id learns nothing about the token's name


def test_revoked_token_is_401_saying_revoked(api: TestClient, platform: Platform) -> None:
    info = platform.token_info(platform.admin, role="editor", name="ci-bot")
    assert api.get("/api/v1/blobs", headers=bearer(info["token"])).status_code == 200

    revoke = api.delete(f"/api/v1/tokens/{info['id']}", headers=bearer(platform.admin))
    assert revoke.status_code == 200
    r = api.get("/api/v1/blobs", headers=bearer(info["token"]))

    assert r.status_code == 401
    error = error_of(r)
    assert "revoked" in error["message"]
    assert "ci-bot" in error["message"]
    assert "new token" in error["fix"]


def test_revoked_status_is_told_only_to_the_holder_of_the_secret(
    api: TestClient, platform: Platform
) -> None:
    info = platform.token_info(platform.admin, role="viewer")
    api.delete(f"/api/v1/tokens/{info['id']}", headers=bearer(platform.admin))

    r = api.get("/api/v1/blobs", headers=bearer(f"lep_{info['id']}_guess"))

    assert r.status_code == 401
    assert "revoked" not in error_of(r)["message"]


def _clock_at(monkeypatch: pytest.MonkeyPatch, api: TestClient, moment: datetime) -> None:
    # The services read "now" from the context's one clock; moving it avoids sleeping.
    ctx = api.app.state.lepton.ctx  # type: ignore[attr-defined]
    monkeypatch.setattr(ctx, "clock", lambda: moment)


def test_token_works_until_it_expires_then_is_401_saying_expired(
    api: TestClient, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = utcnow()
    info = platform.token_info(platform.admin, role="viewer", expires_in=3600, name="temp")
    assert info["expires_at"] is not None

    _clock_at(monkeypatch, api, created + timedelta(seconds=3600 - 60))
    assert api.get("/api/v1/blobs", headers=bearer(info["token"])).status_code == 200

    _clock_at(monkeypatch, api, created + timedelta(seconds=3600 + 60))
    r = api.get("/api/v1/blobs", headers=bearer(info["token"]))

    assert r.status_code == 401
    error = error_of(r)
    assert "expired" in error["message"]
    assert "temp" in error["message"]
    assert "new token" in error["fix"]


def test_token_without_expiry_keeps_working_years_later(
    api: TestClient, admin_token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _clock_at(monkeypatch, api, utcnow() + timedelta(days=3650))

    assert api.get("/api/v1/blobs", headers=bearer(admin_token)).status_code == 200


# --- 403: roles ----------------------------------------------------------------------------


def test_viewer_reads_but_every_write_is_403_naming_the_needed_role(
    api: TestClient, platform: Platform
) -> None:
    viewer = platform.token(platform.admin, role="viewer")

    assert api.get("/api/v1/blobs", headers=bearer(viewer)).status_code == 200
    assert api.get("/api/v1/workspaces", headers=bearer(viewer)).status_code == 200

    upload = api.post("/api/v1/blobs", content=b"data", headers=bearer(viewer))
    assert upload.status_code == 403
    error = error_of(upload)
    assert error["code"] == "permission_denied"
    assert "editor role" in error["message"]
    assert "--role editor" in error["fix"]

    create = api.post("/api/v1/tokens", json={"name": "x"}, headers=bearer(viewer))
    assert create.status_code == 403
    assert "admin role" in error_of(create)["message"]


def test_editor_uploads_blobs_but_cannot_manage_tokens_or_read_audit(
    api: TestClient, platform: Platform
) -> None:
    editor = platform.token(platform.admin, role="editor")

    assert api.post("/api/v1/blobs", content=b"data", headers=bearer(editor)).status_code == 201

    for method, path in [
        ("POST", "/api/v1/tokens"),
        ("GET", "/api/v1/tokens"),
        ("GET", "/api/v1/audit"),
    ]:
        body = {"name": "x"} if method == "POST" else None
        r = api.request(method, path, json=body, headers=bearer(editor))
        assert r.status_code == 403, (method, path, r.text)
        assert "admin role" in error_of(r)["message"]


def test_a_token_created_without_role_or_scope_is_a_viewer(
    api: TestClient, platform: Platform
) -> None:
    info = platform.token_info(platform.admin, name="plain")

    assert info["role"] == "viewer"
    assert info["scope"] is None
    assert api.post("/api/v1/blobs", content=b"x", headers=bearer(info["token"])).status_code == 403


# --- narrow scopes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/blobs"),
        ("POST", "/api/v1/blobs"),
        ("GET", "/api/v1/workspaces"),
        ("GET", "/api/v1/workspaces/default"),
        ("GET", "/api/v1/tokens"),
        ("GET", "/api/v1/audit"),
    ],
)
def test_scoped_token_is_refused_on_workspace_routes(
    api: TestClient, platform: Platform, method: str, path: str
) -> None:
    scoped = platform.token(platform.admin, scope="job:abc")

    r = api.request(method, path, headers=bearer(scoped))

    assert r.status_code == 403
    assert "job:abc" in error_of(r)["message"]


def test_scoped_token_may_ask_for_status(api: TestClient, platform: Platform) -> None:
    scoped = platform.token(platform.admin, scope="job:abc", name="trainer")

    r = api.get("/api/v1/status", headers=bearer(scoped))

    assert r.status_code == 200
    body = r.json()
    assert body["workspace"] == "default"
    assert body["token"]["name"] == "trainer"
    assert body["token"]["scope"] == "job:abc"
    assert body["token"]["role"] is None


def _mount_job_route(app: FastAPI) -> None:
    # A route of its own (not the real jobs router): only the dependency under test guards it.
    router = APIRouter()

    @router.get("/api/v1/scope-probe/jobs/{job_id}")
    def get_job(
        job_id: str, principal: Principal = Depends(require("read", scope="job"))
    ) -> dict[str, str]:
        return {"job": job_id, "caller": principal.name}

    app.include_router(router)


@pytest.mark.parametrize(
    ("token_kind", "job", "status"),
    [
        ("job:abc", "abc", 200),
        ("job:abc", "xyz", 403),
        ("job:abc", "abcd", 403),  # a prefix match would let job:abc into job abcd
        ("deployment:abc", "abc", 403),
        ("viewer", "xyz", 200),  # a workspace role reads every job
    ],
)
def test_scope_dependency_admits_a_narrow_token_only_for_its_own_resource(
    app: FastAPI, api: TestClient, platform: Platform, token_kind: str, job: str, status: int
) -> None:
    _mount_job_route(app)
    kind = {"role": token_kind} if token_kind == "viewer" else {"scope": token_kind}
    token = platform.token(platform.admin, name="caller", **kind)

    r = api.get(f"/api/v1/scope-probe/jobs/{job}", headers=bearer(token))

    assert r.status_code == status, r.text
    if status == 200:
        assert r.json() == {"job": job, "caller": "caller"}
    else:
        assert "viewer role" in error_of(r)["message"]


# --- secrets -------------------------------------------------------------------------------


def test_token_secret_is_stored_only_as_its_sha256(
    app: FastAPI, api: TestClient, platform: Platform
) -> None:
    info = platform.token_info(platform.admin, role="editor")
    prefix, token_id, secret = info["token"].split("_", 2)
    assert (prefix, token_id) == ("lep", info["id"])

    state: Control = app.state.lepton
    with state.ctx.sessions() as session:
        table = TokenRow.__table__
        stored = dict(session.execute(select(table).where(table.c.id == token_id)).one()._mapping)

    assert stored["secret_hash"] == hash_secret(secret)
    assert all(secret not in str(value) for value in stored.values())


def test_secret_appears_in_the_create_answer_only(api: TestClient, platform: Platform) -> None:
    info = platform.token_info(platform.admin, role="viewer")
    admin = bearer(platform.admin)

    listed = api.get("/api/v1/tokens", headers=admin)
    shown = api.get(f"/api/v1/tokens/{info['id']}", headers=admin)
    revoked = api.delete(f"/api/v1/tokens/{info['id']}", headers=admin)
    listed_all = api.get("/api/v1/tokens", params={"include_revoked": "true"}, headers=admin)

    assert [r.status_code for r in (listed, shown, revoked, listed_all)] == [200] * 4
    assert info["id"] in listed.text and info["id"] in listed_all.text
    for r in (listed, shown, revoked, listed_all):
        assert info["token"] not in r.text
        assert info["token"].split("_", 2)[2] not in r.text
    assert "token" not in shown.json()
    assert all("token" not in item for item in listed.json())
