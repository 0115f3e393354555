"""A deployment's revision history and its rollback, in-process: which changes are recorded,
what a rollback writes, what it refuses and why, and that history never holds up deleting a
model version, a photon, a secret or the deployment itself. No replica process starts:
``FakeReplicas`` stands in for the executor where the supervisor has to act.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from sqlalchemy import func, select
from test_deployments_api import photon_zip, register_model
from test_deployments_supervisor import FakeReplicas

from lepton import Client
from lepton.control.plane import Control
from lepton.control.supervisor import Supervisor
from lepton.errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from lepton.store.models import DeploymentRevisionRow, DeploymentRow

if TYPE_CHECKING:
    from conftest import Platform

VALUE = "sk-live-0123456789abcdef"


@pytest.fixture
def client(admin_client: Client) -> Client:
    register_model(admin_client)  # heart@1
    register_model(admin_client)  # heart@2
    return admin_client


def history(client: Client, name: str = "heart") -> list[tuple[int, bool, str, str | None]]:
    return [
        (r.generation, r.current, r.reason, r.model) for r in client.deployments.revisions(name)
    ]


def test_creating_and_each_rolling_update_are_recorded_and_scaling_is_not(client: Client) -> None:
    client.deployments.create("heart@1", env={"MODE": "fast"}, wait=False)
    client.deployments.scale("heart", 3)
    client.deployments.update("heart", model="heart@2")
    client.deployments.update("heart", model="heart@2")  # the same: rolls nothing
    client.deployments.update("heart", max_batch_size=8, env={"MODE": "slow"})
    client.deployments.update("heart", max_rows=10)

    assert history(client) == [
        (4, True, "updated max_rows", "heart@2"),
        (3, False, "updated max_batch_size, env", "heart@2"),
        (2, False, "updated model", "heart@2"),
        (1, False, "created", "heart@1"),
    ]
    first = client.deployments.revisions("heart")[-1]
    assert (first.env, first.max_batch_size, first.requested) == ({"MODE": "fast"}, 64, "heart@1")
    assert (first.max_rows, client.deployments.get("heart").max_rows) == (100_000, 10)
    assert first.available and first.created_by is not None


def test_a_rollback_serves_the_previous_revision_again_as_a_new_generation(
    client: Client,
) -> None:
    client.deployments.create("heart@1", wait=False)
    client.deployments.update("heart", model="heart@2", env={"MODE": "fast"}, max_wait_ms=5)
    client.deployments.scale("heart", 2)

    back = client.deployments.rollback("heart")

    assert (back.generation, back.model, back.env, back.max_wait_ms) == (3, "heart@1", {}, 0)
    assert back.replicas == 2  # a rollback does not scale
    assert history(client)[0] == (3, True, "rolled back to generation 1", "heart@1")
    # The rollback is a revision too: rolling back again undoes it.
    again = client.deployments.rollback("heart")
    assert (again.generation, again.model, again.env) == (4, "heart@2", {"MODE": "fast"})


def test_a_rollback_to_a_given_generation(client: Client) -> None:
    register_model(client)  # heart@3
    client.deployments.create("heart@1", wait=False)
    client.deployments.update("heart", model="heart@2")
    client.deployments.update("heart", model="heart@3")

    back = client.deployments.rollback("heart", generation=1)

    assert (back.generation, back.model) == (4, "heart@1")


def test_a_rollback_needs_an_earlier_revision_that_differs(client: Client) -> None:
    client.deployments.create("heart@1", wait=False)

    with pytest.raises(Conflict, match="no revision before generation 1") as refused:
        client.deployments.rollback("heart")
    assert "lepton deployment update heart --model" in refused.value.fix
    with pytest.raises(Conflict, match="generation 1 is the one deployment 'heart' runs now"):
        client.deployments.rollback("heart", generation=1)

    client.deployments.update("heart", model="heart@2")
    client.deployments.update("heart", model="heart@1")
    with pytest.raises(NotFound, match="no generation 7; its revisions are generations 1, 2, 3"):
        client.deployments.rollback("heart", generation=7)
    with pytest.raises(Conflict, match="nothing to roll back") as same:
        client.deployments.rollback("heart", generation=1)  # generation 3 serves heart@1 too
    assert "lepton deployment history heart" in same.value.fix
    assert client.deployments.get("heart").generation == 3  # nothing was written


def test_a_deployment_being_deleted_is_not_rolled_back(client: Client) -> None:
    client.deployments.create("heart@1", wait=False)
    client.deployments.update("heart", model="heart@2")
    client.deployments.delete("heart", wait=False)

    with pytest.raises(Conflict, match="being deleted"):
        client.deployments.rollback("heart")


def test_a_model_version_only_history_names_can_be_deleted_and_is_not_rolled_back_to(
    client: Client,
) -> None:
    client.deployments.create("heart@1", wait=False)
    client.deployments.update("heart", model="heart@2")

    with pytest.raises(Conflict, match="in use by deployment heart"):
        client.models.delete("heart@2")  # served now: still refused
    client.models.delete("heart@1")  # only in the history: history does not hold it

    with pytest.raises(Conflict, match="served heart@1, which has been deleted since") as refused:
        client.deployments.rollback("heart")
    assert "lepton deployment update heart --model heart@N" in refused.value.fix
    assert "lepton deployment history heart" in refused.value.fix
    old = client.deployments.revisions("heart")[-1]
    assert (old.model, old.available) == ("heart@1", False)


def test_a_photon_only_history_names_can_be_deleted_and_is_not_rolled_back_to(
    client: Client,
) -> None:
    client.photons.push_bytes(photon_zip())  # echo@1
    client.photons.push_bytes(photon_zip({"echo.py": "class Echo:\n    x = 1\n"}))  # echo@2
    client.deployments.create(photon="echo@1", name="echo", wait=False)
    client.deployments.update("echo", photon="echo@2")

    client.photons.delete("echo", version="1")

    old = client.deployments.revisions("echo")[-1]
    assert (old.photon, old.requested, old.available) == (None, "echo@1", False)
    with pytest.raises(Conflict, match="served echo@1, which has been deleted since"):
        client.deployments.rollback("echo")


def test_a_rollback_needs_the_secrets_its_revision_names(client: Client) -> None:
    client.secrets.create("API_KEY", VALUE)
    client.deployments.create("heart@1", secrets=["API_KEY"], wait=False)
    client.deployments.update("heart", secrets=[])
    client.secrets.delete("API_KEY")  # the history's use of it does not hold it up

    [now, before] = client.deployments.revisions("heart")
    assert (now.secrets, before.secrets) == ([], ["API_KEY"])
    assert VALUE not in client.request("GET", "/api/v1/deployments/heart/revisions").text
    with pytest.raises(InvalidRequest, match="API_KEY") as refused:
        client.deployments.rollback("heart")
    assert "lepton secret create API_KEY" in refused.value.fix


def test_history_pages_newest_first(client: Client, platform: Platform) -> None:
    client.deployments.create("heart@1", wait=False)
    for size in (2, 3, 4):
        client.deployments.update("heart", max_batch_size=size)

    first = client.request("GET", "/api/v1/deployments/heart/revisions", params={"limit": 2})

    assert [r["generation"] for r in first.json()] == [4, 3]
    assert 'rel="next"' in first.headers["Link"]
    assert [r.generation for r in client.deployments.revisions("heart")] == [4, 3, 2, 1]


def test_viewers_read_the_history_and_only_writers_roll_back_which_is_audited(
    client: Client, platform: Platform
) -> None:
    client.deployments.create("heart@1", wait=False)
    client.deployments.update("heart", model="heart@2")
    viewer = platform.client(platform.token(platform.admin, role="viewer"))

    assert [r.generation for r in viewer.deployments.revisions("heart")] == [2, 1]
    with pytest.raises(PermissionDenied):
        viewer.deployments.rollback("heart")
    client.deployments.rollback("heart")

    events = client.audit.list(action="deployment.rollback")
    assert [(e.resource, e.outcome.value) for e in events] == [
        ("deployment/heart", "success"),
        ("deployments/heart/rollback", "denied"),  # refused before the route names it
    ]


def test_a_bad_generation_is_refused_naming_the_field(client: Client) -> None:
    client.deployments.create("heart@1", wait=False)

    with pytest.raises(InvalidRequest, match="generation"):
        client.deployments.rollback("heart", generation=0)


# --- with the supervisor -----------------------------------------------------------------------


def rolled_once(client: Client, control: Control) -> tuple[Supervisor, FakeReplicas]:
    """heart@1 deployed, updated to heart@2, and the supervisor's first pass over that."""
    fake = FakeReplicas()
    supervisor = Supervisor(control, fake)
    client.deployments.create("heart@1", wait=False)
    client.deployments.update("heart", model="heart@2")
    supervisor.reconcile_once()
    return supervisor, fake


