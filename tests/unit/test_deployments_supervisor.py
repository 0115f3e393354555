"""The replica supervisor reconciling against a fake executor, on the real app state.

No process starts: ``FakeReplicas`` keeps the executor's protocol and lets each test say which
replica printed its ``ready`` line, which one died and how. The clock is the test's, so backoff
is checked without sleeping.
"""

from __future__ import annotations

import hashlib
import json
import socket
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from test_deployments_api import register_model

from lepton import Client
from lepton.control.plane import Control
from lepton.control.spool import owner_tag
from lepton.control.supervisor import Backoff, Supervisor
from lepton.errors import AuthenticationError, NotFound
from lepton.executors.base import ProcessState, ReplicaLaunch
from lepton.schemas import Deployment
from lepton.store.models import utcnow

if TYPE_CHECKING:
    from conftest import Platform, Started


@dataclass
class FakeReplica:
    launch: ReplicaLaunch
    pid: int
    alive: bool = True
    exit_code: int | None = None

    def arg(self, name: str) -> str:
        args = list(self.launch.args)
        return args[args.index(name) + 1]


@dataclass
class FakeReplicas:
    """Replicas live until the test ends them; ``survivors`` are pids from before a restart."""

    replicas: dict[int, FakeReplica] = field(default_factory=dict)
    survivors: set[int] = field(default_factory=set)
    history: list[str] = field(default_factory=list)
    _next: int = 7000

    def start_replica(self, launch: ReplicaLaunch) -> int:
        self._next += 1
        launch.log_path.parent.mkdir(parents=True, exist_ok=True)  # as the real one opens it
        launch.log_path.touch()
        self.replicas[self._next] = FakeReplica(launch, self._next)
        self.history.append(f"start {self._next}")
        return self._next

    def replica_status(self, handle: int, marker: str) -> ProcessState:
        replica = self.replicas.get(handle)
        if replica is None:
            return ProcessState(alive=handle in self.survivors)
        assert marker in " ".join(replica.launch.args)  # the marker finds its own replicas
        return ProcessState(alive=replica.alive, exit_code=replica.exit_code)

    def stop_replica(self, handle: int, marker: str, grace_s: float) -> None:
        self.history.append(f"drain {handle}")

    def running(self) -> list[FakeReplica]:
        return [r for r in self.replicas.values() if r.alive]

    def ready(self, *pids: int) -> None:
        for pid in pids or [r.pid for r in self.running()]:
            replica = self.replicas[pid]
            with replica.launch.log_path.open("a") as f:
                f.write(f"loading\nready http://127.0.0.1:{replica.arg('--port')}\n")
            self.history.append(f"ready {pid}")

    def exit(self, pid: int, code: int, output: str = "") -> None:
        replica = self.replicas[pid]
        with replica.launch.log_path.open("a") as f:
            f.write(output)
        replica.alive, replica.exit_code = False, code


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def state(platform: Platform, started: Started) -> Control:
    assert started.state is not None
    return started.state


@pytest.fixture
def client(platform: Platform) -> Client:
    client = platform.client(platform.admin)
    register_model(client)
    return client


@pytest.fixture
def fake() -> FakeReplicas:
    return FakeReplicas()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def supervisor(state: Control, fake: FakeReplicas, clock: Clock) -> Supervisor:
    return Supervisor(state, fake, now=clock, backoff=Backoff(base_s=1, cap_s=8, stable_s=60))


def show(client: Client, name: str = "heart") -> Deployment:
    return client.deployments.get(name)


# --- starting ----------------------------------------------------------------------------------


