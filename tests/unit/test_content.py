"""Stored bytes and who uses them: for every kind of owner, deleting the last user erases the
bytes, a shared object survives its other users, numbers are never given twice, and a sweep
removes what a crash left behind. Checked on the store itself, not on what the API says."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pandas as pd
import pytest
from sqlalchemy import select

from lepton.client import Client
from lepton.control.plane import Control
from lepton.control.scheduler import Scheduler
from lepton.store.models import BlobObjectRow, ContentRefRow

if TYPE_CHECKING:
    from conftest import Platform, Started, StubExecutor


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def control(platform: Platform, started: Started) -> Control:
    assert started.state is not None
    return started.state


@pytest.fixture
def client(platform: Platform) -> Client:
    return platform.client(platform.admin)


def stored(control: Control) -> set[str]:
    """Digests whose bytes are in the blob store."""
    return set(control.ctx.blobs.digests())


def referenced(control: Control) -> set[str]:
    with control.ctx.sessions() as session:
        return set(session.scalars(select(ContentRefRow.digest)))


def objects(control: Control) -> set[str]:
    with control.ctx.sessions() as session:
        return set(session.scalars(select(BlobObjectRow.digest)))


def assert_consistent(control: Control) -> None:
    """Every referenced object is stored, and nothing is stored that nothing refers to."""
    assert referenced(control) == stored(control) == objects(control)


def photon_zip(text: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("echo.py", f"class Echo:\n    '''{text}'''\n")
        archive.writestr("manifest.json", json.dumps({"entry": "echo.py:Echo", "name": "echo"}))
    return buffer.getvalue()


def model_artifact(tag: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("config.json", json.dumps({"algorithm": "logistic", "tag": tag}))
    return buffer.getvalue()


def register(client: Client, name: str, artifact: bytes, **extra: Any) -> dict[str, Any]:
    blob = client.blobs.upload(artifact)
    body = {
        "artifact_digest": blob.digest,
        "flavour": "sklearn",
        "algorithm": "logistic",
        "task": "classification",
        "signature": {"inputs": [{"name": "x", "dtype": "float64"}], "outputs": {}},
        **extra,
    }
    data: dict[str, Any] = client.request(
        "POST", f"/api/v1/models/{name}/versions", json=body
    ).json()
    return data


# --- numbering ------------------------------------------------------------------------------


def test_a_photon_version_number_is_never_given_twice(client: Client, control: Control) -> None:
    first = client.photons.push_bytes(photon_zip("one"))
    second = client.photons.push_bytes(photon_zip("two"))
    assert (first.version, second.version) == (1, 2)

    client.photons.delete("echo", version="2")
    third = client.photons.push_bytes(photon_zip("three, other code"))

    assert third.version == 3
    assert [p.version for p in client.photons.list()] == [3, 1]
    assert_consistent(control)


def test_deleting_every_photon_version_keeps_the_count(client: Client) -> None:
    client.photons.push_bytes(photon_zip("one"))
    client.photons.delete("echo")

    assert client.photons.push_bytes(photon_zip("two")).version == 2


# --- each kind of owner ---------------------------------------------------------------------


def test_deleting_a_photon_erases_its_package(client: Client, control: Control) -> None:
    photon = client.photons.push_bytes(photon_zip("only"))
    assert photon.digest in stored(control)

    client.photons.delete("echo")

    assert photon.digest not in stored(control)
    assert_consistent(control)


def test_the_same_package_under_two_names_lives_until_both_go(
    client: Client, control: Control
) -> None:
    package = photon_zip("shared")
    one = client.photons.push_bytes(package, name="one")
    two = client.photons.push_bytes(package, name="two")
    assert one.digest == two.digest

    client.photons.delete("one")
    assert one.digest in stored(control)
    client.photons.delete("two")

    assert one.digest not in stored(control)
    assert_consistent(control)


def test_deleting_a_dataset_version_erases_its_source_table_and_splits(
    client: Client, control: Control
) -> None:
    frame = pd.DataFrame({"x": range(40), "y": [0, 1] * 20})
    version = client.datasets.push(frame, name="toy", target="y")
    split = client.datasets.split("toy@v1", train=0.5, validation=0.25, test=0.25)
    digests = {version.source_digest, version.data_digest, split.digest}
    assert digests <= stored(control)

    client.datasets.delete("toy@v1")

    assert not digests & stored(control)
    assert_consistent(control)


def test_deleting_a_model_version_erases_its_artifact_and_explanation_plot(
    client: Client, control: Control
) -> None:
    plot = client.blobs.upload(b"\x89PNG explanation").digest
    explanations = {"kind": "tabular", "method": "tree_shap", "features": [], "plot": plot}
    version = register(client, "heart", model_artifact("a"), explanations=explanations)
    artifact = version["artifact_digest"]
    assert {artifact, plot} <= stored(control)

    client.models.delete("heart@1")

    assert not {artifact, plot} & stored(control)
    assert {b.digest for b in client.blobs.list()} == set()  # the uploads went with their user
    assert_consistent(control)


def test_an_artifact_two_versions_share_survives_until_the_last_goes(
    client: Client, control: Control
) -> None:
    artifact = model_artifact("shared")
    first = register(client, "heart", artifact)
    register(client, "heart", artifact)

    client.models.delete("heart@1")
    assert first["artifact_digest"] in stored(control)
    client.models.delete("heart@2")

    assert first["artifact_digest"] not in stored(control)
    assert_consistent(control)


def test_an_upload_nothing_claimed_stays_listed(client: Client, control: Control) -> None:
    blob = client.blobs.upload(b"kept for later")

    assert blob.digest in stored(control)
    assert [b.digest for b in client.blobs.list()] == [blob.digest]
    assert_consistent(control)


@pytest.fixture
def running_job(
    client: Client, control: Control, stub_executor: StubExecutor
) -> Iterator[tuple[str, str]]:
    """A train job the scheduler started: its id and its runner's token."""
    frame = pd.DataFrame({"x": [float(i) for i in range(60)], "y": ["a", "b", "c"] * 20})
    client.datasets.push(frame, name="toy", target="y")
    job = client.jobs.train("toy", algorithm="logistic_regression")
    executor = stub_executor
    Scheduler(control, executor).reconcile_once()
    [launch] = executor.launches
    yield job.id, launch.env["LEPTON_TOKEN"]


