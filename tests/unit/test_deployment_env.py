"""Variables and secrets of a deployment: the replicas get them at launch (platform variables
still win), the view shows the variables and the secrets' names but never a value, changing
them rolls the replicas, and a secret a deployment needs cannot be deleted under it."""

from __future__ import annotations

import pytest
from test_deployments_api import register_model
from test_deployments_supervisor import FakeReplicas

from lepton import Client
from lepton.control.plane import Control
from lepton.control.supervisor import Supervisor
from lepton.errors import Conflict, InvalidRequest

VALUE = "sk-live-0123456789abcdef"


@pytest.fixture
def client(admin_client: Client) -> Client:
    register_model(admin_client)
    admin_client.secrets.create("API_KEY", VALUE)
    return admin_client


@pytest.fixture
def fake() -> FakeReplicas:
    return FakeReplicas()


@pytest.fixture
def supervisor(control: Control, fake: FakeReplicas) -> Supervisor:
    return Supervisor(control, fake)


def test_the_replicas_get_the_variables_and_secret_values_the_view_shows_names(
    client: Client, supervisor: Supervisor, fake: FakeReplicas
) -> None:
    created = client.deployments.create(
        "heart", env={"MODE": "fast"}, secrets=["API_KEY", "OPENAI_KEY=API_KEY"], wait=False
    )
    supervisor.reconcile_once()

    [replica] = fake.running()
    env = replica.launch.env
    assert env["MODE"] == "fast" and env["API_KEY"] == VALUE and env["OPENAI_KEY"] == VALUE
    assert env["LEPTON_REPLICA_TOKEN_HASHES"]  # the platform's own variable is still there
    shown = client.deployments.get("heart")
    assert shown.env == {"MODE": "fast"} and shown.secrets == ["API_KEY", "OPENAI_KEY=API_KEY"]
    for text in (
        created.model_dump_json(),
        client.request("GET", "/api/v1/deployments").text,
        client.request("GET", "/api/v1/deployments/heart").text,
        client.request("GET", "/api/v1/audit").text,
    ):
        assert VALUE not in text


def test_a_deployment_naming_a_missing_secret_is_refused_with_the_fix(client: Client) -> None:
    with pytest.raises(InvalidRequest) as refused:
        client.deployments.create("heart", secrets=["HF_TOKEN"], wait=False)

    assert "lepton secret create HF_TOKEN" in refused.value.fix
    assert client.deployments.list() == []


def test_changing_variables_or_secrets_rolls_and_the_same_ones_do_not(
    client: Client, supervisor: Supervisor, fake: FakeReplicas
) -> None:
    client.deployments.create("heart", env={"MODE": "fast"}, wait=False)
    supervisor.reconcile_once()
    client.secrets.create("OTHER", "another value")

    same = client.deployments.update("heart", env={"MODE": "fast"})
    rolled = client.deployments.update("heart", secrets=["OTHER"])
    supervisor.reconcile_once()
    cleared = client.deployments.update("heart", env={})

    assert same.generation == 1 and rolled.generation == 2 and cleared.generation == 3
    newest = list(fake.replicas.values())[-1]
    assert newest.launch.env["OTHER"] == "another value" and newest.launch.env["MODE"] == "fast"
    assert cleared.env == {} and cleared.secrets == ["OTHER"]
    with pytest.raises(InvalidRequest) as refused:
        client.deployments.update("heart", env={"OTHER": "x"})
    assert "both env and secrets" in refused.value.message


def test_a_secret_a_deployment_needs_cannot_be_deleted_until_it_stops_naming_it(
    client: Client,
) -> None:
    client.deployments.create("heart", secrets=["API_KEY"], wait=False)

    with pytest.raises(Conflict) as refused:
        client.secrets.delete("API_KEY")
    client.deployments.update("heart", secrets=[])
    client.secrets.delete("API_KEY")

    assert "deployment heart" in refused.value.message
    assert client.secrets.list() == []


def test_a_crashed_replicas_last_words_and_the_log_show_stars(
    client: Client, supervisor: Supervisor, fake: FakeReplicas
) -> None:
    client.deployments.create("heart", secrets=["API_KEY"], wait=False)
    supervisor.reconcile_once()
    [replica] = fake.running()

    fake.exit(replica.pid, 1, f"loading\nbad key {VALUE}\n")
    supervisor.reconcile_once()

    shown = client.deployments.get("heart")
    assert shown.error is not None and "bad key ***" in shown.error
    log = client.deployments.logs("heart")
    assert "bad key ***" in log.text and VALUE not in log.text
    assert VALUE not in client.request("GET", "/api/v1/deployments/heart").text