def test_replicas_start_on_one_shared_port_with_the_model_and_the_token_hash(
    client: Client, supervisor: Supervisor, fake: FakeReplicas
) -> None:
    created = client.deployments.create(
        "heart", replicas=2, max_batch_size=16, max_rows=500, wait=False
    )
    assert created.token is not None

    supervisor.reconcile_once()

    assert len(fake.running()) == 2
    secret = created.token.split("_", 2)[2]
    for replica in fake.running():
        assert replica.arg("--port") == created.url.rsplit(":", 1)[1]
        assert "--reuse-port" in replica.launch.args and "--public" not in replica.launch.args
        assert replica.arg("--max-batch-size") == "16"
        assert replica.arg("--max-rows") == "500"
        # The inference token's hash, and the hash of the control plane's own bearer for
        # this deployment (the console's try-it form calls with it).
        own = supervisor.deployments.console_bearer(created.id)
        assert replica.launch.env == {
            "LEPTON_REPLICA_TOKEN_HASHES": ",".join(
                [
                    hashlib.sha256(secret.encode()).hexdigest(),
                    hashlib.sha256(own.encode()).hexdigest(),
                ]
            )
        }
        model_dir = Path(replica.arg("--model-dir"))
        assert json.loads((model_dir / "config.json").read_text()) == {"algorithm": "logistic"}
        assert json.loads((model_dir / "signature.json").read_text())["inputs"][0]["name"] == "x"
    assert show(client).state == "starting"


def test_a_deployment_is_ready_once_every_replica_printed_its_ready_line(
    client: Client, supervisor: Supervisor, fake: FakeReplicas
) -> None:
    client.deployments.create("heart", replicas=2, wait=False)
    supervisor.reconcile_once()
    first = fake.running()[0].pid

    fake.ready(first)
    supervisor.reconcile_once()
    assert (show(client).state, show(client).ready_replicas) == ("starting", 1)

    fake.ready()
    supervisor.reconcile_once()
    deployment = show(client)
    assert (deployment.state, deployment.ready_replicas) == ("ready", 2)
    assert client.deployments.wait("heart").state == "ready"
    log = client.deployments.logs("heart").text
    replica_id = deployment.replica_states[0].id
    assert f"[{replica_id}] ready http://" in log and f"replica {replica_id}" in log


def test_a_public_deployment_starts_replicas_without_token_hashes(
    client: Client, supervisor: Supervisor, fake: FakeReplicas
) -> None:
    client.deployments.create("heart", public=True, wait=False)

    supervisor.reconcile_once()

    (replica,) = fake.running()
    assert "--public" in replica.launch.args and replica.launch.env == {}


# --- crashes and backoff ------------------------------------------------------------------------


def test_a_crashed_replica_restarts_after_a_backoff_that_doubles(
    client: Client, supervisor: Supervisor, fake: FakeReplicas, clock: Clock
) -> None:
    client.deployments.create("heart", wait=False)
    supervisor.reconcile_once()
    (replica,) = fake.running()
    fake.ready()
    supervisor.reconcile_once()

    fake.exit(replica.pid, -9, "Killed\n")
    supervisor.reconcile_once()
    crashed = show(client).replica_states[0]
    assert crashed.state == "crashed"
    assert (crashed.last_error or "").startswith("exited with code -9: loading")
    assert (crashed.last_error or "").endswith("| Killed")
    assert show(client).state == "failing" and "Killed" in (show(client).error or "")

    clock.advance(0.5)
    supervisor.reconcile_once()
    assert fake.running() == []  # still backing off
    clock.advance(0.6)
    supervisor.reconcile_once()
    (second,) = fake.running()
    assert show(client).replica_states[0].restarts == 1

    fake.exit(second.pid, 1, "boom\n")  # again, before it was ever ready: twice the wait
    supervisor.reconcile_once()
    clock.advance(1.5)
    supervisor.reconcile_once()
    assert fake.running() == []
    clock.advance(0.6)
    supervisor.reconcile_once()
    assert len(fake.running()) == 1 and show(client).replica_states[0].restarts == 2


def test_the_backoff_is_capped_and_forgotten_after_a_stable_minute(
    client: Client, supervisor: Supervisor, fake: FakeReplicas, clock: Clock
) -> None:
    client.deployments.create("heart", wait=False)
    supervisor.reconcile_once()
    for _ in range(6):  # 1, 2, 4, 8, 8, 8 s
        (replica,) = fake.running()
        fake.exit(replica.pid, 1)
        supervisor.reconcile_once()
        restart_at = show(client).replica_states[0].restart_at
        assert restart_at is not None
        assert (restart_at - clock.now).total_seconds() <= 8
        clock.advance(8)
        supervisor.reconcile_once()

    (replica,) = fake.running()
    fake.ready()
    supervisor.reconcile_once()
    clock.advance(61)
    fake.exit(replica.pid, 1)
    supervisor.reconcile_once()

    restart_at = show(client).replica_states[0].restart_at
    assert restart_at is not None and (restart_at - clock.now).total_seconds() == 1