def test_a_rollback_rolls_the_replicas_and_clears_the_error(
    client: Client, control: Control
) -> None:
    supervisor, fake = rolled_once(client, control)
    [broken] = fake.running()
    assert "gen-2" in broken.arg("--model-dir")
    with control.ctx.sessions() as session:  # as the supervisor records a generation that fails
        row = session.scalars(select(DeploymentRow)).one()
        row.error_message = "heart@2 cannot load"
        session.commit()

    back = client.deployments.rollback("heart")
    supervisor.reconcile_once()

    assert back.error is None
    [started] = [r for r in fake.running() if r.pid != broken.pid]
    assert "gen-3" in started.arg("--model-dir")


def test_the_history_goes_with_the_deployment(client: Client, control: Control) -> None:
    supervisor, fake = rolled_once(client, control)

    client.deployments.delete("heart", wait=False)
    supervisor.reconcile_once()
    for replica in fake.running():
        fake.exit(replica.pid, 0)
    supervisor.reconcile_once()

    with pytest.raises(NotFound):
        client.deployments.get("heart")
    with control.ctx.sessions() as session:
        assert session.scalar(select(func.count()).select_from(DeploymentRevisionRow)) == 0
    client.deployments.create("heart@2", wait=False)  # the name is free, with a new history
    assert history(client) == [(1, True, "created", "heart@2")]
