"""The Ray executor against a real local Ray cluster, with the scale-out stores around it.

One cluster for the module (``ray.cluster_utils.Cluster`` on 127.0.0.1, token authentication):
a head with no CPUs, so nothing of Lepton's lands where the cluster's own services run, and two
worker nodes of one CPU each, which a test can kill. The control plane is ``lepton up`` with
``LEPTON_EXECUTOR=ray`` on PostgreSQL (``LEPTON_TEST_POSTGRES_URL``, which ``.ci/run`` sets)
with its blobs on moto's S3 server. Jobs' runners and replicas run as actors on the workers;
what they print reaches ``lepton job logs`` and the deployment log through the control plane.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from test_jobs_process import has_checkpoint, log_of

from lepton import Client
from lepton.schemas import JobState
from lepton.settings import Settings

if TYPE_CHECKING:
    from conftest import ServerFactory, ServerProcess

# Not imported here: Ray reads RAY_AUTH_MODE when it is first imported, which the cluster fixture
# sets first.
if importlib.util.find_spec("ray") is None:
    pytest.skip("Ray is not installed: pip install 'lepton[ray]'", allow_module_level=True)

pytestmark = [pytest.mark.timeout(900), pytest.mark.postgres, pytest.mark.s3]

POSTGRES_ENV = "LEPTON_TEST_POSTGRES_URL"
WAIT_S = 240.0  # a bound on waits, not a measurement: runners import torch on a loaded machine


def wait_for(what: str, check: Callable[[], Any], timeout: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)


# --- the cluster and the stores ---------------------------------------------------------------

RAY_ENV = {
    "RAY_AUTH_MODE": "token",
    "RAY_AUTH_TOKEN": "",
    # Every node, and every service of it, on 127.0.0.1: Ray's one-machine mode (it picks the
    # loopback address where clusters are not supported), so nothing listens beyond loopback.
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
}


class RayCluster:
    """The cluster of ``ray_cluster.py``, in its own process (see there)."""

    def __init__(self, workers: int) -> None:
        self.env = {**os.environ, **RAY_ENV, "RAY_AUTH_TOKEN": secrets.token_hex(32)}
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("ray_cluster.py")), str(workers)],
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        started = self._answer()
        self.address: str = started["address"]
        self.nodes: list[str] = started["nodes"]

    def _answer(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the Ray cluster process ended (exit code {self.proc.wait()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def _ask(self, command: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        answer = self._answer()
        self.nodes = answer["nodes"]
        return answer

    def remove(self, prefix: str) -> None:
        """Kill the worker node whose id starts with ``prefix``: a lost machine."""
        assert self._ask(f"remove {prefix}")["removed"] == 1, f"no worker node {prefix}"

    def add(self) -> None:
        self._ask("add")

    def free(self) -> dict[str, float]:
        """The cluster's available resources: ``CPU``, ``memory`` (bytes), ..."""
        return dict(self._ask("free")["free"])

    def actors(self) -> list[str]:
        """Names of the live actors in Lepton's namespace."""
        return list(self._ask("actors")["actors"])

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture(scope="module")
def cluster() -> Iterator[RayCluster]:
    made = RayCluster(workers=2)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture(scope="module")
def s3_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    folder = tmp_path_factory.mktemp("aws")
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(folder / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(folder / "no-credentials"),
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
    }
    bucket = f"lepton-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], **_keys(env)).create_bucket(
        Bucket=bucket
    )
    env["LEPTON_STORAGE_URL"] = f"s3://{bucket}/blobs"
    try:
        yield env
    finally:
        server.stop()


def _keys(env: dict[str, str]) -> dict[str, str]:
    return {
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
        "region_name": env["AWS_DEFAULT_REGION"],
    }


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from lepton.store.db import make_engine

    base = os.environ.get(POSTGRES_ENV, "")
    if not base:
        pytest.skip(
            f"{POSTGRES_ENV} is not set (PostgreSQL): export "
            f"{POSTGRES_ENV}=$(scripts/postgres.sh start /tmp/lepton-pg 54329)"
        )
    schema = f"ray_{uuid.uuid4().hex[:12]}"
    admin = make_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(base).update_query_dict({"options": f"-c search_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(scope="module")
def server(
    cluster: RayCluster,
    s3_env: dict[str, str],
    database_url: str,
    module_servers: ServerFactory,
) -> ServerProcess:
    env = {
        **s3_env,
        "LEPTON_DATABASE_URL": database_url,
        "LEPTON_EXECUTOR": "ray",
        "LEPTON_RAY_ADDRESS": cluster.address,
        **{k: cluster.env[k] for k in RAY_ENV},
    }
    return module_servers(env=env)


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[Client]:
    with Client(server.url, server.token, settings=Settings(home=Path("/nonexistent"))) as c:
        yield c


def toy(rows: int = 400) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 4))
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(4)])
    frame["label"] = np.where(x[:, 0] + x[:, 1] > 0, "yes", "no")
    return frame


def node_of(log: str) -> str:
    """The Ray node id (its first 12 characters) an attempt's log says it ran on."""
    lines = [line for line in log.splitlines() if line.startswith("--- on Ray node")]
    assert lines, f"the log does not say where it ran:\n{log[-2000:]}"
    return lines[-1].split("(")[1].split(")")[0]