def test_a_replica_that_cannot_load_reports_its_message(
    client: Client, supervisor: Supervisor, fake: FakeReplicas
) -> None:
    client.deployments.create("heart", wait=False)
    supervisor.reconcile_once()
    (replica,) = fake.running()

    fake.exit(replica.pid, 2, "error: model.skops is missing from the model folder\n")
    supervisor.reconcile_once()

    from lepton.errors import InvalidRequest

    with pytest.raises(InvalidRequest, match=r"cannot start: .*model\.skops is missing"):
        client.deployments.wait("heart")


# --- scaling, rolling updates, deletion ----------------------------------------------------------


def test_scaling_down_drains_the_extra_replicas_and_up_starts_more(
    client: Client, supervisor: Supervisor, fake: FakeReplicas
) -> None:
    client.deployments.create("heart", replicas=3, wait=False)
    supervisor.reconcile_once()
    fake.ready()
    supervisor.reconcile_once()

    client.deployments.scale("heart", 1)
    supervisor.reconcile_once()
    drained = [int(h.split()[1]) for h in fake.history if h.startswith("drain")]
    assert len(drained) == 2
    states = sorted(r.state for r in show(client).replica_states)
    assert states == ["draining", "draining", "ready"]
    for pid in drained:
        fake.exit(pid, 0)
    supervisor.reconcile_once()
    assert [r.state for r in show(client).replica_states] == ["ready"]
    assert show(client).state == "ready"

    client.deployments.scale("heart", 2)
    supervisor.reconcile_once()
    assert len(fake.running()) == 2


def test_a_rolling_update_starts_a_new_replica_and_drains_an_old_one_only_once_it_is_ready(
    client: Client, supervisor: Supervisor, fake: FakeReplicas
) -> None:
    client.deployments.create("heart", replicas=2, wait=False)
    supervisor.reconcile_once()
    fake.ready()
    supervisor.reconcile_once()
    old = [r.pid for r in fake.running()]
    register_model(client)  # heart@2
    fake.history.clear()

    client.deployments.update("heart", model="heart@2")
    for _ in range(12):  # each pass: the supervisor acts, then new replicas come up
        supervisor.reconcile_once()
        serving = [r for r in show(client).replica_states if r.state == "ready"]
        assert len(serving) >= 2, "fewer ready replicas than asked during the update"
        for pid in [int(h.split()[1]) for h in fake.history if h.startswith("drain")]:
            if fake.replicas[pid].alive:
                fake.exit(pid, 0)
        for replica in fake.running():
            if replica.pid not in old and f"ready {replica.pid}" not in fake.history:
                fake.ready(replica.pid)
                break

    new = [r.pid for r in fake.running()]
    assert len(new) == 2 and not set(new) & set(old)
    drained = [int(h.split()[1]) for h in fake.history if h.startswith("drain")]
    assert sorted(drained) == sorted(old)
    assert fake.history == [
        f"start {new[0]}",
        f"ready {new[0]}",
        f"drain {drained[0]}",
        f"start {new[1]}",
        f"ready {new[1]}",
        f"drain {drained[1]}",
    ]
    deployment = show(client)
    assert (deployment.state, deployment.model, deployment.generation) == ("ready", "heart@2", 2)
    assert all("gen-2" in fake.replicas[pid].arg("--model-dir") for pid in new)
    assert not Path(fake.replicas[old[0]].arg("--model-dir")).exists()  # gen-1 cleaned up


def test_an_update_whose_new_replica_crashes_keeps_the_old_ones_serving(
    client: Client, supervisor: Supervisor, fake: FakeReplicas
) -> None:
    client.deployments.create("heart", replicas=2, wait=False)
    supervisor.reconcile_once()
    fake.ready()
    supervisor.reconcile_once()
    old = {r.pid for r in fake.running()}

    client.deployments.update("heart", max_batch_size=8)
    supervisor.reconcile_once()
    (new,) = [r for r in fake.running() if r.pid not in old]
    fake.exit(new.pid, 1, "bad batch size\n")
    supervisor.reconcile_once()

    assert old <= {r.pid for r in fake.running()}
    assert not [h for h in fake.history if h.startswith("drain")]
    assert show(client).state == "updating"


