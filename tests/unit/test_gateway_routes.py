"""The control plane's side of the gateway, in process: who may read the routing table, what
it lists, how the load the gateway reports scales a deployment, and canary bookkeeping."""

# ruff: noqa: F811  (fixtures imported by name)

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest
from test_deployments_api import register_model
from test_deployments_supervisor import (  # noqa: F401  (fixtures, by name)
    Clock,
    FakeReplicas,
    fake,
    state,
)

from lepton import Client
from lepton.control.plane import Control
from lepton.control.supervisor import Backoff, Supervisor
from lepton.errors import Conflict

if TYPE_CHECKING:
    from conftest import Platform


@pytest.fixture
def client(platform: Platform) -> Client:
    client = platform.client(platform.admin)
    register_model(client)
    register_model(client)
    return client


@pytest.fixture
def supervisor(state: Control, fake: FakeReplicas) -> Supervisor:
    return Supervisor(state, fake, now=Clock(), backoff=Backoff(base_s=1, cap_s=8, stable_s=60))


def ready(fake: FakeReplicas, pid: int, own: int) -> None:
    """The replica's ready line, with its own address as ``--own-port`` prints it."""
    replica = fake.replicas[pid]
    port = replica.arg("--port")
    with replica.launch.log_path.open("a") as f:
        f.write(f"ready http://127.0.0.1:{port} replica http://127.0.0.1:{own}\n")


def table(platform: Platform, state: Control, **params: object) -> dict:  # type: ignore[type-arg]
    r = platform.api.get(
        "/api/v1/gateway/routes",
        params=params,
        headers={"Authorization": f"Bearer {state.gateway.secret}"},
    )
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_only_the_gateway_s_secret_reads_the_table_or_reports(
    platform: Platform, state: Control
) -> None:
    api = platform.api
    assert api.get("/api/v1/gateway/routes").status_code == 401
    admin = {"Authorization": f"Bearer {platform.admin}"}
    refused = api.get("/api/v1/gateway/routes", headers=admin)
    assert refused.status_code == 403 and "only the gateway may" in refused.text
    body = {"interval_s": 1, "deployments": []}
    assert api.post("/api/v1/gateway/load", json=body, headers=admin).status_code == 403
    wrong = {"Authorization": "Bearer not-the-secret"}
    assert api.post("/api/v1/gateway/load", json=body, headers=wrong).status_code == 401
    ok = {"Authorization": f"Bearer {state.gateway.secret}"}
    assert api.post("/api/v1/gateway/load", json=body, headers=ok).status_code == 204


def test_the_table_lists_ready_replicas_by_their_own_address_and_the_token_hashes(
    platform: Platform, state: Control, client: Client, supervisor: Supervisor, fake: FakeReplicas
) -> None:
    created = client.deployments.create("heart@1", replicas=2, wait=False)
    empty = table(platform, state)
    [entry] = empty["deployments"]
    assert entry["keys"] == ["heart", "default/heart"] and entry["replicas"] == []
    assert entry["retry_posts"] is True and entry["error"] is None
    assert len(entry["token_hashes"]) == 2  # the inference token's and the console's
    supervisor.reconcile_once()
    first, _ = sorted(fake.replicas)
    assert "--own-port" in fake.replicas[first].launch.args
    ready(fake, first, 40001)
    supervisor.reconcile_once()
    one = table(platform, state, after=empty["version"], wait_s=5)
    assert one["version"] != empty["version"]
    assert one["deployments"][0]["replicas"] == [
        {"url": "http://127.0.0.1:40001", "track": "stable"}
    ]
    # Nothing changed: the long poll answers the same version once its wait is over.
    started = time.monotonic()
    same = table(platform, state, after=one["version"], wait_s=0.3)
    assert same["version"] == one["version"] and time.monotonic() - started >= 0.3
    assert created.token is not None


def test_the_gateway_s_load_scales_an_autoscaled_deployment_up_with_its_reason(
    platform: Platform, state: Control, client: Client, supervisor: Supervisor, fake: FakeReplicas
) -> None:
    client.deployments.create(
        "heart@1", min_replicas=0, max_replicas=3, target_inflight=2, wait=False
    )
    supervisor.reconcile_once()
    assert len(fake.running()) == 1
    deployment_id = client.deployments.get("heart").id
    report = {
        "interval_s": 1,
        "deployments": [{"id": deployment_id, "inflight": 5.0, "peak": 7, "waiting": 0}],
    }
    headers = {"Authorization": f"Bearer {state.gateway.secret}"}
    assert (
        platform.api.post("/api/v1/gateway/load", json=report, headers=headers).status_code == 204
    )
    supervisor.reconcile_once()
    shown = client.deployments.get("heart")
    assert shown.replicas == 3 and len(fake.running()) == 3
    assert shown.autoscaling is not None and shown.autoscaling.min_replicas == 0
    assert shown.autoscaling.last_decision == (
        "scaled up from 1 to 3: 5.0 requests in flight over 3 s (target 2 per replica)"
    )
    assert "scaled up from 1 to 3" in client.deployments.logs("heart").text
    # A fixed count turns autoscaling off.
    fixed = client.deployments.scale("heart", 1)
    assert fixed.autoscaling is None and fixed.replicas == 1


def test_a_canary_runs_beside_the_serving_version_until_promoted_or_dropped(
    platform: Platform, state: Control, client: Client, supervisor: Supervisor, fake: FakeReplicas
) -> None:
    client.deployments.create("heart@1", wait=False)
    supervisor.reconcile_once()
    [stable] = fake.running()
    ready(fake, stable.pid, 40010)
    supervisor.reconcile_once()
    trial = client.deployments.update("heart", model="heart@2", canary=10)
    assert trial.model == "heart@1" and trial.generation == 1
    assert trial.canary is not None and trial.canary.model == "heart@2" and trial.canary.share == 10
    supervisor.reconcile_once()
    canary = next(r for r in fake.running() if r is not stable)
    assert f"gen-{trial.canary.generation}" in " ".join(canary.launch.args)
    ready(fake, canary.pid, 40011)
    supervisor.reconcile_once()
    [entry] = table(platform, state)["deployments"]
    assert entry["canary_share"] == 10
    assert sorted((r["url"][-5:], r["track"]) for r in entry["replicas"]) == [
        ("40010", "stable"),
        ("40011", "canary"),
    ]
    assert client.deployments.get("heart").state == "ready"  # a canary is not an update
    with pytest.raises(Conflict, match="has a canary on trial"):
        client.deployments.update("heart", max_batch_size=8)
    dropped = client.deployments.rollback("heart")
    assert dropped.canary is None and dropped.model == "heart@1" and dropped.generation == 1
    # Still ready until it drains, but no longer sent anything.
    [entry] = table(platform, state)["deployments"]
    assert [r["url"][-5:] for r in entry["replicas"]] == ["40010"]
    assert entry["canary_share"] == 0
    supervisor.reconcile_once()
    assert f"drain {canary.pid}" in fake.history and f"drain {stable.pid}" not in fake.history
    # Again, and promoted this time: the canary's generation becomes the serving one.
    again = client.deployments.update("heart", model="heart@2", canary=10)
    assert again.canary is not None and again.canary.generation == 3  # 2 stays the dropped one's
    promoted = client.deployments.promote("heart")
    assert promoted.canary is None and promoted.model == "heart@2" and promoted.generation == 3
    with pytest.raises(Conflict, match="no canary to promote"):
        client.deployments.promote("heart")