# --- the tests ------------------------------------------------------------------------------


def test_the_control_plane_says_it_runs_on_ray_with_token_auth(server: ServerProcess) -> None:
    assert "Ray cluster at" in server.output, server.output
    assert "token authentication" in server.output
    assert "WITHOUT token authentication" not in server.errors


def test_a_train_job_runs_on_a_ray_node(client: Client) -> None:
    client.datasets.push(toy(), name="toy", target="label")
    job = client.jobs.train("toy", algorithm="logistic_regression", cpus=1)
    done = client.jobs.wait(job.id, timeout_s=WAIT_S)
    log = log_of(client, job.id)
    assert done.state == JobState.succeeded, (done.error, log[-3000:])
    assert done.result is not None and done.result["model"] == "toy@1", done.result
    assert "--- on Ray node 127.0.0.1" in log
    assert node_of(log)


SCRIPT = """
import os, pathlib
ray = sorted(k for k in os.environ if k.startswith(("RAY", "LEPTON_DATABASE", "AWS")))
print("ray-visible", ray)
home = pathlib.Path(os.environ["HOME"])
print("ray-session-visible", pathlib.Path("/tmp/ray").exists())
print("token", os.environ.get("GREETING"))
"""


def test_a_script_job_runs_on_ray_contained(client: Client, tmp_path: Path) -> None:
    script = tmp_path / "probe.py"
    script.write_text(SCRIPT)
    job = client.jobs.run_script(script, env={"GREETING": "hello"})
    done = client.jobs.wait(job.id, timeout_s=WAIT_S)
    log = "".join(text for _, text in client.jobs.follow(job.id))  # as `lepton run` shows it
    assert done.state == JobState.succeeded, (done.error, log[-3000:])
    # The cluster's token, the control plane's database and cloud keys stay outside.
    assert "ray-visible []" in log, log
    if shutil.which("bwrap"):  # .ci/run installs it; without it only the environment is kept
        assert "ray-session-visible False" in log, log
    assert "token hello" in log


def test_a_job_asking_for_more_cpus_than_the_cluster_fails_clearly(client: Client) -> None:
    job = client.jobs.train("toy", algorithm="logistic_regression", cpus=8)
    done = client.jobs.wait(job.id, timeout_s=60)
    assert done.state == JobState.failed
    assert done.error is not None and "8 CPUs" in done.error.message, done.error


SLEEPER = """
import time
print("started", flush=True)
time.sleep(20)
print("woke up")
"""


def test_a_job_is_found_again_after_a_control_plane_crash(
    client: Client, server: ServerProcess, tmp_path: Path
) -> None:
    # A script that needs nothing from the API while it runs: whatever it does across the
    # crash, it does as the same attempt, found again by its actor's name.
    script = tmp_path / "sleeper.py"
    script.write_text(SLEEPER)
    job = client.jobs.run_script(script)
    wait_for("the script to start", lambda: "started" in log_of(client, job.id))
    server.kill()  # SIGKILL: no goodbye to the actors
    server.start()
    done = client.jobs.wait(job.id, timeout_s=WAIT_S)
    log = "".join(text for _, text in client.jobs.follow(job.id))
    assert done.state == JobState.succeeded, (done.error, log[-3000:])
    assert done.attempts == 1, f"the runner was started again instead of found again:\n{log}"
    assert log.count("--- on Ray node") == 1, log
    assert log.count("started") == 1 and "woke up" in log, log


def test_a_restarted_control_plane_stops_the_actor_of_a_job_that_is_not_running(
    cluster: RayCluster, client: Client, server: ServerProcess, database_url: str, tmp_path: Path
) -> None:
    from sqlalchemy import text

    from lepton.store.db import make_engine

    script = tmp_path / "long.py"
    script.write_text("import time\nprint('started', flush=True)\ntime.sleep(300)\n")
    job = client.jobs.run_script(script)
    wait_for("the script to start", lambda: "started" in log_of(client, job.id))
    actor = f"job-{job.id}-1"
    assert actor in cluster.actors()
    server.kill()
    # While the control plane was away its job ended in the store (an operator, another
    # control plane): its actor is a stray that would run for minutes more.
    engine = make_engine(database_url)
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE jobs SET state = 'failed', pid = NULL WHERE id = :id"), {"id": job.id}
        )
    engine.dispose()
    server.start()
    wait_for("the stray actor to be stopped", lambda: actor not in cluster.actors(), 60)
    assert f"stopped Ray actor {actor}" in server.errors