def test_deleting_drains_every_replica_then_the_deployment_is_gone(
    client: Client, supervisor: Supervisor, fake: FakeReplicas, state: Control
) -> None:
    created = client.deployments.create("heart", replicas=2, wait=False)
    supervisor.reconcile_once()
    fake.ready()
    supervisor.reconcile_once()

    client.deployments.delete("heart", wait=False)
    supervisor.reconcile_once()
    assert sorted(h.split()[0] for h in fake.history if h.startswith("drain")) == ["drain"] * 2
    assert show(client).state == "deleting"

    for replica in fake.running():
        fake.exit(replica.pid, 0)
    supervisor.reconcile_once()

    with pytest.raises(NotFound):
        show(client)
    assert not (state.ctx.settings.home / "deployments" / created.id).exists()
    assert created.token is not None
    with pytest.raises(AuthenticationError, match="revoked"):
        Client(client.url, created.token, http=client._http).status()


def test_a_build_cut_short_by_a_kill_is_removed_and_a_live_one_kept(
    client: Client, supervisor: Supervisor, fake: FakeReplicas, state: Control
) -> None:
    created = client.deployments.create("heart", wait=False)
    supervisor.reconcile_once()
    root = state.ctx.settings.home / "deployments" / created.id
    # What a control plane killed while unpacking leaves: a process of this host that ended
    # (no pid is past the kernel's largest), and one of another, live process.
    dead_pid = int(Path("/proc/sys/kernel/pid_max").read_text()) + 1
    cut = root / f".gen-2.{socket.gethostname()}@{dead_pid}@1@0badc0de"
    live = root / f".gen-2.{owner_tag()}@0000cafe"
    for folder in (cut, live):
        (folder / "model").mkdir(parents=True)

    supervisor.reconcile_once()

    assert not cut.exists() and live.exists()
    assert (root / "gen-1").is_dir(), "the generation being served was removed"


# --- a restart of the control plane --------------------------------------------------------------


def test_after_a_restart_live_replicas_are_reattached_and_lost_ones_restarted(
    client: Client, supervisor: Supervisor, fake: FakeReplicas, state: Control, clock: Clock
) -> None:
    client.deployments.create("heart", replicas=2, wait=False)
    supervisor.reconcile_once()
    fake.ready()
    supervisor.reconcile_once()
    alive, lost = (r.pid for r in fake.running())

    fresh = FakeReplicas(survivors={alive}, _next=8000)  # a new control plane started neither
    again = Supervisor(state, fresh, now=clock)
    again.reconcile_once()

    replicas = {r.pid: r for r in show(client).replica_states}
    assert replicas[alive].state == "ready"
    assert [r.state for r in replicas.values() if r.pid != alive] == ["crashed"]
    assert lost not in replicas and fresh.history == []
    clock.advance(1.1)
    again.reconcile_once()
    assert len(fresh.history) == 1 and fresh.history[0].startswith("start 800")


def test_a_rolled_deployment_is_updating_until_the_old_generation_has_drained() -> None:
    from types import SimpleNamespace

    from lepton.control.deployment_rows import summary as _summary

    row = SimpleNamespace(
        state="active", generation=2, replicas=1, error_message=None, canary_generation=None
    )
    new = SimpleNamespace(generation=2, state="ready")
    old = SimpleNamespace(generation=1, state="draining")
    assert _summary(row, [new, old], ready=1) == "updating", "the old one still answers"
    assert _summary(row, [new], ready=1) == "ready"
    scaled_down = SimpleNamespace(generation=2, state="draining")
    assert _summary(row, [new, scaled_down], ready=1) == "ready", "same version either way"


# --- traffic -------------------------------------------------------------------------------------


def traffic(seq: int, statuses: dict[int, int]) -> str:
    """A replica's traffic report line, as ``serving/traffic.py`` writes it."""
    from lepton.serving.traffic import PREFIX

    routes = {"predict": {"status": {str(s): n for s, n in statuses.items()}, "errors": {}}}
    return PREFIX.decode() + json.dumps({"v": 1, "seq": seq, "le": [0.01], "routes": routes}) + "\n"