def test_a_replaced_checkpoint_is_erased_and_the_last_one_kept(
    platform: Platform, control: Control, running_job: tuple[str, str]
) -> None:
    job_id, token = running_job
    put = [
        platform.api.put(
            f"/api/v1/jobs/{job_id}/checkpoint", content=body, headers=bearer(token)
        ).json()["digest"]
        for body in (b"epoch 1 state", b"epoch 2 state")
    ]

    assert put[0] not in stored(control)
    assert put[1] in stored(control)
    got = platform.api.get(f"/api/v1/jobs/{job_id}/checkpoint", headers=bearer(token))
    assert got.content == b"epoch 2 state"
    assert_consistent(control)


def test_evaluation_plots_go_with_the_version_they_evaluate(
    platform: Platform, client: Client, control: Control, running_job: tuple[str, str]
) -> None:
    job_id, token = running_job
    runner = bearer(token)

    def upload(body: bytes) -> str:
        r = platform.api.post(f"/api/v1/jobs/{job_id}/artifacts", content=body, headers=runner)
        assert r.status_code == 201, r.text
        return str(r.json()["digest"])

    artifact = upload(model_artifact("job"))
    body = {
        "artifact_digest": artifact,
        "flavour": "sklearn",
        "algorithm": "logistic_regression",
        "task": "classification",
        "signature": {"inputs": [{"name": "x", "dtype": "float64"}], "outputs": {}},
    }
    version = platform.api.post(f"/api/v1/jobs/{job_id}/model", json=body, headers=runner)
    assert version.status_code == 201, version.text
    plot = upload(b"\x89PNG confusion")
    record = {
        "model_version": version.json()["ref"],
        "split": "test",
        "result": {"metrics": {"accuracy": 1.0}, "plots": {"confusion": plot}},
    }
    r = platform.api.post(f"/api/v1/jobs/{job_id}/evaluation", json=record, headers=runner)
    assert r.status_code == 201, r.text
    assert {artifact, plot} <= stored(control)

    client.models.delete(version.json()["ref"])

    assert not {artifact, plot} & stored(control)
    assert_consistent(control)


# --- what a crash leaves ------------------------------------------------------------------


def test_a_sweep_erases_bytes_nothing_refers_to_and_keeps_the_rest(
    client: Client, control: Control
) -> None:
    kept = client.blobs.upload(b"in use").digest
    # A writer killed after moving its bytes into place, before its transaction committed:
    orphan = control.ctx.blobs.put_bytes(b"left by a crash").digest
    # ... and an object row whose reference never came (its transaction committed nothing).
    with control.ctx.sessions() as session:
        control.content.lock(session, {control.ctx.blobs.put_bytes(b"row only").digest: 8})
        session.commit()

    assert control.content.sweep() == 2

    assert orphan not in stored(control)
    assert stored(control) == {kept}
    assert_consistent(control)
    assert client.blobs.read(kept) == b"in use"


def test_referring_to_bytes_another_workspace_uploaded_is_refused(
    platform: Platform, client: Client, control: Control
) -> None:
    theirs = client.blobs.upload(model_artifact("theirs")).digest
    other = platform.workspace("other")
    body = {
        "artifact_digest": theirs,
        "flavour": "sklearn",
        "algorithm": "logistic",
        "task": "classification",
        "signature": {"inputs": [{"name": "x", "dtype": "float64"}], "outputs": {}},
    }

    r = platform.api.post("/api/v1/models/stolen/versions", json=body, headers=bearer(other))

    assert r.status_code == 404
    assert "not uploaded to this workspace" in r.json()["error"]["message"]
    with control.ctx.sessions() as session:
        owners = set(session.scalars(select(ContentRefRow.owner_kind)))
    assert owners == {"upload"}
