"""Deployments and photons over the API, in-process: validation, the inference token's life,
the public flag, updates, deletion, photon packages. No replica starts here (the app runs no
supervisor); ``test_deployments_supervisor.py`` drives the supervisor against a fake executor.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from lepton import Client
from lepton.control.plane import Control
from lepton.errors import AuthenticationError, Conflict, InvalidRequest, NotFound

if TYPE_CHECKING:
    from conftest import Platform, Started


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def register_model(client: Client, name: str = "heart", *, algorithm: str = "logistic") -> str:
    """A registered version whose artifact is a config file: enough to deploy and unpack."""
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w") as archive:
        archive.writestr("config.json", json.dumps({"algorithm": algorithm}))
    blob = client.blobs.upload(packed.getvalue())
    body = {
        "artifact_digest": blob.digest,
        "flavour": "sklearn",
        "algorithm": algorithm,
        "task": "classification",
        "signature": {"inputs": [{"name": "x", "dtype": "float64"}], "outputs": {}},
    }
    data = client.request("POST", f"/api/v1/models/{name}/versions", json=body).json()
    return str(data["ref"])


def photon_zip(sources: dict[str, bytes | str] | None = None, **manifest: Any) -> bytes:
    """A package as ``lepton.photon.package.build_package`` lays it out."""
    manifest.setdefault("name", "echo")
    manifest.setdefault("entry", {"file": "echo.py", "class": "Echo"})
    files = {"echo.py": "class Echo:\n    pass\n", **(sources or {})}
    manifest.setdefault(
        "files",
        [
            {"path": name, "sha256": hashlib.sha256(_bytes(data)).hexdigest()}
            for name, data in files.items()
        ],
    )
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w") as archive:  # fixed times: same content, same bytes
        archive.writestr(zipfile.ZipInfo("manifest.json", _DATE), json.dumps(manifest))
        for name, data in files.items():
            archive.writestr(zipfile.ZipInfo(name, _DATE), data)
    return packed.getvalue()


_DATE = (2020, 1, 1, 0, 0, 0)


def _bytes(data: bytes | str) -> bytes:
    return data.encode() if isinstance(data, str) else data


def push_photon(client: Client, data: bytes, name: str | None = None) -> Any:
    return client.request("POST", "/api/v1/photons", content=data, params={"name": name})


@pytest.fixture
def state(platform: Platform, started: Started) -> Control:
    assert started.state is not None
    return started.state


@pytest.fixture
def client(platform: Platform) -> Client:
    return platform.client(platform.admin)


@pytest.fixture
def heart(client: Client) -> str:
    return register_model(client)


@pytest.fixture(scope="module")
def shared(
    tmp_path_factory: pytest.TempPathFactory, platform_class: type[Platform]
) -> Iterator[Platform]:
    """One app for the checks that store nothing (a fresh app per case costs ~0.4 s)."""
    from starlette.testclient import TestClient

    from lepton.control.workspaces import FirstStart
    from lepton.server.app import create_app
    from lepton.settings import Settings

    tokens: list[str] = []

    def on_start(state: object, first: FirstStart | None) -> None:
        if first is not None:
            tokens.append(first.token)

    home = tmp_path_factory.mktemp("deployments") / "home"
    with TestClient(create_app(Settings(home=home), on_start=on_start, run_jobs=False)) as api:
        platform = platform_class(api=api, admin=tokens[0])
        register_model(platform.client(platform.admin))
        yield platform


# --- create: the token, the public flag, the checks -------------------------------------------


def test_creating_a_deployment_mints_a_token_scoped_to_it_shown_once(
    client: Client, heart: str, platform: Platform
) -> None:
    created = client.deployments.create("heart", replicas=2, wait=False)

    assert created.name == "heart" and created.model == "heart@1" and created.replicas == 2
    assert created.public is False and created.token is not None
    assert created.url.startswith("http://127.0.0.1:")
    token = client.tokens.get(created.token_id or "")
    assert token.scope == f"deployment:{created.id}" and token.role is None
    # The secret is in the creation answer only.
    again = platform.api.get("/api/v1/deployments/heart", headers=bearer(platform.admin))
    assert created.token not in again.text and "token" not in again.json()
    # A deployment token is for the replicas: it cannot manage the platform.
    r = platform.api.get("/api/v1/deployments", headers=bearer(created.token))
    assert r.status_code == 403


def test_a_public_deployment_has_no_token_and_says_so(client: Client, heart: str) -> None:
    created = client.deployments.create("heart", public=True, wait=False)

    assert created.public is True and created.token is None and created.token_id is None
    assert client.deployments.get("heart").public is True


def test_a_deployment_follows_an_alias_to_its_version(client: Client, heart: str) -> None:
    register_model(client)  # heart@2
    client.models.alias("heart@1", "production")

    created = client.deployments.create("heart@production", wait=False)

    assert (created.model, created.requested) == ("heart@1", "heart@production")


def test_the_name_defaults_to_the_models_made_fit_for_a_url(client: Client) -> None:
    register_model(client, "heart_v2.small")

    assert client.deployments.create("heart_v2.small", wait=False).name == "heart-v2-small"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": "heart", "replicas": 0}, "replicas"),
        ({"model": "heart", "replicas": 1000}, "replicas"),
        ({"model": "heart", "max_batch_size": 0}, "max_batch_size"),
        ({"model": "heart", "max_wait_ms": -1}, "max_wait_ms"),
        ({"model": "heart", "timeout_s": 0}, "timeout_s"),
        ({"model": "heart", "name": "Not A Name"}, "name"),
        ({"model": "heart", "replica": 2}, "replica"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(
    shared: Platform, body: dict[str, Any], field: str
) -> None:
    r = shared.api.post("/api/v1/deployments", json=body, headers=bearer(shared.admin))

    assert r.status_code == 422, r.text
    assert field in r.json()["error"]["message"]


def test_a_model_and_a_photon_at_once_or_neither_is_refused(client: Client, heart: str) -> None:
    with pytest.raises(InvalidRequest, match="both were given"):
        client.deployments.create("heart", photon="echo", wait=False)
    with pytest.raises(InvalidRequest, match="neither was given"):
        client.request("POST", "/api/v1/deployments", json={})


def test_an_unknown_model_or_version_is_not_found(client: Client, heart: str) -> None:
    with pytest.raises(NotFound, match="model 'lung'"):
        client.deployments.create("lung", wait=False)
    with pytest.raises(NotFound, match="no version 7"):
        client.deployments.create("heart@7", wait=False)


def test_a_taken_name_is_a_conflict_naming_what_it_serves(client: Client, heart: str) -> None:
    client.deployments.create("heart", wait=False)

    with pytest.raises(Conflict, match=r"already exists \(serving heart\)") as caught:
        client.deployments.create("heart@1", wait=False)
    assert "lepton deployment update heart" in caught.value.fix


# --- update, delete, logs ---------------------------------------------------------------------


def test_scaling_keeps_the_generation_and_an_update_bumps_it(client: Client, heart: str) -> None:
    client.deployments.create("heart", wait=False)
    register_model(client)  # heart@2

    scaled = client.deployments.scale("heart", 3)
    assert (scaled.replicas, scaled.generation) == (3, 1)

    updated = client.deployments.update("heart", model="heart@2", max_batch_size=8)
    assert (updated.model, updated.max_batch_size, updated.generation) == ("heart@2", 8, 2)

    same = client.deployments.update("heart", model="heart@2")
    assert same.generation == 2  # nothing to roll


def test_an_update_that_changes_nothing_is_refused(client: Client, heart: str) -> None:
    client.deployments.create("heart", wait=False)

    with pytest.raises(InvalidRequest, match="changes nothing"):
        client.request("PATCH", "/api/v1/deployments/heart", json={})


def test_deleting_revokes_the_token_at_once(client: Client, heart: str, platform: Platform) -> None:
    created = client.deployments.create("heart", wait=False)
    assert created.token is not None

    gone = client.deployments.delete("heart", wait=False)

    assert gone.state == "deleting"
    with pytest.raises(AuthenticationError, match="revoked"):
        platform.client(created.token).status()
    with pytest.raises(Conflict, match="being deleted"):
        client.deployments.create("heart", wait=False)


def test_logs_are_read_from_an_offset(client: Client, heart: str, state: Control) -> None:
    from lepton.control.workdir import deployment_log

    created = client.deployments.create("heart", wait=False)
    path = deployment_log(state.ctx.settings.home, created.id)
    path.parent.mkdir(parents=True)
    path.write_text("[r1] loading\n[r1] ready http://127.0.0.1:1\n")

    first = client.deployments.logs("heart", offset=0)
    assert first.text.endswith("ready http://127.0.0.1:1\n") and not first.complete
    assert client.deployments.logs("heart", offset=first.offset).text == ""


# --- photons ------------------------------------------------------------------------------------


def test_a_photon_is_stored_once_per_content_and_numbered_per_name(client: Client) -> None:
    first = client.photons.push_bytes(photon_zip())
    again = client.photons.push_bytes(photon_zip())
    changed = client.photons.push_bytes(photon_zip({"echo.py": "class Echo:\n    x = 1\n"}))

    assert (first.ref, again.ref, changed.ref) == ("echo@1", "echo@1", "echo@2")
    assert first.entry == "echo.py:Echo" and first.manifest["name"] == "echo"
    assert [p.ref for p in client.photons.list()] == ["echo@2", "echo@1"]
    assert client.photons.get("echo").version == 2
    assert client.photons.get(first.digest).ref == "echo@1"
    # The entry may also be written as one string.
    assert client.photons.push_bytes(photon_zip(entry="echo.py:Echo")).entry == "echo.py:Echo"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not a zip", "not a readable zip"),
        (photon_zip({"weights.pkl": b"\x80\x04K\x01."}), "'weights.pkl' is a pickle"),
        (photon_zip({"weights.bin": b"\x80\x05K\x01."}), "'weights.bin' is a pickle"),
        (photon_zip(entry="Echo"), "expected 'file.py:Class'"),
        (photon_zip(entry="missing.py:Echo"), "entry file 'missing.py' is not in the package"),
        (photon_zip(entry="echo.py:Other"), "defines no class 'Other'; it defines: Echo"),
        (photon_zip({"echo.py": "class Echo(:\n"}), "does not parse"),
        (
            photon_zip(files=[{"path": "echo.py", "sha256": "0" * 64}]),
            "lists 'echo.py', which is missing from the package or does not match",
        ),
    ],
)
def test_a_bad_photon_package_is_refused_and_stores_nothing(
    shared: Platform, data: bytes, message: str
) -> None:
    client = shared.client(shared.admin)
    blobs = client.blobs.list()

    with pytest.raises(InvalidRequest, match=message):
        client.photons.push_bytes(data)

    assert client.photons.list() == [] and client.blobs.list() == blobs


def test_a_package_without_a_manifest_is_refused(client: Client) -> None:
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w") as archive:
        archive.writestr("echo.py", "class Echo: ...\n")

    with pytest.raises(InvalidRequest, match=r"no manifest\.json"):
        client.photons.push_bytes(packed.getvalue())


def test_a_photon_deploys_by_name_and_cannot_be_deleted_while_served(client: Client) -> None:
    client.photons.push_bytes(photon_zip())

    created = client.deployments.create(photon="echo", wait=False)
    assert (created.name, created.source, created.photon) == ("echo", "photon", "echo@1")

    with pytest.raises(Conflict, match="served by deployment"):
        client.photons.delete("echo")
    client.photons.push_bytes(photon_zip({"echo.py": "class Echo:\n    y = 2\n"}))
    assert [p.ref for p in client.photons.delete("echo", version="2")] == ["echo@2"]


def test_lineage_shows_the_deployment_serving_a_model_version(client: Client, heart: str) -> None:
    client.deployments.create("heart", name="front", wait=False)

    lineage = client.models.lineage("heart@1")

    assert "deployment:front" in {node.id for node in lineage.nodes}
    assert ("model_version:heart@1", "deployment:front", "deployed") in {
        (e.source, e.target, e.relation) for e in lineage.edges
    }