def say(replica: FakeReplica, text: str) -> None:
    with replica.launch.log_path.open("a") as f:
        f.write(text)


def test_traffic_reports_are_summed_over_replicas_and_kept_out_of_the_log(
    platform: Platform, client: Client, supervisor: Supervisor, fake: FakeReplicas
) -> None:
    client.deployments.create("heart", replicas=2, wait=False)
    supervisor.reconcile_once()
    fake.ready()
    supervisor.reconcile_once()
    a, b = fake.running()
    assert a.arg("--traffic-interval-s") == "5"

    say(a, "a print of the model's own\n" + traffic(1, {200: 3, 422: 1}))
    say(b, traffic(1, {200: 4}) + "half a print" + traffic(2, {200: 6, 503: 1}))
    supervisor.reconcile_once()

    viewer = platform.client(platform.token(platform.admin, role="viewer"))
    seen = viewer.deployments.traffic("heart", minutes=1)
    assert (seen.totals.requests, seen.totals.errors, seen.totals.rejected) == (3 + 1 + 7, 1, 1)
    assert seen.replicas_reporting == 2 and seen.deployment == "heart"
    assert sum(p.requests for p in seen.points) == 11
    log = client.deployments.logs("heart").text
    ids = {r.pid: r.id for r in show(client).replica_states}
    assert f"[{ids[a.pid]}] a print of the model's own\n" in log
    assert f"[{ids[b.pid]}] half a print\n" in log
    assert "lepton-traffic" not in log


def test_a_drained_replicas_last_report_counts_and_a_deleted_deployment_is_forgotten(
    client: Client, supervisor: Supervisor, fake: FakeReplicas
) -> None:
    first = client.deployments.create("heart", replicas=2, wait=False)
    supervisor.reconcile_once()
    fake.ready()
    supervisor.reconcile_once()
    client.deployments.scale("heart", 1)
    supervisor.reconcile_once()
    (drained,) = [int(h.split()[1]) for h in fake.history if h.startswith("drain")]

    say(fake.replicas[drained], traffic(1, {200: 2}))  # written once the drain answered all
    fake.exit(drained, 0)
    supervisor.reconcile_once()

    assert client.deployments.traffic("heart").totals.requests == 2
    assert client.deployments.traffic("heart").replicas_reporting == 0  # it is gone
    (left,) = fake.running()
    say(left, traffic(1, {200: 5}))
    client.deployments.delete("heart", wait=False)
    supervisor.reconcile_once()
    fake.exit(left.pid, 0)
    supervisor.reconcile_once()

    assert first.id not in supervisor.traffic._deployments  # its memory is freed
    client.deployments.create("heart", wait=False)  # the same name, a new deployment
    assert client.deployments.traffic("heart").totals.requests == 0


def test_traffic_is_asked_for_at_most_the_hour_kept(client: Client) -> None:
    from lepton.errors import InvalidRequest

    client.deployments.create("heart", wait=False)
    assert len(client.deployments.traffic("heart", minutes=60).points) >= 1
    for minutes in (0, 61):
        with pytest.raises(InvalidRequest, match="minutes"):
            client.deployments.traffic("heart", minutes=minutes)
    with pytest.raises(NotFound):
        client.deployments.traffic("nope")


def test_replicas_start_with_the_resources_the_deployment_asks_for_and_roll_when_they_change(
    client: Client, supervisor: Supervisor, fake: FakeReplicas
) -> None:
    client.deployments.create("heart", cpus=2, memory_mb=1024, gpus=0, wait=False)
    supervisor.reconcile_once()
    [replica] = fake.running()
    assert (replica.launch.cpus, replica.launch.memory_mb, replica.launch.gpus) == (2, 1024, 0)
    shown = client.deployments.get("heart")
    assert (shown.cpus, shown.memory_mb, shown.gpus, shown.generation) == (2, 1024, 0, 1)

    rolled = client.deployments.update("heart", memory_mb=2048)
    assert rolled.generation == 2 and rolled.memory_mb == 2048 and rolled.cpus == 2
    assert client.deployments.revisions("heart")[0].reason == "updated memory_mb"