def test_a_lost_node_retries_the_job_elsewhere(cluster: RayCluster, client: Client) -> None:
    params = {"epochs": 40, "batch_size": 32, "lr": 1e-4, "hidden": 16}
    client.datasets.push(toy(1000), name="net", target="label")
    job = client.jobs.train("net", algorithm="mlp", params=params, time_budget_s=600)
    wait_for("the first checkpoint", lambda: has_checkpoint(client, job.id))
    first = node_of(log_of(client, job.id))
    cluster.remove(first)
    try:
        done = client.jobs.wait(job.id, timeout_s=WAIT_S)
        log = log_of(client, job.id)
        assert done.state == JobState.succeeded, (done.error, log[-3000:])
        assert done.attempts == 2, log[-3000:]
        assert node_of(log) != first, "the retry ran on the node that was lost"
        # Resumed from its checkpoint, not restarted: the first epoch was trained once.
        losses = [p.step for p in client.jobs.metrics(job.id) if p.name == "loss"]
        assert losses.count(1) == 1, losses
    finally:
        cluster.add()


def _register(client: Client, flip: bool) -> str:
    from test_deployments_process import register_model

    return register_model(client, "clf", flip=flip)


def _predict(url: str, token: str) -> Any:
    from test_deployments_process import ROW, predicted

    answer = httpx.post(
        f"{url}/predict", json={"rows": [ROW]}, headers={"Authorization": f"Bearer {token}"}
    )
    answer.raise_for_status()
    return predicted(answer.json())


def replica_nodes(client: Client, name: str) -> dict[str, str]:
    """Replica id -> the Ray node id (first 12 characters) its latest life ran on."""
    text, offset = "", 0
    for _ in range(1000):
        chunk = client.deployments.logs(name, offset)
        text, offset = text + chunk.text, chunk.offset
        if not chunk.text:
            break
    nodes = {}
    for line in text.splitlines():
        if "--- on Ray node" in line and line.startswith("["):
            nodes[line[1 : line.index("]")]] = line.split("(")[1].split(")")[0]
    return nodes


def test_a_two_worker_cnn_trains_across_two_nodes_as_well_as_one_worker(client: Client) -> None:
    from test_data_parallel import SAME_WITHIN, train_cnn

    from lepton.data.samples import load_sample

    client.datasets.push(load_sample("mnist"), name="mnist")
    one, _ = train_cnn(client, 1, cpus=1)
    two, log = train_cnn(client, 2, cpus=1)
    # Each worker node has one CPU: the two workers ran on both, and met there.
    nodes = {
        line.split("(")[1].split(")")[0]
        for line in log.splitlines()
        if line.startswith("--- on Ray node")
    }
    assert len(nodes) == 2, log[-3000:]
    assert one > 0.85 and abs(two - one) <= SAME_WITHIN, (one, two)


def test_replicas_serve_through_ray_roll_and_come_back_after_a_lost_node(
    cluster: RayCluster, client: Client
) -> None:
    _register(client, flip=False)
    _register(client, flip=True)
    # Three replicas spread over three nodes (the head takes replicas too: they reserve no CPU),
    # so at least one is on a worker node the test can take away.
    created = client.deployments.create("clf@1", name="clf", replicas=3)
    assert created.token is not None
    token = created.token
    try:
        ready = client.deployments.wait("clf", timeout_s=WAIT_S)
        assert ready.ready_replicas == 3
        assert _predict(ready.url, token) == 1
        assert len(replica_nodes(client, "clf")) == 3, "the replicas' output did not come back"

        client.deployments.update("clf", model="clf@2")

        def rolled() -> bool:
            deployment = client.deployments.get("clf")
            return (
                deployment.ready_replicas == 3
                and all(r.generation == 2 for r in deployment.replica_states)
                and _predict(ready.url, token) == 0
            )

        wait_for("the rolling update", rolled)

        # A lost node: its replica is restarted on another one.
        current = {r.id for r in client.deployments.get("clf").replica_states}
        nodes = replica_nodes(client, "clf")
        workers = {n[:12] for n in cluster.nodes}
        victim = next(nodes[r] for r in current if nodes.get(r) in workers)
        cluster.remove(victim)
        try:

            def back() -> bool:
                deployment = client.deployments.get("clf")
                moved = replica_nodes(client, "clf")
                return deployment.ready_replicas == 3 and all(
                    moved.get(r.id) != victim for r in deployment.replica_states
                )

            wait_for("the replica of the lost node to come back elsewhere", back)
            assert _predict(ready.url, token) == 0
            log = client.deployments.logs("clf").text
            assert "crashed" in log, log[-3000:]
        finally:
            cluster.add()
    finally:
        with contextlib.suppress(Exception):
            client.deployments.delete("clf", timeout_s=60)


def test_a_replica_reserves_the_cpus_and_memory_its_deployment_asks_for(
    cluster: RayCluster, client: Client
) -> None:
    _register(client, flip=False)
    before = cluster.free()
    client.deployments.create("clf@1", name="sized", replicas=1, cpus=1, memory_mb=1536)
    try:
        ready = client.deployments.wait("sized", timeout_s=WAIT_S)
        assert ready.ready_replicas == 1 and (ready.cpus, ready.memory_mb) == (1, 1536)
        during = cluster.free()
        assert during.get("CPU", 0) == before["CPU"] - 1, (before, during)
        assert before["memory"] - during["memory"] == 1536 * 1024 * 1024, (before, during)
    finally:
        client.deployments.delete("sized", timeout_s=60)
    wait_for("the reservation to be given back", lambda: cluster.free().get("CPU") == before["CPU"])
